"""Turn gdb frames into plain Frame records, caching per pc.  Needs gdb.

Walking frames is unavoidable per hit (the caller chain differs), but what a
pc means (function, file, line) never changes, so it is looked up once.
"""

from __future__ import annotations

import gdb

from .record import Frame


class BacktraceCollector:
    """Collects up to `depth` frames; frame 0 is described by the accessing pc."""

    def __init__(self, depth: int, with_args: bool = False) -> None:
        self.depth = depth
        self.with_args = with_args
        self._frames: dict[tuple[int, int, int], Frame] = {}  # (level, pc, inline depth)

    def clear(self) -> None:
        self._frames.clear()

    def collect(self, frame: gdb.Frame, insn_pc: int) -> tuple[Frame, ...]:
        """Frames from `frame` (the newest) outwards."""
        frames = []
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
                    self._frames[key] = cached
            frames.append(cached)
            level += 1
            try:
                frame = frame.older()
            except gdb.error:
                break
        return tuple(frames)

    def _describe(self, frame: gdb.Frame, level: int, pc: int) -> Frame:
        func = frame.name()
        if level == 0:
            # The trap pc is after the access; describe the accessing instruction.
            sal = gdb.find_pc_line(pc)
            func = _function_name(pc) or func
        else:
            sal = frame.find_sal()
        symtab = sal.symtab
        return Frame(
            level=level,
            pc=pc,
            func=func,
            file=symtab.filename if symtab is not None else None,
            line=sal.line if symtab is not None and sal.line else None,
            args=_frame_args(frame) if self.with_args else None,
        )


def _function_name(pc: int) -> str | None:
    try:
        block = gdb.current_progspace().block_for_pc(pc)
    except RuntimeError:
        return None
    while block is not None and block.function is None:
        block = block.superblock
    return block.function.print_name if block is not None else None


def _frame_args(frame: gdb.Frame) -> str:
    """`argc=1, argv=0x7ffd…` as gdb's bt shows them."""
    try:
        block = frame.block()
    except RuntimeError:
        return ""
    while block is not None and block.function is None:
        block = block.superblock
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
