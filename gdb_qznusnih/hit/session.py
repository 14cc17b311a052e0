"""One armed watch: the hardware watchpoint, classification of each hit, and
records to the sinks.  Needs gdb.

Data flows one way: hit -> classify -> record -> sinks.  Everything that a pc
determines (which instruction, its kind, its frame 0) is cached per pc.
"""

from __future__ import annotations

import time

import gdb

from gdb_qznusnih.arm import target
from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify import x86 as classify
from gdb_qznusnih.classify.trap import DecodedTrap, TrapAccess, TrapClassifier, decode_trap
from gdb_qznusnih.classify.values import full_register_reader
from gdb_qznusnih.hit import native
from gdb_qznusnih.hit.backtrace import BacktraceCollector
from gdb_qznusnih.hit.locate import InstructionLocator
from gdb_qznusnih.options import WatchOptions
from gdb_qznusnih.record.builder import RecordBuilder
from gdb_qznusnih.record.condition import optional_condition
from gdb_qznusnih.record.summary import RunningTime, Summary
from gdb_qznusnih.sinks.logs import SinkError, write_all
from gdb_qznusnih.sinks.status_line import StatusLine


class AccessWatchpoint(gdb.Breakpoint):
    """A hardware access watchpoint whose hits go to a WatchSession."""

    def __init__(self, session: WatchSession, spec: str) -> None:
        self.session = session
        super().__init__(spec, gdb.BP_WATCHPOINT, gdb.WP_ACCESS, internal=True)
        self.silent = True

    def stop(self) -> bool:
        try:
            return self.session.on_hit()
        except KeyboardInterrupt:
            # gdb turns a SIGINT that lands while Python runs into this: stop now.
            self.session.interrupted = True
            return True
        except Exception as error:  # a hit must never take the target down with it
            return self.session.fail(error)


class WatchSession(RunningTime):
    """An armed watch on `length` bytes at `address` of the selected inferior."""

    def __init__(
        self,
        number: int,
        opts: WatchOptions,
        address: int,
        sinks,
        caches: CacheRegistry,
        kernel=None,
        status=None,
    ):
        self.number = number
        self.opts = opts
        self.address = address
        self.length = opts.length
        self.sinks = sinks
        self.status = status if status is not None else StatusLine(enabled=False)
        self.kernel = kernel
        self.started = time.time()
        self.summary = Summary(start=self.started)
        self.logged = 0  # records the sinks took whole
        self.hits = 0
        self.finish_reason: str | None = None
        self.interrupted = False  # a SIGINT reached gdb during a hit
        self._deadline = time.monotonic() + opts.duration if opts.duration else None
        self._word = target.word_size()
        # Whole-system mode reads through gdb: QEMU's gdbstub is the only way in.
        self._state = (
            native.GdbState(self._word)
            if kernel is not None
            else native.state_for(gdb.selected_inferior(), self._word)
        )
        self._pc_name = "rip" if self._word == 8 else "eip"
        self._sp_name = "rsp" if self._word == 8 else "esp"
        # Everything cached about pcs and call paths, here and in the sinks: cleared at once.
        self.caches = caches
        self._locator = InstructionLocator(gdb.selected_frame().architecture(), caches)
        self._backtrace = BacktraceCollector(
            opts.bt_depth, self._word, caches, opts.args, kernel.is_entry_frame if kernel else None
        )
        self._decoded = caches.cache("decoded trap pcs")
        self._classifier = TrapClassifier(
            address,
            self.length,
            self._word,
            caches,
            instruction_before=self._locator.before,
            instruction_at=lambda pc: _text(self._locator.at(pc)),
        )
        self._builder = RecordBuilder(
            number, address, self.length, opts.access, opts.count,
            known=target.read_value(address, self.length),
            condition=optional_condition(opts.if_cond),
            stop_condition=optional_condition(opts.stop_if),
        )  # fmt: skip
        self.watchpoint = AccessWatchpoint(self, target.watch_spec(address, self.length))
        # Whole-system mode: the machine runs on after the program, so watch for its exit.
        self.exit_breakpoint = None
        if kernel is not None:
            self.exit_breakpoint = kernel.break_on_exit(
                lambda: self.finish(f"process {kernel.want_pid} exited")
            )
        self.scope_end = None  # ends a stack slot's watch when its frame returns (arm/stack_scope)
        self.sink_error: str | None = None
        # on_failure(session, error) -> stop?: says what was lost and ends the watch.
        self.on_failure = None
        self.object_size: int | None = None  # what ADDR points to, when gdb knows its type

    # -- the hot path -------------------------------------------------------

    def on_hit(self) -> bool:
        """Log one trap; True stops the program (only for --stop or a finished watch)."""
        if self.finish_reason is not None:
            return False
        context = None
        if self.kernel is not None:
            context = self.kernel.hit_context()
            if context is None:
                return False
        self.hits += 1
        # No gdb.Frame here: gdb would compute the frame's id (its CFA), which
        # would be most of the cost of a hit.
        pid, tid = target.current_thread_ids()
        state = self._state.snapshot(tid)
        pc = state.reg(self._pc_name)
        decoded = self._decoded.get(pc)
        if decoded is None:
            decoded = self._decoded.remember(pc, self._decode(pc))
        # The value comes from the registers where the instruction determines it: memory,
        # read now, may already hold another thread's store.
        read = self._memory_reader(state)
        insn_pc, text, kinds, kind_from, return_address = self._classify(pc, decoded, read, state)
        # A branch that cannot be located: frame 0 is where it went.
        frame0_pc = pc if insn_pc is None else insn_pc
        frames, cut = self._backtrace.collect(frame0_pc, pc, state, return_address is not None)
        if context is not None and context.mode == "kernel":
            # Kernel frames up to the system call entry, then up to as many user frames.
            frames = tuple(self.kernel.stitch(frames, 2 * self.opts.bt_depth, context))
            cut = False  # the stitched user part has its own bound
        reg = full_register_reader(_register_or_lookup_error(state.reg), self._word)
        self._emit(kinds, kind_from, text, reg, read, insn_pc, frames, cut, pid, tid, context)
        return self._should_stop()

    def _memory_reader(self, state):
        address, length = self.address, self.length
        return lambda: int.from_bytes(state.read(address, length), "little")

    def _classify(self, pc, decoded, read, state) -> TrapAccess:
        """What this hit stands for: from the instruction, else from the value change."""

        def stack_top() -> int | None:
            sp = state.reg(self._sp_name) & ((1 << 8 * self._word) - 1)  # gdb's are signed
            try:
                return int.from_bytes(state.read(sp, self._word), "little")
            except (gdb.error, gdb.MemoryError, OSError):
                return None

        found = self._classifier.classify(pc, decoded, state.reg, stack_top)
        if found is not None:
            return found
        kind = classify.kind_from_value(self._builder.known, read())
        return TrapAccess(decoded.insn_pc, decoded.text, [kind], "value")

    def _decode(self, pc: int) -> DecodedTrap:
        locator = self._locator
        return decode_trap(
            pc, _text(locator.at(pc)), locator.before(pc), locator.starts_function(pc), self._word
        )

    def _emit(self, kinds, kind_from, text, reg, read, insn_pc, frames, cut, pid, tid, context):
        mode = comm = None
        if context is not None:
            mode, comm = context.mode, context.comm
            # Without kernel symbols (cr3 mode) the task is unknown: the wanted pid, if any.
            pid = context.pid if context.pid is not None else self.kernel.want_pid
            tid = context.tid if context.tid is not None else pid
        builder = self._builder
        records = builder.build(
            kinds, text, reg, self._word, read, pid, tid, insn_pc, time.time(), frames,
            kind_from, mode, comm, cut,
        )  # fmt: skip
        for record in records:
            self.summary.add(record)
            try:
                self.sinks.emit(record)
                self.logged += 1
                self.status.update(record)
            except SinkError as error:  # the disk is full or the log is gone
                self.sink_error = str(error)
                self.finish("log failure")
                return
        if builder.end_reason is not None:
            self.finish(builder.end_reason)

    @property
    def seq(self) -> int:
        """Records made so far."""
        return self._builder.seq

    def _should_stop(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.finish(f"--duration {self.opts.duration:g}s reached")
        return self.finish_reason is not None or self.opts.stop or self.interrupted

    def request_stop(self) -> None:
        """A stop was asked for (from another thread): the next hit stops the target."""
        self.interrupted = True

    def symbols_changed(self) -> None:
        """Forget what pcs meant: gdb loaded a new objfile (exec does too)."""
        self.caches.clear()

    def address_space_changed(self) -> None:
        """The process has a new address space (exec): read memory through a fresh handle."""
        self._state.reopen()

    # -- life cycle ---------------------------------------------------------

    def finish(self, reason: str) -> None:
        """Mark the watch finished; the watchpoint goes at the next stop."""
        if self.finish_reason is None:
            self.finish_reason = reason

    def fail(self, error: Exception) -> bool:
        """A hit raised: the watch ends (see `on_failure`); True stops the target."""
        if self.finish_reason is not None:
            return False
        if self.kernel is not None and isinstance(error, gdb.error):
            # Whole-system mode: a read over the gdbstub failing is QEMU going away.
            self.finish("lost the connection to the target")
            return True
        self.finish("error in a hit")
        stop = self.on_failure(self, error) if self.on_failure is not None else True
        return stop or self.opts.stop

    def remove(self) -> None:
        """Remove the hardware watchpoint (and the exit and scope breakpoints), close the logs.

        Idempotent.
        """
        for bp in (self.watchpoint, self.exit_breakpoint, self.scope_end):
            if bp is not None and bp.is_valid():
                bp.delete()
        self.watchpoint = self.exit_breakpoint = self.scope_end = None
        if self.kernel is not None:
            self.kernel.close()
        self._state.close()
        self.sinks.close()

    def counts(self) -> tuple[int, int]:
        return self.summary.reads, self.summary.writes

    accesses_lost = False  # a gdb engine hit is never lost (the perf engine's may be)

    def loss_text(self) -> str:
        """Nothing: see accesses_lost."""
        return ""


def _register_or_lookup_error(read):
    """gdb.error for a register the target lacks (fs_base over a gdbstub) as the LookupError
    value derivation expects: that value is then unknown, not a failed hit."""

    def reg(name: str) -> int:
        try:
            return read(name)
        except gdb.error as error:
            raise LookupError(name) from error

    return reg


def _text(found: tuple[int, str] | None) -> str | None:
    return found[1] if found is not None else None


def write_out(text: str) -> None:
    """Write straight to gdb's stdout: works inside captured `continue`s too."""
    write_all(1, text.encode("utf-8", "replace"))
