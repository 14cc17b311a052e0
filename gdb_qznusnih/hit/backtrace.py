"""Turn gdb frames into plain Frame records, caching per pc.  Needs gdb.

What a pc means (function, file, line) never changes, so it is looked up once.
Unwinding is a function of the registers that locate frames (pc, stack and
frame pointer) and of the words the unwinder reads from the stack: each
caller's return address, which lies just below the caller's stack pointer,
and the saved frame pointer below it.  When the newest frame's registers and
all those words are unchanged since an earlier hit, the earlier walk is
reused.  Checking costs one memory read, against a gdb `older()` per frame
(each tens of microseconds).
"""

from __future__ import annotations

import gdb

from gdb_qznusnih.arm.target import enclosing_function, function_name, source_location
from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.record.access import Frame

# Stacks deeper than this are always walked.
_MAX_SNAPSHOT = 64 * 1024


class BacktraceCollector:
    """Collects up to `depth` frames; frame 0 is described by the accessing pc."""

    def __init__(
        self,
        depth: int,
        word_size: int,
        caches: CacheRegistry,
        with_args: bool = False,
        outermost=None,
    ) -> None:
        self.depth = depth
        self.with_args = with_args
        # outermost(frame) -> True ends the walk there (e.g. at the kernel's entry).
        self.outermost = outermost
        self._sp, self._fp = ("rsp", "rbp") if word_size == 8 else ("esp", "ebp")
        self._word = word_size
        self._frames = caches.cache("frames by (level, pc, inline depth)")
        # (insn pc, trap pc, sp, fp, in_caller) ->
        #     (frames, cut, bytes to read, slot offsets, contents)
        self._stacks = caches.cache("call paths by registers")

    def collect(
        self, insn_pc: int, trap_pc: int, state, in_caller: bool = False
    ) -> tuple[tuple[Frame, ...], bool]:
        """(frames from the newest outwards, whether --bt-depth cut off more frames);
        `state` reads this hit's registers and memory.  `in_caller`: the access was the
        call that entered the newest frame, so frame 0 is its caller, at insn_pc."""

        def newest() -> gdb.Frame | None:
            frame = gdb.newest_frame()
            if not in_caller:
                return frame
            try:
                return frame.older()
            except gdb.error:
                return None

        if self.with_args:
            frames, _, cut = self._walk(newest(), insn_pc)
            return frames, cut
        try:
            sp = state.reg(self._sp)
            key = (insn_pc, trap_pc, sp, state.reg(self._fp), in_caller)
            known = self._stacks.get(key)
            if known is not None:
                frames, cut, size, slots, expected = known
                stack = state.read(sp, size)
                if b"".join(stack[a:b] for a, b in slots) == expected:
                    return frames, cut
        except (gdb.error, gdb.MemoryError):
            frames, _, cut = self._walk(newest(), insn_pc)
            return frames, cut
        frames, callers, cut = self._walk(newest(), insn_pc)
        size = callers[-1][0] - sp if callers else 0
        if 0 < size <= _MAX_SNAPSHOT and all(
            caller_sp - sp >= self._word for caller_sp, _ in callers
        ):
            try:
                stack = state.read(sp, size)
            except gdb.MemoryError:
                return frames, cut
            slots = self._slots(stack, sp, callers)
            expected = b"".join(stack[a:b] for a, b in slots)
            self._stacks.remember(key, (frames, cut, size, slots, expected))
        return frames, cut

    def _unsigned(self, frame: gdb.Frame, register_name: str) -> int:
        return int(frame.read_register(register_name)) & ((1 << (8 * self._word)) - 1)

    def _slots(self, stack: bytes, sp: int, callers) -> list[tuple[int, int]]:
        """The byte ranges of `stack` (read from sp) that the unwinding depended on.

        Each caller's return address lies just below its stack pointer; a caller
        that keeps a frame pointer had it saved just below that (the standard
        prologue), which shows as the word there equalling the caller's unwound
        frame pointer.  Other words below a return address are the callee's own
        data, which may change without changing the backtrace.
        """
        word = self._word
        slots = []
        for caller_sp, caller_fp in callers:
            end = caller_sp - sp
            start = end - word
            saved = stack[start - word : start] if start >= word else b""
            if saved == caller_fp.to_bytes(word, "little"):
                start -= word
            slots.append((start, end))
        return slots

    def _walk(self, frame: gdb.Frame, insn_pc: int):
        """Unwind with gdb: the frames, each caller's (stack pointer, frame pointer), and
        whether frames were left beyond the depth."""
        frames = []
        callers = []
        level = 0
        last_pc = None
        inline_depth = 0
        while frame is not None and level < self.depth:
            pc = frame.pc()
            # Inline frames share a pc with their caller; tell them apart.
            inline_depth = inline_depth + 1 if pc == last_pc else 0
            last_pc = pc
            described_pc = insn_pc if level == 0 else pc
            key = (level, described_pc, inline_depth)
            cached = self._frames.get(key)
            if cached is None or self.with_args:
                cached = self._describe(frame, level, described_pc)
                if not self.with_args:
                    self._frames.remember(key, cached)
            frames.append(cached)
            if level > 0 and not self.with_args:
                callers.append((self._unsigned(frame, self._sp), self._unsigned(frame, self._fp)))
            level += 1
            if self.outermost is not None and self.outermost(cached):
                break
            try:
                frame = frame.older()
            except gdb.error:
                frame = None
                break
        else:
            return tuple(frames), callers, frame is not None
        return tuple(frames), callers, False

    def _describe(self, frame: gdb.Frame, level: int, pc: int) -> Frame:
        func = frame.name()
        if level == 0:
            # The trap pc is after the access; describe the accessing instruction.
            sal = gdb.find_pc_line(pc)
            func = function_name(pc) or func
        else:
            sal = frame.find_sal()
        file, line = source_location(sal)
        return Frame(
            level=level,
            pc=pc,
            func=func,
            file=file,
            line=line,
            args=_frame_args(frame) if self.with_args else None,
        )


def _frame_args(frame: gdb.Frame) -> str:
    """`argc=1, argv=0x7ffd…` as gdb's bt shows them."""
    try:
        block = enclosing_function(frame.block())
    except RuntimeError:
        return ""
    if block is None:
        return ""
    parts = []
    for symbol in block:
        if not symbol.is_argument:
            continue
        try:
            value = frame.read_var(symbol)
            parts.append(f"{symbol.print_name}={value.format_string(summary=True)}")
        except (gdb.error, RuntimeError):
            parts.append(f"{symbol.print_name}=<unavailable>")
    return ", ".join(parts)
