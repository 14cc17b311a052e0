"""The perf engine: a watch whose hits become the same records as the gdb engine's.

The building blocks of this package capture the hits (capture), find the module of a pc
(modules), unwind the sampled stack (unwind) and ask a gdb attached to nothing what a pc is
(symbolizer).  This module joins them to the rest of the pipeline: the trap is decoded and
classified exactly as hit/session.py does (classify/trap.py), the value comes from the
sampled registers where they determine it (classify/values.py), and each access becomes a
record.Record for the sinks and the summary.  The target is never ptrace-attached: its
memory is read once, at arm time, through /proc/PID/mem.

Unlike the capture building blocks it imports the package's pure modules; never gdb.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter, itemgetter

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify import values
from gdb_qznusnih.classify.trap import DecodedTrap, TrapClassifier, decode_trap
from gdb_qznusnih.perf import abi
from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.hits import Hit
from gdb_qznusnih.perf.modules import ModuleMap, parse_maps, process_memory_reader
from gdb_qznusnih.perf.records import Comm, Mmap2, Sample
from gdb_qznusnih.perf.symbolizer import Symbolizer
from gdb_qznusnih.perf.unwind import DWARF_REGISTER_NAMES, Unwinder
from gdb_qznusnih.record.access import READ, Frame, Record
from gdb_qznusnih.record.summary import Summary
from gdb_qznusnih.sinks.logs import SinkError

READ_TIMEOUT_S = 0.05  # how long poll() waits for hits: the stop checks' latency
# The 32-bit names the classifier may ask for, as the low half of the sampled 64-bit ones.
_LOW_HALVES = {f"e{name[1:]}": name for name in "rax rbx rcx rdx rsi rdi rbp rsp rip".split()}
_LOW_HALVES.update({f"r{n}d": f"r{n}" for n in range(8, 16)})
_MASK32 = (1 << 32) - 1
# A sample's registers (abi.REGISTER_NAMES order) in the unwinder's DWARF order.
_DWARF_ORDER = itemgetter(*(abi.REGISTER_NAMES.index(name) for name in DWARF_REGISTER_NAMES))
_hit_time = attrgetter("sample.time")


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


@dataclass(frozen=True)
class Loss:
    """Accesses the hardware saw that did not become records, and why."""

    lost: int  # the events' own counters minus the samples delivered (RW event)
    throttled: int  # times the kernel stopped the event: its accesses were not even counted

    @property
    def any(self) -> bool:
        return bool(self.lost or self.throttled)

    def describe(self) -> str:
        parts = []
        if self.lost:
            parts.append(f"{self.lost:,} accesses not logged (the ring overflowed)")
        if self.throttled:
            parts.append(
                f"throttled {self.throttled:,} times by kernel.perf_event_max_sample_rate "
                "(accesses while throttled are not counted)"
            )
        return "; ".join(parts)


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
    ) -> None:
        self.request = request
        # What pcs and call paths mean, here and in the sinks: cleared at once.
        self.caches = caches if caches is not None else CacheRegistry()
        self.sinks = sinks
        sinks.hold()  # hits come in batches: one write per file for each (see _log)
        self.config = config or CaptureConfig()
        self.summary = Summary(start=time.time())
        self.seq = 0
        self.finish_reason: str | None = None
        self._logging = True  # False once no more records may be logged (--count, ...)
        self.sink_error: str | None = None
        self._gdb = gdb
        self._symbolizer = symbolizer
        self._owns_symbolizer = symbolizer is None
        self._modules: ModuleMap | None = None
        self._unwinder: Unwinder | None = None
        self._capture: Capture | None = None
        self._classifier = TrapClassifier(request.address, request.length, caches=self.caches)
        self._decoded = self.caches.cache("decoded trap ips")
        self._paths = self.caches.cache("symbolized call paths")
        self._waiting: list[Hit] = []  # not yet settled, kept in time order
        self._maps_changed = False
        self._shadow: int | None = None  # the watched bytes' value, while known
        self._clock_offset = 0.0  # epoch seconds minus CLOCK_MONOTONIC seconds
        self._stop_at: frozenset[int] = frozenset()  # main: gdb's backtraces end there

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
            self._shadow = read_value(request.pid, request.address, request.length)
            self._clock_offset = time.time() - time.monotonic()
            self._capture = Capture(request.pid, request.address, request.length, self.config)
            self._capture.start()
        except BaseException:
            self.close()
            raise

    @property
    def symbolizer(self) -> Symbolizer:
        return self._symbolizer

    @property
    def notes(self) -> list[str]:
        """Modules the symbolizer could not load, one line each."""
        return list(self._symbolizer.notes) if self._symbolizer is not None else []

    # -- running ----------------------------------------------------------------------

    def poll(self, timeout: float = READ_TIMEOUT_S) -> bool:
        """Log what the rings delivered; False once the capture is drained (the target's
        threads are gone, or stop() was called)."""
        capture = self._capture
        waiting = self._waiting
        for item in capture.read(timeout):
            if type(item) is Hit:
                waiting.append(item)
            else:
                self._side_band(item)
        settled = None if capture.drained else capture.settled_ns
        self._log(self._settled_hits(settled))
        return not capture.drained

    def _settled_hits(self, settled_ns: int | None) -> list[Hit]:
        """Hits no earlier one can follow any more, in time order across the CPUs' rings.

        Each ring's hits come in time order, so the sort (stable: arrival order for equal
        times) merges a few sorted runs, in C."""
        waiting = self._waiting
        waiting.sort(key=_hit_time)
        if settled_ns is None:
            self._waiting = []
            return waiting
        cut = bisect.bisect_left(waiting, settled_ns, key=_hit_time)
        ready = waiting[:cut]
        del waiting[:cut]
        return ready

    def _side_band(self, record) -> None:
        if isinstance(record, Mmap2):
            self._maps_changed = True  # a library loaded: read the maps before symbolizing
        elif isinstance(record, Comm) and record.exec and record.pid == self.request.pid:
            exe = _exe_of(record.pid, record.comm)
            self.finish(f"target called exec({exe}); exec clears watches", log_more=False)

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
        self.summary.end = time.time()
        return self.loss()

    def loss(self) -> Loss:
        """Exact once stopped: each event's own counter against the samples delivered (the
        ring's PERF_RECORD_LOST counts miss the last ones, if a ring is full at the end)."""
        accounting = self._capture.accounting()
        return Loss(accounting.lost("rw"), accounting.throttled)

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
        if self._maps_changed:
            self._refresh_modules()
        backtraces = [self._unwind(hit.sample) for hit in hits]
        self._symbolizer.resolve(
            traps={hit.sample.ip for hit in hits},
            callers={ra for pcs in backtraces for ra in pcs[1:]},
        )
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
        if not sample.regs:
            return (sample.ip,)
        backtrace = self._unwinder.unwind_dwarf(
            list(_DWARF_ORDER(sample.regs)),
            sample.stack,
            max_frames=self.request.bt_depth,
            stop_at=self._stop_at,
        )
        return tuple(backtrace.pcs)

    def _log_hit(self, hit: Hit, pcs: tuple[int, ...]) -> None:
        sample = hit.sample
        ip = sample.ip
        decoded = self._decoded.get(ip)
        if decoded is None:
            decoded = self._decoded.remember(ip, self._decode(ip))
        registers = sample.registers()
        read_register = _register_reader(registers)
        found = self._classifier.kinds(ip, decoded, read_register)
        if found is not None:
            insn_pc, text, kinds = found
            kind_from = "insn"
        else:  # no instruction: the W event says whether the hardware saw a write
            insn_pc, text = decoded.insn_pc, decoded.text
            kinds = ["write" if hit.hardware_saw_write else READ]
            kind_from = "hardware"
        insn = _instruction_for(decoded, insn_pc)
        frames = self._frames(pcs, insn_pc)
        when = self._clock_offset + sample.time / 1e9
        self._emit(kinds, kind_from, insn, registers, insn_pc, text, frames, sample, when)

    def _decode(self, ip: int) -> DecodedTrap:
        site = self._symbolizer.site(ip)
        before = (site.start, site.text) if site.start is not None else None
        return decode_trap(ip, site.text_at_ip, before)

    def _frames(self, pcs: tuple[int, ...], insn_pc: int) -> tuple[Frame, ...]:
        """Frame 0 is the accessing instruction with its inlined callers (the symbolizer's
        trap frames), then each return address's frames, as gdb's backtrace shows them."""
        key = (insn_pc, *pcs)
        frames = self._paths.get(key)
        if frames is not None:
            return frames
        site = self._symbolizer.site(pcs[0])
        rows = [site.frames[0]._replace(pc=insn_pc), *site.frames[1:]]
        for ra in pcs[1:]:
            rows.extend(self._symbolizer.caller(ra))
        frames = tuple(
            Frame(level, *row) for level, row in enumerate(rows[: self.request.bt_depth])
        )
        return self._paths.remember(key, frames)

    def _emit(self, kinds, kind_from, insn, registers, insn_pc, text, frames, sample, when):
        request = self.request
        old = self._shadow
        for kind in kinds:
            value, value_from = None, "unknown"
            if text is not None:  # derive_value reads gdb's AT&T text, as the classifier does
                value, value_from = values.derive_value(
                    text, kind, registers, request.address, request.length
                )
            if value_from == "unknown":
                value, value_from = None, None
            if kind != READ:
                record_old = old
                self._shadow = value
            else:
                record_old = None
                if value is not None:
                    self._shadow = value
            if not _wanted(request.access, kind):
                continue
            self.seq += 1
            record = Record(
                seq=self.seq,
                kind=kind,
                addr=request.address,
                length=request.length,
                old=record_old,
                value=value,
                pid=sample.pid,
                tid=sample.tid,
                pc=insn_pc,
                insn=text,
                time=when,
                frames=frames,
                kind_from=kind_from,
                watch=request.number,
                value_from=value_from,
            )
            self.summary.add(record)
            try:
                self.sinks.emit(record)
            except SinkError as error:  # the disk is full or the log is gone
                self.sink_error = str(error)
                self.finish("log failure", log_more=False)
                return
            if request.count is not None and self.seq >= request.count:
                self.finish(f"--count {request.count} reached", log_more=False)
                return

    def _refresh_modules(self) -> None:
        """Add the executable mappings made since the map was read (dlopen), from
        /proc/PID/maps: the MMAP2 record only said that there are some."""
        self._maps_changed = False
        try:
            with open(f"/proc/{self.request.pid}/maps", errors="surrogateescape") as maps:
                text = maps.read()
        except OSError:
            return  # the target is gone: its last hits keep the map they had
        known = {_identity(m.mapping) for m in self._modules.modules()}
        added = False
        for mapping in parse_maps(text):
            if mapping.executable and _identity(mapping) not in known:
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


def _wanted(access: str, kind: str) -> bool:
    return ("r" in access) if kind == READ else ("w" in access)


def _instruction_for(decoded: DecodedTrap, insn_pc: int):
    if decoded.in_progress is not None and decoded.in_progress[0] == insn_pc:
        return decoded.in_progress[2]
    return decoded.insn


def _register_reader(registers: dict[str, int]) -> Callable[[str], int]:
    """reg(name) for the classifier over the sampled user registers."""

    def read(name: str) -> int:
        if name == "eflags":
            return registers["flags"]
        wide = _LOW_HALVES.get(name)
        if wide is not None:
            return registers[wide] & _MASK32
        return registers[name]  # KeyError (fs_base...: not sampled) the classifier handles

    return read


def _identity(mapping) -> tuple:
    return mapping.start, mapping.end, mapping.offset, mapping.inode


def _exe_of(pid: int, fallback: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return fallback


def _fields(record: Record) -> dict:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
