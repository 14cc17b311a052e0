"""The parts of a record's text block: backtrace lines in gdb's `bt` layout and the
instruction line, from the frames' fields.  Pure: no gdb.

    #0  0x000055d0c3a08168 in round_once at mix.c:40
    #1  0x000055d0c3a0826a in main at mix.c:61
        movb $0x1,(%rax)

`frame_roles` gives each part of a frame line with its role (lexer.ROLES), so the plain text
and its colours (colour.py) have one source.  The whole block is formats.BlockRenderer's.
"""

from __future__ import annotations

from gdb_qznusnih.options import one_line
from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.sinks.lexer import args_roles

HMS = "%H:%M:%S"

ARROW = "→"


def frame_roles(frame: Frame, width: int = 16, show_args: bool = False):
    """(role, text) for each part of one `bt` line, from the frame's fields: the text and its
    colours have one source.  Roles are lexer.ROLES (the colour module maps them to tokens)."""
    yield "frame_number", f"#{frame.level}"
    yield "space", " " * max(1, 3 - len(str(frame.level)))  # gdb's "#1  ", "#12 "
    yield "address", f"0x{frame.pc:0{width}x}"
    yield "text", " in "
    yield ("function", frame.func) if frame.func else ("meta", "??")
    if show_args and frame.args is not None:
        yield from args_roles(f" ({frame.args})")
    if frame.file is not None:
        yield "text", " at "
        yield "file", frame.file
        if frame.line is not None:
            yield "punct", ":"
            yield "line", str(frame.line)


def backtrace_roles(frames, show_args: bool = False):
    """(role, text) of the whole backtrace, each line ending with a newline."""
    width = address_width(frames)
    for frame in frames:
        yield from frame_roles(frame, width, show_args)
        yield "space", "\n"


def address_width(frames) -> int:
    """Hex digits gdb pads a frame's pc to: 16 for 64-bit addresses, else 8."""
    return 16 if any(f.pc > 0xFFFFFFFF for f in frames) else 8


def format_backtrace(frames, show_args: bool = False) -> str:
    """The frames as gdb's `bt` prints them, one line each, each ending with a newline."""
    return "".join(text for _, text in backtrace_roles(frames, show_args))


def format_insn(insn: str | None) -> str:
    """The instruction line, whitespace normalised: `    movb $0x1,(%rax)`; "" when unknown."""
    if not insn:
        return ""
    return "    " + one_line(insn) + "\n"
