"""Colour for the terminal and the HTML report, from one place.  Pure: no gdb.

Backtraces are coloured from the frames' fields (`render.backtrace_roles`), never by lexing
the text just built from them; instructions by pygments' GasLexer.  The terminal and the HTML
report differ only in the pygments formatter.  pygments is optional: without it, backtraces
and instructions stay plain (the terminal still colours the READ/WRITE labels).
"""

from __future__ import annotations

import importlib
import io
from html import escape

from gdb_qznusnih.record.access import READ, WRITE
from gdb_qznusnih.sinks.render import backtrace_roles, format_backtrace

HTML_STYLE = "default"  # pygments' own: dark text on a light page

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
    styles, util = _pygments("styles"), _pygments("util")
    if styles is None or util is None:
        raise ValueError(
            f"--style {name} needs pygments, which gdb's Python cannot import; "
            "install python3-pygments"
        )
    try:
        styles.get_style_by_name(name)
    except util.ClassNotFound:
        names = ", ".join(sorted(styles.get_all_styles()))
        raise ValueError(
            f"unknown style '{name}'; valid names ('pygmentize -L styles'): {names}"
        ) from None


class Painter:
    """Backtraces and instructions through one pygments formatter, or plain without one.

    `plain` turns text into the output's plain form (identity on a terminal, HTML escaping
    for the report).
    """

    def __init__(self, formatter=None, plain=str) -> None:
        self._formatter = formatter
        self._plain = plain
        self._gas_lexer = None
        self._types = None
        if formatter is not None:
            from pygments.lexers import GasLexer

            from gdb_qznusnih.sinks.lexer import token_types

            self._gas_lexer = GasLexer(stripnl=False, ensurenl=True)
            self._types = token_types()

    @property
    def colours(self) -> bool:
        return self._formatter is not None

    def _format(self, tokens) -> str:
        out = io.StringIO()
        self._formatter.format(tokens, out)
        return out.getvalue()

    def backtrace(self, frames, show_args: bool = False) -> str:
        """The frames in gdb's `bt` layout, one line each, coloured from their fields."""
        if self._formatter is None:
            return self._plain(format_backtrace(frames, show_args))
        types = self._types
        return self._format(
            (types[role], text) for role, text in backtrace_roles(frames, show_args)
        )

    def insn(self, text: str) -> str:
        """An AT&T instruction in colour; a trailing newline is kept only if `text` has one."""
        if self._formatter is None or not text:
            return self._plain(text)
        out = self._format(self._gas_lexer.get_tokens(text))
        if not text.endswith("\n") and out.endswith("\n"):
            out = out[:-1]
        return out


def _scheme():
    from pygments.token import string_to_tokentype

    return {string_to_tokentype(k): (v, v) for k, v in _SCHEME_BY_NAME.items()}


def _pygments(module: str):
    """pygments.`module`, or None when gdb's Python cannot import pygments (it is optional)."""
    try:
        return importlib.import_module(f"pygments.{module}")
    except ImportError:
        return None


def terminal_painter(style: str | None) -> Painter:
    """ANSI colour: 16 colours by default, or a pygments style in 256 colours."""
    formatters = _pygments("formatters")
    if formatters is None:
        return Painter()
    if style is None:
        return Painter(formatters.TerminalFormatter(colorscheme=_scheme()))
    return Painter(formatters.Terminal256Formatter(style=style))


def html_painter(style: str | None) -> tuple[Painter, str]:
    """(painter, its CSS scoped to `.hl`) for the HTML report; escaped plain HTML without
    pygments."""
    formatters = _pygments("formatters")
    if formatters is None:
        return Painter(plain=escape), ""
    style = style or HTML_STYLE
    formatter = formatters.HtmlFormatter(style=style, nowrap=True)
    return Painter(formatter), formatters.HtmlFormatter(style=style).get_style_defs(".hl")


class Colorizer:
    """ANSI colour for headers, backtraces and instructions on a terminal.

    `style=None` uses 16 terminal colours that read on dark and light backgrounds; a pygments
    style name uses that style in 256 colours.  Unknown names raise ValueError.  Without
    pygments, only the header is coloured (it needs no pygments); backtraces stay plain.
    """

    def __init__(self, style: str | None = None) -> None:
        check_style(style)
        self.style = style
        self.painter = terminal_painter(style)

    def kind(self, kind: str, text: str | None = None) -> str:
        """`text` (default: READ or WRITE) in the colour of `kind`."""
        label = kind.upper() if text is None else text
        return f"{_KIND_SGR.get(kind, _BOLD)}{label}{_RESET}"

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}"
