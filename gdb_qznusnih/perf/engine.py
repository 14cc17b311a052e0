"""The perf engine: a watch whose hits become the same records as the gdb engine's.

The building blocks of this package capture the hits (capture), find the module of a pc
(modules), unwind the sampled stack (unwind) and ask a gdb attached to nothing what a pc is
(symbolizer).  This module joins them to the rest of the pipeline: the trap is decoded and
classified exactly as hit/session.py does (classify/trap.py), and each access becomes a
record.Record for the sinks and the summary by the same record/builder.py, its value from
the sampled registers where they determine it (classify/values.py).  The target is never
ptrace-attached: its memory is read once, at arm time, through /proc/PID/mem.

Unlike the capture building blocks it imports the package's pure modules; never gdb.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify import kernel_layout
from gdb_qznusnih.classify.register_tuple import RegisterTuple
from gdb_qznusnih.classify.trap import (
    BRANCH,
    DecodedTrap,
    RememberingClassifier,
    TrapClassifier,
    decode_trap,
)
from gdb_qznusnih.counted import counted
from gdb_qznusnih.perf import abi
from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.events import PerfError
from gdb_qznusnih.perf.hits import Hit
from gdb_qznusnih.perf.job_control import JobControlNotes
from gdb_qznusnih.perf.kernel_symbols import KernelSymbols
from gdb_qznusnih.perf.modules import MapsLine, ModuleMap, process_memory_reader
from gdb_qznusnih.perf.records import Comm, Lost, Mmap2, Sample, Task, Throttle
from gdb_qznusnih.perf.symbolizer import Symbolizer, printable
from gdb_qznusnih.perf.unwind import DWARF_REGISTER_NAMES, Unwinder
from gdb_qznusnih.record.access import (
    READ,
    RING_OVERFLOW,
    THROTTLED,
    WRITE,
    Frame,
    LostAccesses,
    Record,
)
from gdb_qznusnih.record.builder import RecordBuilder
from gdb_qznusnih.record.condition import optional_condition
from gdb_qznusnih.record.summary import Summary
from gdb_qznusnih.sinks.logs import SinkError

READ_TIMEOUT_S = 0.05  # how long poll() waits for hits: the stop checks' latency
FORK_NOTE = "the target forked; children are not watched (said once)"  # as the gdb engine
PROT_EXEC = 4
OWN_READS_NOTE = (
    "the kernel's copy of the user stack for each sample reads the watched bytes: "
    "those reads are the perf engine's own, not logged (said once)"
)
# In a kernel access's frames: the sampling itself (copy_from_user_nmi in perf_output_sample's
# copy of the user stack, when the watched bytes lie within --stack-bytes of a sampled sp).
_OWN_SAMPLING = ("perf_", "__perf_", "copy_from_user_nmi")
_SAMPLED = RegisterTuple(abi.REGISTER_NAMES)  # reg(name) over a sample's registers
# A sample's registers (abi.REGISTER_NAMES order) in the unwinder's DWARF order.
_DWARF_ORDER = itemgetter(*(abi.REGISTER_NAMES.index(name) for name in DWARF_REGISTER_NAMES))
_time_of = itemgetter(0)


@dataclass
class WatchRequest:
    """What one perf watch watches and how its records are made."""

    pid: int
    address: int
    length: int = 1
    access: str = "rw"  # "rw", "r" or "w": which kinds are logged
    bt_depth: int = 16
    count: int | None = None  # end after this many records
    number: int = 1  # the watch's number in its records
    if_cond: str | None = None  # --if COND
    stop_if: str | None = None  # --stop-if COND


@dataclass(frozen=True)
class Loss:
    """Accesses the hardware saw that did not become records, and why."""

    lost: int  # the events' own counters minus the samples delivered (the sampling kind's)
    throttled: int  # times the kernel stopped the event: its accesses were not even counted
    spilled: int = 0  # the most bytes of samples that waited on disk (late, not lost)
    spill_dir: str = ""

    @property
    def any(self) -> bool:
        return bool(self.lost or self.throttled)

    def describe(self) -> str:
        parts = []
        if self.lost:
            parts.append(f"{counted(self.lost, 'access')} not logged (the ring overflowed)")
        if self.throttled:
            parts.append(
                f"throttled {counted(self.throttled, 'time')} by kernel.perf_event_max_sample_rate "
                "(accesses while throttled are not counted)"
            )
        return "; ".join(parts)

    def lines(self) -> str:
        """The summary's `lost:` and `behind:` lines, each when it applies."""
        out = f"lost: {self.describe()}\n" if self.any else ""
        if self.spilled:
            out += (
                f"behind: the records fell behind the target; up to {self.spilled / 2**20:,.1f}"
                f" MiB of its samples waited in a spill file in {self.spill_dir}\n"
            )
        return out


class PerfWatch:
    """One watch by perf breakpoint events: arm(), poll() until done, then stop()."""

    def __init__(
        self,
        request: WatchRequest,
        sinks,
        config: CaptureConfig | None = None,
        gdb: str = "gdb",
        symbolizer: Symbolizer | None = None,
        caches: CacheRegistry | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.request = request
        # What pcs and call paths mean, here and in the sinks: cleared at once.
        self.caches = caches if caches is not None else CacheRegistry()
        self.sinks = sinks
        sinks.hold()  # hits come in batches: one write per file for each (see _log)
        self.config = config or CaptureConfig()
        self.summary = Summary(start=time.time())
        self._builder = RecordBuilder(
            request.number, request.address, request.length, request.access, request.count,
            condition=optional_condition(request.if_cond),
            stop_condition=optional_condition(request.stop_if),
        )  # fmt: skip
        self.finish_reason: str | None = None
        self._logging = True  # False once no more records may be logged (--count, ...)
        self.sink_error: str | None = None
        self._gdb = gdb
        self._symbolizer = symbolizer
        self._owns_symbolizer = symbolizer is None
        self._modules: ModuleMap | None = None
        self._unwinder: Unwinder | None = None
        self._capture: Capture | None = None
        classifier = TrapClassifier(
            request.address,
            request.length,
            caches=self.caches,
            instruction_before=self._before,
            instruction_at=lambda address: self._symbolizer.site(address).text_at_ip,
        )
        self._classifier = RememberingClassifier(classifier, self.caches)
        self._decoded = self.caches.cache("decoded trap ips")
        self._paths = self.caches.cache("symbolized call paths")
        # (time, hit or loss mark) not yet settled; sorted when settled (stable: arrival order)
        self._waiting: list[tuple[int, object]] = []
        self._new_mappings: list[MapsLine] = []  # from MMAP2 records, not yet in the map
        self._note = note or (lambda text: None)  # events worth a line (a fork)
        self._forked = False
        self._said_own_reads = False
        self._exec_ns: int | None = None  # the target called exec then: later hits are not its
        self._exec_comm = ""
        self._lost_marked = 0  # lost accesses already said in the stream
        self._clock_offset = 0.0  # epoch seconds minus CLOCK_MONOTONIC seconds
        self._stop_at: frozenset[int] = frozenset()  # main: gdb's backtraces end there
        self._kernel_symbols: KernelSymbols | None = None  # when kernel mode is watched
        self._comms: dict[int, str | None] = {}  # tid -> its name, for kernel records
        self._job_control: JobControlNotes | None = None  # says SIGSTOP and SIGCONT

    # -- arming -----------------------------------------------------------------------

    def arm(self) -> None:
        """Read the modules and the initial value, start the symbolizer, open the events.

        PerfError or SymbolizerError (one line) on failure, everything closed."""
        request = self.request
        try:
            if self._symbolizer is None:
                self._modules = ModuleMap.from_pid(request.pid)
                self._symbolizer = Symbolizer(self._modules, gdb=self._gdb)
            else:  # the caller's, e.g. after evaluating ADDR with it
                self._modules = self._symbolizer.modules
            self._unwinder = Unwinder(self._modules)
            self._stop_at = _main_starts(self._modules, request.pid)
            if not self.config.events.exclude_kernel:
                self._kernel_symbols = KernelSymbols.load()
            known = read_value(request.pid, request.address, request.length)
            self._builder.known = self._builder.shown = known
            self._clock_offset = time.time() - time.monotonic()
            self._capture = Capture(request.pid, request.address, request.length, self.config)
            self._capture.start()
            self._job_control = JobControlNotes(request.pid, self._note)
        except BaseException:
            self.close()
            raise

    @property
    def target_stopped(self) -> bool:
        """Whether the target is in a job-control stop (as of the last check, or arming)."""
        return self._job_control is not None and self._job_control.stopped

    @property
    def symbolizer(self) -> Symbolizer:
        return self._symbolizer

    @property
    def notes(self) -> list[str]:
        """Modules the symbolizer could not load, kernel frames that will have no names;
        one line each."""
        notes = list(self._symbolizer.notes) if self._symbolizer is not None else []
        if self._kernel_symbols is not None and not self._kernel_symbols.visible:
            notes.append(
                "kernel frames will have no names: /proc/kallsyms hides the kernel's "
                "addresses (kernel.kptr_restrict); run as root with kptr_restrict 0 or 1"
            )
        return notes

    # -- running ----------------------------------------------------------------------

    def poll(self, timeout: float = READ_TIMEOUT_S) -> bool:
        """Log what the rings delivered; False once the capture is drained (the target's
        threads are gone, or stop() was called)."""
        capture = self._capture
        waiting = self._waiting
        if self._job_control is not None:  # None: not armed (a played capture)
            self._job_control.check()
        for item in capture.read(timeout):
            if type(item) is Hit:
                waiting.append((item.sample.time, item))
            elif isinstance(item, (Lost, Throttle)):
                self._mark_loss(item)
            else:
                self._side_band(item)
        settled = None if capture.drained else capture.settled_ns
        if capture.drained and self._exec_ns is not None:
            self._exec_seen(self._exec_comm)  # gone before its program was named
        self._log_in_order(self._settled(settled))
        if capture.drained and capture.failure:
            raise PerfError(f"{capture.failure}; every access copied before it is logged")
        return not capture.drained

    def _wait(self, time_ns: int, item) -> None:
        self._waiting.append((time_ns, item))

    def _settled(self, settled_ns: int | None) -> list:
        """Hits and loss marks no earlier one can follow any more, in time order across the
        CPUs' rings.  Each ring's come in time order, so the sort (stable: arrival order for
        equal times) merges a few sorted runs, in C."""
        waiting = self._waiting
        waiting.sort(key=_time_of)
        if settled_ns is None:
            self._waiting = []
            return [item for _, item in waiting]
        cut = bisect.bisect_left(waiting, settled_ns, key=_time_of)
        ready = [item for _, item in waiting[:cut]]
        del waiting[:cut]
        return ready

    def _log_in_order(self, items: list) -> None:
        """Log the hits, each loss mark at its place among them; the hits after an exec are
        the new program's: not logged (exec clears watches)."""
        hits = []
        for item in items:
            if not isinstance(item, Hit):
                self._log(hits)
                hits = []
                self._log_loss(item)
            elif self._exec_ns is None or item.sample.time < self._exec_ns:
                hits.append(item)
        self._log(hits)

    def _side_band(self, record) -> None:
        pid = self.request.pid
        if isinstance(record, Mmap2) and record.pid == pid:
            if self._exec_ns is not None and record.prot & PROT_EXEC:
                self._exec_seen(record.filename)  # the new program's code, mapped by exec
            elif record.device is not None:  # a library loaded: before symbolizing, add it
                self._new_mappings.append(_mapping_of(record))
        elif isinstance(record, Comm) and not record.exec:
            self._comms[record.tid] = printable(record.comm)  # prctl(PR_SET_NAME)
        elif isinstance(record, Comm) and record.exec and record.pid == pid:
            self._exec_ns, self._exec_comm = record.time, record.comm
            try:
                self._exec_seen(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                pass  # it has exited already: its MMAP2 record names the program
        elif isinstance(record, Task) and record.what == "fork" and record.pid != record.ppid:
            if not self._forked:  # a new process (a thread has its parent's pid)
                self._forked = True
                self._note(FORK_NOTE)

    def _exec_seen(self, program: str) -> None:
        self.finish(f"target called exec({program}); exec clears watches")

    # -- what was not logged ----------------------------------------------------------------

    def _mark_loss(self, record: Lost | Throttle) -> None:
        """Hold a loss mark for its place in the stream.  A PERF_RECORD_LOST counts the
        samples of every event of its ring; the lost counters of the events that sample each
        access (RW, or W in a write-only watch) say how many accesses that was, exactly, so far."""
        when = self._clock_offset + record.time / 1e9
        sampling = self.config.events.sampling_kind
        if isinstance(record, Throttle):
            if record.stopped and record.kind == sampling:
                self._wait(record.time, LostAccesses(self.request.number, None, when, THROTTLED))
            return
        _, not_written = self._capture.counters()
        new = not_written[sampling] - self._lost_marked
        if new > 0:
            self._lost_marked += new
            self._wait(record.time, LostAccesses(self.request.number, new, when, RING_OVERFLOW))

    def _log_loss(self, mark: LostAccesses) -> None:
        if not self._logging:
            return
        try:
            self.sinks.lost(mark)
        except SinkError as error:
            self.sink_error = str(error)
            self.finish("log failure", log_more=False)

    def finish(self, reason: str, log_more: bool = True) -> None:
        """End the watch (the first reason stays).  `log_more`: the hits captured until
        stop() are still logged (a stop signal, the target's exit); not after --count."""
        if self.finish_reason is None:
            self.finish_reason = reason
        if not log_more:
            self._logging = False

    def stop(self) -> Loss:
        """Disarm (the target runs on unwatched), log what was captured until then, and
        give the loss; the caller closes."""
        capture = self._capture
        capture.stop()
        while self.poll(0):
            pass
        if self._job_control is not None:
            self._job_control.ended()
        self.summary.end = time.time()
        loss = self.loss()
        unsaid = loss.lost - self._lost_marked
        if unsaid > 0:  # the last ones: no PERF_RECORD_LOST if a ring is still full
            self._lost_marked = loss.lost
            self._log_loss(LostAccesses(self.request.number, unsaid, time.time(), RING_OVERFLOW))
        return loss

    def loss(self) -> Loss:
        """Exact once stopped: each event's own counter against the samples delivered (the
        ring's PERF_RECORD_LOST counts miss the last ones, if a ring is full at the end)."""
        accounting = self._capture.accounting()
        return Loss(
            accounting.lost(), accounting.throttled, accounting.spilled, accounting.spill_dir
        )

    def close(self) -> None:
        if self._capture is not None:
            self._capture.close()
        if self._symbolizer is not None and self._owns_symbolizer:
            self._symbolizer.close()
        if self._modules is not None and self._owns_symbolizer:
            self._modules.close()

    # -- hits to records ----------------------------------------------------------------

    def _log(self, hits: list[Hit]) -> None:
        if not hits or not self._logging:
            return
        if self._new_mappings:
            self._refresh_modules()
        backtraces = [self._unwind(hit.sample) for hit in hits]
        # Each call path once; a kernel-mode sample's user pcs all follow a call (the
        # first, the syscall).
        paths = {(pcs, hit.sample.kernel_mode) for hit, pcs in zip(hits, backtraces)}
        callers: set[int] = set()
        for pcs, kernel_mode in paths:
            callers.update(pcs if kernel_mode else pcs[1:])
        traps = {hit.sample.ip for hit in hits if not hit.sample.kernel_mode}
        self._symbolizer.resolve(traps=traps, callers=callers)
        try:
            for hit, pcs in zip(hits, backtraces):
                if not self._logging:
                    return
                self._log_hit(hit, pcs)
        finally:
            self._flush()

    def _flush(self) -> None:
        """Write the batch's records to the logs, one write(2) per file (LogSinks.hold)."""
        try:
            self.sinks.flush()
        except SinkError as error:  # the disk is full or the log is gone
            self.sink_error = str(error)
            self.finish("log failure", log_more=False)

    def _unwind(self, sample: Sample) -> tuple[int, ...]:
        """The user pcs, innermost first: of a kernel-mode sample, the registers and stack
        sampled are the user state at the system call's entry."""
        if not sample.regs:
            return () if sample.kernel_mode else (sample.ip,)
        backtrace = self._unwinder.unwind_dwarf(
            _DWARF_ORDER(sample.regs),
            sample.stack,
            max_frames=self.request.bt_depth,
            stop_at=self._stop_at,
        )
        return tuple(backtrace.pcs)

    def _log_hit(self, hit: Hit, pcs: tuple[int, ...]) -> None:
        sample = hit.sample
        if sample.kernel_mode:
            self._log_kernel_hit(hit, pcs)
            return
        ip = sample.ip
        decoded = self._decoded.get(ip)
        if decoded is None:
            decoded = self._decoded.remember(ip, self._decode(ip))
        registers = sample.regs
        read_register = _SAMPLED.whole_reader(registers)
        found = self._classifier.classify(ip, decoded, read_register, sample.stack_top)
        if found is not None and not (found.kind_from == BRANCH and hit.hardware_saw_write):
            insn_pc, text, kinds, kind_from, return_address = found
        else:  # no instruction: the W event says whether the hardware saw a write
            insn_pc, text, return_address = decoded.insn_pc, decoded.text, None
            kinds = ["write" if hit.hardware_saw_write else READ]
            kind_from = "hardware"
        if return_address is not None:  # the call that entered the newest frame: its caller
            pcs = (return_address, *pcs[2:]) if pcs[1:2] == (return_address,) else (return_address,)
        frames = self._paths.get((insn_pc, *pcs)) or self._frames(pcs, insn_pc)
        when = self._clock_offset + sample.time / 1e9
        self._emit(kinds, kind_from, registers, insn_pc, text, frames, sample, when)

    def _log_kernel_hit(self, hit: Hit, user_pcs: tuple[int, ...]) -> None:
        """An access by the kernel: the instruction is the kernel's (not decoded: its pc is
        the trap ip, after it), the kind is what the W event says, the value is not known
        (copy_to_user's rep movs or byte loop leaves it in no sampled register)."""
        sample = hit.sample
        kinds = [WRITE if hit.hardware_saw_write else READ]
        frames = self._kernel_frames(sample.callchain or (sample.ip,), user_pcs)
        if _by_our_sampling(frames):
            if not self._said_own_reads:
                self._said_own_reads = True
                self._note(OWN_READS_NOTE)
            return
        when = self._clock_offset + sample.time / 1e9
        self._emit(kinds, "hardware", None, sample.ip, None, frames, sample, when)

    def _kernel_frames(self, kernel_pcs, user_pcs) -> tuple[Frame, ...]:
        """The kernel frames down to the system call entry, then the user frames of the
        call down to main, as whole-system mode shows a kernel-mode hit."""
        key = (*kernel_pcs, *user_pcs)  # starts with a kernel pc: no user path's key
        frames = self._paths.get(key)
        if frames is not None:
            return frames
        rows = list(self._kernel_symbols.frames(kernel_pcs))
        entry = kernel_layout.kernel_entry_index([row.func for row in rows])
        if entry is not None:  # nothing of the kernel's past its system call entry
            rows = rows[: entry + 1]
        for ra in user_pcs:
            rows.extend(self._symbolizer.caller(ra))
        frames = tuple(
            Frame(level, *row) for level, row in enumerate(rows[: self.request.bt_depth])
        )
        return self._paths.remember(key, frames)

    def _comm(self, sample: Sample) -> str | None:
        """The name of the thread the kernel worked for, as whole-system mode gives it."""
        if sample.tid not in self._comms:
            self._comms[sample.tid] = _thread_name(sample.pid, sample.tid)
        return self._comms[sample.tid]

    def _before(self, address: int) -> tuple[int, str] | None:
        """The instruction ending at `address` (a call, when it is a return address)."""
        site = self._symbolizer.site(address)
        return (site.start, site.text) if site.start is not None else None

    def _decode(self, ip: int) -> DecodedTrap:
        site = self._symbolizer.site(ip)
        before = (site.start, site.text) if site.start is not None else None
        return decode_trap(ip, site.text_at_ip, before, self._modules.function_start(ip) == ip)

    def _frames(self, pcs: tuple[int, ...], insn_pc: int) -> tuple[Frame, ...]:
        """Frame 0 is the accessing instruction with its inlined callers (the symbolizer's
        trap frames), then each return address's frames, as gdb's backtrace shows them."""
        key = (insn_pc, *pcs)
        frames = self._paths.get(key)
        if frames is not None:
            return frames
        site = self._symbolizer.site(pcs[0])
        if insn_pc is not None and insn_pc == site.start:
            rows = [site.frames[0]._replace(pc=insn_pc), *site.frames[1:]]
        else:  # not the instruction ending at ip: a rep op at ip, a PLT jmp, a branch's target
            # (the symbolizer describes a return address ra at ra - 1: here, the pc itself)
            described = pcs[0] if insn_pc is None else insn_pc
            found = self._symbolizer.caller(described + 1)
            rows = [found[0]._replace(pc=described), *found[1:]]
        for ra in pcs[1:]:
            rows.extend(self._symbolizer.caller(ra))
        frames = tuple(
            Frame(level, *row) for level, row in enumerate(rows[: self.request.bt_depth])
        )
        return self._paths.remember(key, frames)

    def _emit(self, kinds, kind_from, registers, insn_pc, text, frames, sample, when):
        # The sample has the registers, never memory: a value they do not determine is unknown.
        builder = self._builder
        reg = _SAMPLED.part_reader(registers)
        records = builder.build(
            kinds, text, reg, 8, None, sample.pid, sample.tid, insn_pc, when, frames, kind_from,
            mode="kernel" if sample.kernel_mode else None,  # user: as the gdb engine's
            comm=self._comm(sample) if sample.kernel_mode else None,
        )  # fmt: skip
        for record in records:
            self.summary.add(record)
            try:
                self.sinks.emit(record)
            except SinkError as error:  # the disk is full or the log is gone
                self.sink_error = str(error)
                self.finish("log failure", log_more=False)
                return
        # (end_reason, a property, only when --count or --stop-if may have ended it)
        if (builder.stopped or builder.count is not None) and builder.end_reason is not None:
            self.finish(builder.end_reason, log_more=False)

    @property
    def seq(self) -> int:
        """Records made so far."""
        return self._builder.seq

    def _refresh_modules(self) -> None:
        """Add the executable mappings the MMAP2 records announced (dlopen): from the records
        themselves, so a target that has exited since still gets its frames."""
        mappings, self._new_mappings = self._new_mappings, []
        known = {_identity(m.mapping) for m in self._modules.modules()}
        added = False
        for mapping in mappings:
            if _identity(mapping) not in known:
                self._modules.add_mapping(mapping)
                added = True
        if added:
            self._symbolizer.sync()
            self.caches.clear()


def read_value(pid: int, address: int, length: int) -> int:
    """The watched bytes now, through /proc/PID/mem (pread: the target is not stopped)."""
    data = process_memory_reader(pid)(address, length)
    if len(data) != length:
        raise OSError(f"{address:#x} could not be read")
    return int.from_bytes(data, "little")


def _main_starts(modules: ModuleMap, pid: int) -> frozenset[int]:
    """Where the program's main starts: gdb shows no frame past it (backtrace past-main)."""
    try:
        program = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return frozenset()
    found = (m.symbol("main") for m in modules.modules() if m.path == program)
    return frozenset(start for start in found if start is not None)


def _by_our_sampling(frames: tuple[Frame, ...]) -> bool:
    kernel = (f for f in frames if f.pc >= kernel_layout.USER_LIMIT[kernel_layout.X86_64])
    return any(f.func is not None and f.func.startswith(_OWN_SAMPLING) for f in kernel)


def _identity(mapping) -> tuple:
    return mapping.start, mapping.end, mapping.offset, mapping.inode


def _mapping_of(record: Mmap2) -> MapsLine:
    """The maps line an MMAP2 record of an executable mapping stands for."""
    return MapsLine(
        record.start, record.start + record.length, "r-xp", record.pgoff, record.device,
        record.inode, record.filename,
    )  # fmt: skip


def _thread_name(pid: int, tid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm", errors="replace") as comm:
            return printable(comm.read().rstrip("\n"))  # the target names its threads
    except OSError:
        return None  # it exited before its hit was logged


def _fields(record: Record) -> dict:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
