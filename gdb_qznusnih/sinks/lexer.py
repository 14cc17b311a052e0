"""A pygments lexer for gdb backtraces, as gdb's `bt` prints them and as we do.  Pure: no gdb.

pygments is optional: importing this module never imports it.  `backtrace_lexer()` builds the
lexer on first use and raises ImportError when pygments is missing.  The hot path colours
frames from their fields (colour.py) and shares only `args_roles`; the lexer is for `bt` text
pasted from elsewhere.

Token types, one per part of a frame line (parents pick the colour in any pygments style):

    #1                      FRAME_NUMBER   Name.Label
    0x000055d0c3a0826a      ADDRESS        Number.Hex
    main, ns::f<int>        FUNCTION       Name.Function
    ??, <signal handler called>, Backtrace stopped: ...
                            META           Comment.Special
    argc, signo@entry       ARG_NAME       Name.Variable
    1, 0x7ffd..., ...       ARG_VALUE      Literal (strings: String, <optimized out>: Comment)
    mix.c, /lib/libc.so.6   FILE           Name.Namespace
    61                      LINE           Number.Integer
    in, at, from            Text;  ( ) , :  Punctuation;  =  Operator
"""

from __future__ import annotations

import functools
import re
from typing import ClassVar

# A frame line after "#N  ": optional "0xADDR in ", then what gdb calls the location.
_FRAME_HEAD = re.compile(r"(#\d+)([ \t]+)")
_ADDRESS_IN = re.compile(r"(0x[0-9a-fA-F]+)( in )")
_FILE_LINE = re.compile(r"[^\s\"'][^\"]*?(?::\d+)?")
_LIBRARY = re.compile(r"[^\s\"'][^\"]*")
_ARG_NAME = re.compile(r"[A-Za-z_$][\w$.:]*(?:@entry)?(?==)")
_VALUE_PART = re.compile(
    r"(?P<str>\"(?:[^\"\\]|\\.)*\"?)"
    r"|(?P<chr>'(?:[^'\\]|\\.)*'?)"
    r"|(?P<meta><[^<>\"]*>)"
    r"|(?P<text>[^\"'<]+|<)"
)
_CLOSERS = {")": "(", "}": "{", "]": "["}


@functools.cache
def _token_types():
    """The token types this lexer emits, by role (see the module docstring)."""
    from pygments.token import (
        Comment,
        Literal,
        Name,
        Number,
        Operator,
        Punctuation,
        String,
        Text,
        Whitespace,
    )

    return {
        "frame_number": Name.Label,
        "address": Number.Hex,
        "function": Name.Function,
        "meta": Comment.Special,
        "arg_name": Name.Variable,
        "arg_value": Literal,
        "string": String.Double,
        "char": String.Char,
        "value_meta": Comment,
        "file": Name.Namespace,
        "line": Number.Integer,
        "text": Text,
        "space": Whitespace,
        "punct": Punctuation,
        "operator": Operator,
    }


def token_types() -> dict:
    """Token types by role: frame_number, address, function, arg_name, arg_value, file, line…"""
    return dict(_token_types())


ROLES = (
    "frame_number", "address", "function", "meta", "arg_name", "arg_value", "string", "char",
    "value_meta", "file", "line", "text", "space", "punct", "operator",
)  # fmt: skip
_ROLE_OF_ROLE = {role: role for role in ROLES}


def args_roles(args: str):
    """(role, text) for each part of " (a=1, b=0x2 "x")": the one tokenizer that knows gdb's
    argument values, shared by the lexer and the renderer.  Needs no pygments."""
    for _, role, text in _args_tokens(_ROLE_OF_ROLE, 0, args):
        yield role, text


def _unquoted(text: str, start: int = 0):
    """(index, character) of each character of text[start:] outside quoted strings."""
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            i = _skip_quoted(text, i)
            continue
        yield i, ch
        i += 1


def _closing_paren(text: str, start: int) -> int:
    """Index of the ')' matching the '(' at `start`, skipping strings; -1 when none."""
    stack = []
    for i, ch in _unquoted(text, start):
        if ch in "({[":
            stack.append(ch)
        elif ch in _CLOSERS:
            if not stack or stack[-1] != _CLOSERS[ch]:
                return -1
            stack.pop()
            if not stack:
                return i
    return -1


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted string starting at text[i]."""
    quote, n = text[i], len(text)
    i += 1
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            return i + 1
        i += 1
    return n


def _is_balanced(text: str) -> bool:
    """True when the brackets of `text` (outside strings) all close."""
    depth = 0
    for _, ch in _unquoted(text):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _split_location(body: str) -> tuple[str, str, str]:
    """Split "func (args) at f.c:3" into ("func (args)", " at ", "f.c:3"); keyword "" if none."""
    for keyword, pattern in ((" at ", _FILE_LINE), (" from ", _LIBRARY)):
        idx = body.rfind(keyword)
        while idx > 0:
            head, tail = body[:idx], body[idx + len(keyword) :]
            if pattern.fullmatch(tail) and _is_balanced(head):
                return head, keyword, tail
            idx = body.rfind(keyword, 0, idx)
    return body, "", ""


def _split_args(middle: str) -> tuple[str, str]:
    """Split "ns::f<int> (a=1)" into ("ns::f<int>", "(a=1)"); args "" when there are none.

    C++ names may hold " (" themselves (`std::function<void (int)>::operator()`), so the args
    are the first " (" group that closes exactly at the end.
    """
    idx = middle.find(" (")
    while idx > 0:
        if _closing_paren(middle, idx + 1) == len(middle) - 1:
            return middle[:idx], middle[idx:]
        idx = middle.find(" (", idx + 1)
    return middle, ""


def _arg_starts(inner: str) -> list[int]:
    """Offsets in `inner` (the text between the parens) where each `name=value` begins."""
    starts = [0]
    depth = 0
    for i, ch in _unquoted(inner):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif (
            # "capacity 2 = {...}" inside a value is no new argument: a name is glued to "=".
            ch == ","
            and depth == 0
            and inner.startswith(" ", i + 1)
            and _ARG_NAME.match(inner, i + 2)
        ):
            starts.append(i + 2)
    return starts


def _value_tokens(tt: dict, pos: int, value: str):
    for m in _VALUE_PART.finditer(value):
        kind = m.lastgroup
        ttype = {
            "str": tt["string"],
            "chr": tt["char"],
            "meta": tt["value_meta"],
        }.get(kind, tt["arg_value"])
        yield pos + m.start(), ttype, m.group()


def _args_tokens(tt: dict, pos: int, args: str):
    """Tokens of " (a=1, b=0x2 "x")", `pos` being the offset of `args` in the input."""
    open_at = args.index("(")
    if open_at:
        yield pos, tt["space"], args[:open_at]
    yield pos + open_at, tt["punct"], "("
    inner_start = open_at + 1
    inner = args[inner_start:-1]
    starts = _arg_starts(inner)
    for k, start in enumerate(starts):
        end = starts[k + 1] - 2 if k + 1 < len(starts) else len(inner)
        base = pos + inner_start
        if k:
            yield base + start - 2, tt["punct"], ","
            yield base + start - 1, tt["space"], " "
        m = _ARG_NAME.match(inner, start, end)
        value_at = start
        if m:
            yield base + start, tt["arg_name"], m.group()
            yield base + m.end(), tt["operator"], "="
            value_at = m.end() + 1
        if value_at < end:
            yield from _value_tokens(tt, base + value_at, inner[value_at:end])
    yield pos + len(args) - 1, tt["punct"], ")"


def _location_tokens(tt: dict, pos: int, keyword: str, where: str):
    yield pos, tt["text"], keyword
    pos += len(keyword)
    file, colon, line = where.rpartition(":")
    if keyword == " at " and colon and line.isdigit():
        yield pos, tt["file"], file
        yield pos + len(file), tt["punct"], ":"
        yield pos + len(file) + 1, tt["line"], line
    else:
        yield pos, tt["file"], where


def _frame_body_tokens(tt: dict, pos: int, body: str):
    """Tokens of a frame line after "#N  "."""
    if body.startswith("<signal handler called>"):
        yield pos, tt["meta"], body
        return
    m = _ADDRESS_IN.match(body)
    if m:
        yield pos, tt["address"], m.group(1)
        yield pos + m.end(1), tt["text"], m.group(2)
        pos += m.end()
        body = body[m.end() :]
    head, keyword, where = _split_location(body)
    func, args = _split_args(head)
    if func:
        yield pos, (tt["meta"] if func == "??" else tt["function"]), func
    if args:
        yield from _args_tokens(tt, pos + len(func), args)
    if keyword:
        yield from _location_tokens(tt, pos + len(head), keyword, where)


def _frame_line(lexer, match):
    """RegexLexer callback for one "#N  …" line."""
    tt = _token_types()
    line, start = match.group(), match.start()
    head = _FRAME_HEAD.match(line)
    yield start, tt["frame_number"], head.group(1)
    yield start + head.end(1), tt["space"], head.group(2)
    body = line[head.end() :]
    try:
        tokens = list(_frame_body_tokens(tt, start + head.end(), body))
    except (ValueError, IndexError):  # never an Error token: fall back to plain text
        tokens = [(start + head.end(), tt["text"], body)]
    yield from tokens


@functools.cache
def _lexer_class():
    from pygments.lexer import RegexLexer

    tt = _token_types()

    class GdbBacktraceLexer(RegexLexer):
        """gdb backtraces: `#1  0x… in main (argc=1) at mix.c:61`, as `bt` prints them."""

        name = "GDB backtrace"
        aliases: ClassVar[list[str]] = ["gdb-backtrace", "gdbbt"]
        filenames: ClassVar[list[str]] = []
        mimetypes: ClassVar[list[str]] = []

        tokens: ClassVar[dict] = {
            "root": [
                (r"#\d+[ \t]+[^\n]*", _frame_line),
                (r"<signal handler called>[^\n]*", tt["meta"]),
                (r"Backtrace stopped:[^\n]*", tt["meta"]),
                (r"\(More stack frames follow\.\.\.\)", tt["meta"]),
                (r"[^\n]+", tt["text"]),
                (r"\n", tt["space"]),
            ]
        }

    return GdbBacktraceLexer


@functools.cache
def backtrace_lexer():
    """The (cached) GdbBacktraceLexer instance; raises ImportError without pygments."""
    return _lexer_class()(stripnl=False, ensurenl=True)
