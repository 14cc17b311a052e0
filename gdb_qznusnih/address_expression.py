"""Refuse an address expression that could change anything before gdb evaluates it.

gdb evaluates ADDR with `may-call-functions` and `may-write-memory` off (target.py), which
stops calls into the target and writes to its memory.  gdb refuses to turn
`may-write-registers` off while a process runs, and no setting guards convenience
variables or gdb's own functions (`$_shell(...)`), so assignments and `$function(...)`
calls are refused here, by their tokens.  Pure: no gdb.
"""

from __future__ import annotations

import re

MAX_LENGTH = 1000
SHOWN_LENGTH = 60

# C's assignment operators, gdb's Pascal/Ada/Modula-2 one, increment and decrement.
_WRITING_OPERATORS = frozenset(
    ["=", ":=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=", "++", "--"]
)
# Longest first: maximal munch, as C's lexer reads them (`a<<=b` is one `<<=`, `a<=b` a `<=`).
_PUNCTUATORS = sorted(
    _WRITING_OPERATORS | {"==", "!=", "<=", ">=", "<<", ">>", "->", "&&", "||", "::"},
    key=len,
    reverse=True,
)
_CONVENIENCE_CALL = re.compile(r"\$[\w$]+\s*\(")
_QUOTES = "'\""


class ExpressionError(ValueError):
    """An address expression refused before evaluation; the message is one line."""


def shown(expression: str) -> str:
    """The expression quoted for a one-line message, cut short when long."""
    if len(expression) > SHOWN_LENGTH:
        expression = expression[: SHOWN_LENGTH - 1] + "…"
    return f"'{expression}'"


def check_read_only(expression: str) -> None:
    """Raise ExpressionError unless `expression` can only read: no assignment, no
    increment or decrement, no call of a gdb function, nothing unprintable, not huge."""
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(
            f"the address expression is {len(expression):,} characters long; "
            f"give an address or an expression of at most {MAX_LENGTH:,} characters"
        )
    unprintable = next((ch for ch in expression if not ch.isprintable()), None)
    if unprintable is not None:
        raise ExpressionError(
            f"the address expression contains the unprintable character U+{ord(unprintable):04X}; "
            "type it again without it"
        )
    code = _without_literals(expression)
    writer = next((token for token in _tokens(code) if token in _WRITING_OPERATORS), None)
    if writer is not None:
        raise ExpressionError(
            f"{shown(expression)} assigns with '{writer}'; ADDR must only read the target: "
            "give an address such as '&buf[3]' or '0x7ffd1234'"
        )
    call = _CONVENIENCE_CALL.search(code)
    if call is not None:
        raise ExpressionError(
            f"{shown(expression)} calls {call.group().rstrip('( ')}(); ADDR must only read "
            "the target: give an address such as '&buf[3]' or '0x7ffd1234'"
        )


def _without_literals(expression: str) -> str:
    """The expression with the insides of string and character literals blanked out."""
    out: list[str] = []
    quote = None
    escaped = False
    for ch in expression:
        if quote is None:
            out.append(ch)
            quote = ch if ch in _QUOTES else None
        elif escaped:
            escaped = False
            out.append(" ")
        elif ch == "\\":
            escaped = True
            out.append(" ")
        elif ch == quote:
            quote = None
            out.append(ch)
        else:
            out.append(" ")
    return "".join(out)


def _tokens(code: str):
    """The punctuators of `code`, longest match first; other characters one by one."""
    i = 0
    while i < len(code):
        token = next((p for p in _PUNCTUATORS if code.startswith(p, i)), code[i])
        yield token
        i += len(token)
