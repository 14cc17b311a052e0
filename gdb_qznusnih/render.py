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

from .record import (
    READ,
    WRITE,
    Frame,
    Record,
    SecondStamp,
    escape_percent,
    frames_key,
    split_seconds,
)

HMS = "%H:%M:%S"

ARROW = "→"
VALUE_GUESS_NOTE = "(kind guessed from the value change)"

# Fixed ANSI colours for the kind label: basic colours follow the terminal's own palette, so
# they read on dark and light backgrounds; cyan and red also differ for colour-blind readers.
_RESET = "\x1b[0m"
_KIND_SGR = {READ: "\x1b[1;36m", WRITE: "\x1b[1;31m"}
_BOLD = "\x1b[1m"

# The default scheme (TerminalFormatter, 16 colours), close to gdb's own `bt` styling but
# without gdb's yellow and dark blue, which vanish on light and dark backgrounds respectively.
_SCHEME_BY_NAME = {
    "Token": "",
    "Token.Text.Whitespace": "",
    "Token.Comment": "brightblack",
    "Token.Comment.Special": "brightblack",
    "Token.Name.Label": "",
    "Token.Name.Function": "**",
    "Token.Name.Variable": "cyan",
    "Token.Name.Namespace": "green",
    "Token.Name.Constant": "magenta",
    "Token.Name.Attribute": "magenta",
    "Token.Literal": "",
    "Token.Literal.String": "magenta",
    "Token.Literal.Number": "magenta",
    "Token.Literal.Number.Hex": "brightblack",
    "Token.Literal.Number.Integer": "green",
    "Token.Punctuation": "",
    "Token.Operator": "",
}


def resolve_color(mode: str, stream_is_tty: bool, environ) -> bool:
    """Whether to colour: `always`, `never`, or `auto` (a terminal and NO_COLOR unset).

    NO_COLOR disables colour whatever its value, even empty (https://no-color.org).
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    if mode == "auto":
        return bool(stream_is_tty) and "NO_COLOR" not in environ
    raise ValueError(f"unknown colour mode '{mode}'; use auto, always or never")


def check_style(name: str | None) -> None:
    """Raise ValueError (one line) unless `name` is None or a pygments style."""
    if name is None:
        return
    try:
        from pygments.styles import get_all_styles, get_style_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        raise ValueError(
            f"--style {name} needs pygments, which gdb's Python cannot import; "
            "install python3-pygments"
        ) from None
    try:
        get_style_by_name(name)
    except ClassNotFound:
        names = ", ".join(sorted(get_all_styles()))
        raise ValueError(
            f"unknown style '{name}'; valid names ('pygmentize -L styles'): {names}"
        ) from None


def _scheme():
    from pygments.token import string_to_tokentype

    return {string_to_tokentype(k): (v, v) for k, v in _SCHEME_BY_NAME.items()}


class Colorizer:
    """ANSI colour for headers, backtraces and instructions.

    `style=None` uses 16 terminal colours that read on dark and light backgrounds; a pygments
    style name uses that style in 256 colours.  Unknown names raise ValueError.  Without
    pygments, only the header is coloured (it needs no pygments); backtraces stay plain.
    """

    def __init__(self, style: str | None = None) -> None:
        check_style(style)
        self.style = style
        self._formatter = None
        self._bt_lexer = None
        self._gas_lexer = None
        self._highlight = None
        try:
            from pygments import highlight
            from pygments.formatters import Terminal256Formatter, TerminalFormatter
            from pygments.lexers import GasLexer

            from .lexer import backtrace_lexer
        except ImportError:
            return
        if style is None:
            self._formatter = TerminalFormatter(colorscheme=_scheme())
        else:
            self._formatter = Terminal256Formatter(style=style)
        self._highlight = highlight
        self._bt_lexer = backtrace_lexer()
        self._gas_lexer = GasLexer(stripnl=False, ensurenl=True)

    @property
    def has_pygments(self) -> bool:
        return self._highlight is not None

    def kind(self, kind: str, text: str | None = None) -> str:
        """`text` (default: READ or WRITE) in the colour of `kind`."""
        label = kind.upper() if text is None else text
        return f"{_KIND_SGR.get(kind, _BOLD)}{label}{_RESET}"

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}"

    def _lex(self, text: str, lexer) -> str:
        if self._highlight is None or not text:
            return text
        out = self._highlight(text, lexer, self._formatter)
        if not text.endswith("\n") and out.endswith("\n"):
            out = out[:-1]
        return out

    def backtrace(self, text: str) -> str:
        """Backtrace lines (gdb `bt` layout) in colour."""
        return self._lex(text, self._bt_lexer)

    def insn(self, text: str) -> str:
        """An AT&T instruction line in colour."""
        return self._lex(text, self._gas_lexer)


def format_frame(frame: Frame, width: int = 16, show_args: bool = False) -> str:
    """One `bt` line: `#1  0x000055d0c3a0826a in main (argc=1) at mix.c:61`."""
    func = frame.func or "??"
    if show_args and frame.args is not None:
        func = f"{func} ({frame.args})"
    where = ""
    if frame.file is not None:
        where = f" at {frame.file}" if frame.line is None else f" at {frame.file}:{frame.line}"
    return f"#{frame.level:<2} 0x{frame.pc:0{width}x} in {func}{where}"


def address_width(frames) -> int:
    """Hex digits gdb pads a frame's pc to: 16 for 64-bit addresses, else 8."""
    return 16 if any(f.pc > 0xFFFFFFFF for f in frames) else 8


def format_backtrace(frames, show_args: bool = False) -> str:
    """The frames as gdb's `bt` prints them, one line each, each ending with a newline."""
    width = address_width(frames)
    return "".join(format_frame(f, width, show_args) + "\n" for f in frames)


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

    def __init__(self, colorizer: Colorizer | None = None, show_args: bool = False) -> None:
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
        on, off = (_BOLD, _RESET) if self.colorizer is not None else ("", "")
        digits = f"%0{2 * record.length}x"
        if record.kind == WRITE:
            before = "?" if record.old is None else "0x" + digits
            values = f"{before} {ARROW} {on}0x{digits}{off}"
        else:
            values = f"{on}0x{digits}{off}"
        head = f"[%d] {self._label(record.kind)} 0x{record.addr:x}  {values}  tid %d  %s.%06d"
        return head + escape_percent(_header_tail(record)) + "\n"

    def _body(self, record: Record, key: tuple) -> bytes:
        body = self._bodies.get(key)
        if body is not None:
            return body
        text = format_backtrace(record.frames, self.show_args)
        insn = format_insn(record.insn)
        if self.colorizer is not None:
            text = self.colorizer.backtrace(text)
            if insn:
                insn = "    " + self.colorizer.insn(insn[4:])
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


def render_block(record: Record, show_args: bool = False) -> str:
    """One record as a plain text block (no colour, no caching kept between calls)."""
    return BlockRenderer(show_args=show_args).render(record)
