"""Records as text blocks for the terminal and the text logs, plain or coloured.  Pure: no gdb.

A block is a header, the backtrace in gdb's `bt` layout and the instruction:

    [17] WRITE 0x55d0c3a0b04b  0x00 → 0x2a  tid 4243  03:13:20.123456
    #0  0x000055d0c3a08168 in round_once at mix.c:40
    #1  0x000055d0c3a0826a in main at mix.c:61
        movb $0x1,(%rax)

Hits come from a few call paths many times over, so `BlockRenderer` renders (and colours) each
backtrace and each instruction once; per record only the header is formatted.
pygments is optional and imported only when colour is asked for.
"""

from __future__ import annotations

import time as _time

from gdb_qznusnih.record.access import (
    WRITE,
    Frame,
    Record,
    SecondStamp,
    escape_percent,
    frames_key,
    split_seconds,
)
from gdb_qznusnih.sinks.lexer import args_roles

HMS = "%H:%M:%S"

ARROW = "→"
VALUE_GUESS_NOTE = "(kind guessed from the value change)"


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


def format_frame(frame: Frame, width: int = 16, show_args: bool = False) -> str:
    """One `bt` line: `#1  0x000055d0c3a0826a in main (argc=1) at mix.c:61`."""
    return "".join(text for _, text in frame_roles(frame, width, show_args))


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
    return "    " + " ".join(insn.split()) + "\n"


def _header_tail(record: Record) -> str:
    """What follows the time in a header: the value-guess note and whole-system fields."""
    tail = ""
    if record.mode is not None:
        comm = f" ({record.comm})" if record.comm else ""
        tail += f"  {record.mode} pid {record.pid}{comm}"
    if record.kind_from == "value":
        tail += "  " + VALUE_GUESS_NOTE
    return tail


def format_header(record: Record) -> str:
    """`[17] WRITE 0x55d0c3a0b04b  0x00 → 0x2a  tid 4243  03:13:20.123456` plus notes."""
    whole, micros = split_seconds(record.time)
    hms = _time.strftime(HMS, _time.gmtime(whole))
    return BlockRenderer()._header_template(record) % _header_fields(record, hms, micros)


def _header_fields(record: Record, hms, micros: int) -> tuple:
    """The values for a header template's %-slots: seq, [old,] value, tid, hh:mm:ss, micros."""
    if record.kind == WRITE and record.old is not None:
        return (record.seq, record.old, record.value, record.tid, hms, micros)
    return (record.seq, record.value, record.tid, hms, micros)


def _encode(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in a name from the target
        return text.encode("utf-8", "replace")


class BlockRenderer:
    """Renders records as blocks, with one %-template per kind of record.

    Hits come from a few access sites and call paths many times over.  The body (backtrace
    and instruction, coloured once) is cached per `frames_key` and instruction (and args when
    shown); a template adds the parts of the header that do not change between hits, so a
    record costs one %-format.  The same pcs give the same functions and lines until symbols
    change; call `clear()` then (new objfile, exec).
    """

    # Call paths and instruction texts are few; args (with show_args) may not be: bound memory.
    _CACHE_LIMIT = 4096

    def __init__(self, colorizer=None, show_args: bool = False) -> None:
        """`colorizer`: a colour.Colorizer, or None for plain text."""
        self.colorizer = colorizer
        self.show_args = show_args
        self._bodies: dict[tuple, bytes] = {}
        self._templates: dict[tuple, bytes] = {}
        self._hms = SecondStamp(HMS)

    def clear(self) -> None:
        """Forget cached text (symbols changed)."""
        self._bodies.clear()
        self._templates.clear()

    def _label(self, kind: str) -> str:
        """READ or WRITE, padded to one width, coloured when there is colour."""
        label = kind.upper()
        padding = " " * (5 - len(label))
        if self.colorizer is None:
            return label + padding
        return self.colorizer.kind(kind, label) + padding

    def _header_template(self, record: Record) -> str:
        """The header line with %-slots for seq, [old,] value, tid, hh:mm:ss and microseconds."""
        digits = f"%0{2 * record.length}x"
        value = f"0x{digits}" if self.colorizer is None else self.colorizer.bold(f"0x{digits}")
        if record.kind == WRITE:
            before = "?" if record.old is None else "0x" + digits
            values = f"{before} {ARROW} {value}"
        else:
            values = value
        head = f"[%d] {self._label(record.kind)} 0x{record.addr:x}  {values}  tid %d  %s.%06d"
        return head + escape_percent(_header_tail(record)) + "\n"

    def _body(self, record: Record, key: tuple) -> bytes:
        body = self._bodies.get(key)
        if body is not None:
            return body
        insn = format_insn(record.insn)
        if self.colorizer is None:
            text = format_backtrace(record.frames, self.show_args)
        else:
            painter = self.colorizer.painter
            text = painter.backtrace(record.frames, self.show_args)
            if insn:
                insn = "    " + painter.insn(insn[4:])
        body = text.encode("utf-8", "replace") + insn.encode("utf-8", "replace")
        if len(self._bodies) >= self._CACHE_LIMIT:
            self._bodies.clear()
        self._bodies[key] = body
        return body

    def _template(self, record: Record, body_key: tuple, shape: tuple) -> bytes:
        template = _encode(self._header_template(record)) + self._body(record, body_key).replace(
            b"%", b"%%"
        )
        if len(self._templates) >= self._CACHE_LIMIT:
            self._templates.clear()
        self._templates[shape] = template
        return template

    def template(self, record: Record, key: tuple | None = None) -> bytes:
        """The block as UTF-8 with %-slots for seq, [old,] value, tid, hh:mm:ss (`HMS`) and
        microseconds; old has a slot on writes whose old value is known."""
        if key is None:
            key = frames_key(record.frames)
        if self.show_args:
            key = (key, record.insn, tuple([f.args for f in record.frames]))
        else:
            key = (key, record.insn)
        shape = (key, record.kind, record.kind_from, record.old is None, record.addr,
                 record.length, record.mode, record.comm, record.pid)  # fmt: skip
        return self._templates.get(shape) or self._template(record, key, shape)

    def render_bytes(self, record: Record, key: tuple | None = None) -> bytes:
        """The whole block as UTF-8, ending with a newline; `key` is frames_key(frames)."""
        whole, micros = split_seconds(record.time)
        fields = _header_fields(record, self._hms.bytes(whole), micros)
        return self.template(record, key) % fields

    def render(self, record: Record) -> str:
        """The whole block as text, ending with a newline."""
        return self.render_bytes(record).decode()
