"""COND for `--if`, `--stop-if` and `report --if`: a small expression language over a record.

Never Python's eval: the text is tokenised and parsed here into a tree of closures, with
every name, literal and operator checked (types included) before the first record is seen,
so a mistake is one line naming its column.

    cond    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in" | "~") operand]
    operand := NAME | NUMBER | STRING | "true" | "false" | "null" | "(" cond ")"
             | "(" operand "," [operand ("," operand)*] ")"      a tuple, for `in`

Names: kind, value, old, tid, func, file, line, pc, mode, changed_unseen.  `func`, `file`
and `line` are those of frame 0, the instruction that made the access.  Numbers are decimal
or 0x hex; strings are in double or single quotes with backslash escapes.  `a in (x, y)` is
membership, `"sub" in func` a substring test, `func ~ "parse_.*"` a regular-expression search.
An unknown value (null) is equal only to null and never <, <=, > or >= anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gdb_qznusnih.record.access import Record

INT, STR, BOOL, TUPLE = "number", "string", "true/false", "tuple"


def _frame0(record: Record, field: str):
    return getattr(record.frames[0], field) if record.frames else None


# name -> (type, getter)
NAMES: dict[str, tuple[str, Callable[[Record], object]]] = {
    "kind": (STR, lambda r: r.kind),
    "value": (INT, lambda r: r.value),
    "old": (INT, lambda r: r.old),
    "tid": (INT, lambda r: r.tid),
    "pc": (INT, lambda r: r.pc),
    "mode": (STR, lambda r: r.mode),
    "func": (STR, lambda r: _frame0(r, "func")),
    "file": (STR, lambda r: _frame0(r, "file")),
    "line": (INT, lambda r: _frame0(r, "line")),
    "changed_unseen": (BOOL, lambda r: r.changed_unseen),
}
_ORDER = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__}
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_TOKEN = re.compile(
    r"""(?:
      (?P<number>0[xX][0-9a-fA-F]+|\d+)(?![\w])
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<name>[A-Za-z_]\w*)
    | (?P<op>==|!=|<=|>=|<|>|~|\(|\)|,)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


class ConditionError(ValueError):
    """A bad COND; str() is one line naming the column (1-based)."""

    def __init__(self, text: str, column: int, why: str) -> None:
        self.column = column
        super().__init__(f"column {column}: {why} (in {text!r})")


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, op, keyword, end
    text: str
    column: int  # 1-based
    value: object = None


@dataclass(frozen=True)
class Node:
    type: str  # INT, STR, BOOL, TUPLE, or "null"
    evaluate: Callable[[Record], object]
    column: int
    constant: bool = False
    types: frozenset[str] = frozenset()  # of a tuple literal's items, for checking `in`


class Condition:
    """A compiled COND: `condition(record)` is True or False."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._test = _Parser(text).parse()

    def __call__(self, record: Record) -> bool:
        return bool(self._test(record))

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"


def compile_condition(text: str) -> Condition:
    """ConditionError (one line) unless `text` is a COND."""
    return Condition(text)


def optional_condition(text: str | None) -> Condition | None:
    """--if / --stop-if as given (None: no condition); checked when the options were read."""
    return None if text is None else Condition(text)


# ---------------------------------------------------------------- tokens


def tokenize(text: str) -> list[Token]:
    for column, ch in enumerate(text, 1):
        if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            raise ConditionError(text, column, "control characters are not allowed")
    tokens, position = [], 0
    while True:
        while position < len(text) and text[position] in " \t":
            position += 1
        if position == len(text):
            tokens.append(Token("end", "", position + 1))
            return tokens
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionError(text, position + 1, f"unexpected {text[position]!r}")
        kind = match.lastgroup
        word = match.group(kind)
        column = position + 1
        if kind == "number":
            tokens.append(Token(kind, word, column, int(word, 0)))
        elif kind == "string":
            tokens.append(Token(kind, word, column, _unquote(text, word, column)))
        elif kind == "name" and word in _KEYWORDS:
            tokens.append(Token("keyword", word, column))
        else:
            tokens.append(Token(kind, word, column))
        position = match.end()


def _unquote(text: str, quoted: str, column: int) -> str:
    out, body, i = [], quoted[1:-1], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            escaped = body[i + 1]
            if escaped not in _ESCAPES:
                raise ConditionError(text, column + i + 1, f"unknown escape '\\{escaped}'")
            out.append(_ESCAPES[escaped])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.at = 0

    def fail(self, token: Token, why: str):
        raise ConditionError(self.text, token.column, why)

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def accept(self, kind: str, text: str) -> bool:
        if self.token.kind == kind and self.token.text == text:
            self.at += 1
            return True
        return False

    def parse(self) -> Callable[[Record], object]:
        if self.token.kind == "end":
            self.fail(self.token, "empty condition")
        node = self.test(self.condition())
        if self.token.kind != "end":
            self.fail(
                self.token, f"unexpected {self.token.text!r}: expected 'and', 'or' or the end"
            )
        return node.evaluate

    def condition(self) -> Node:
        left = self.conjunction()
        while self.token.text == "or" and self.token.kind == "keyword":
            self.take()
            left = self.logic(left, self.conjunction(), either=True)
        return left

    def conjunction(self) -> Node:
        left = self.negation()
        while self.token.text == "and" and self.token.kind == "keyword":
            self.take()
            left = self.logic(left, self.negation(), either=False)
        return left

    def negation(self) -> Node:
        start = self.token
        if self.accept("keyword", "not"):
            test = self.test(self.negation()).evaluate
            return Node(BOOL, lambda r: not test(r), start.column)
        return self.comparison()

    def logic(self, left: Node, right: Node, either: bool) -> Node:
        a, b = self.test(left).evaluate, self.test(right).evaluate
        if either:
            return Node(BOOL, lambda r: a(r) or b(r), left.column)
        return Node(BOOL, lambda r: a(r) and b(r), left.column)

    def test(self, node: Node) -> Node:
        if node.type != BOOL:
            what = "a tuple" if node.type == TUPLE else f"a {node.type}"
            self.fail_at(node, f"{what} is not a condition: compare it (==, <, in, ~ ...)")
        return node

    def fail_at(self, node: Node, why: str):
        raise ConditionError(self.text, node.column, why)

    def comparison(self) -> Node:
        left = self.operand()
        token = self.token
        if token.kind == "op" and token.text in ("==", "!=", "<", "<=", ">", ">=", "~"):
            self.take()
            return self.compare(token, left, self.operand())
        if token.kind == "keyword" and token.text == "in":
            self.take()
            return self.membership(token, left, self.operand(), negated=False)
        if token.kind == "keyword" and token.text == "not" and self._next_is("in"):
            self.take()
            self.take()
            return self.membership(token, left, self.operand(), negated=True)
        return left

    def _next_is(self, word: str) -> bool:
        following = self.tokens[self.at + 1]
        return following.kind == "keyword" and following.text == word

    def operand(self) -> Node:
        token = self.take()
        if token.kind == "number":
            value = token.value
            return Node(INT, lambda r: value, token.column, constant=True)
        if token.kind == "string":
            text = token.value
            return Node(STR, lambda r: text, token.column, constant=True)
        if token.kind == "keyword" and token.text in ("true", "false"):
            flag = token.text == "true"
            return Node(BOOL, lambda r: flag, token.column, constant=True)
        if token.kind == "keyword" and token.text == "null":
            return Node("null", lambda r: None, token.column, constant=True)
        if token.kind == "name":
            if token.text not in NAMES:
                known = ", ".join(NAMES)
                self.fail(token, f"unknown name {token.text!r}; the names are {known}")
            kind, getter = NAMES[token.text]
            return Node(kind, getter, token.column)
        if token.kind == "op" and token.text == "(":
            return self.parenthesised(token)
        if token.kind == "end":
            self.fail(token, "expected a value at the end")
        self.fail(token, f"expected a value, not {token.text!r}")

    def parenthesised(self, opening: Token) -> Node:
        first = self.condition()
        if not self.accept("op", ","):
            self.expect_closing(opening)
            return first
        items = [first]
        while not self.accept("op", ")"):
            items.append(self.operand())
            if not self.accept("op", ","):
                self.expect_closing(opening)
                break
        for item in items:
            if not item.constant:
                self.fail_at(item, "a tuple holds literals only")
        values = tuple(item.evaluate(None) for item in items)
        types = frozenset(item.type for item in items) - {"null"}
        return Node(TUPLE, lambda r: values, opening.column, constant=True, types=types)

    def expect_closing(self, opening: Token) -> None:
        if not self.accept("op", ")"):
            self.fail(self.token, f"expected ')' to close the '(' at column {opening.column}")

    def compare(self, op: Token, left: Node, right: Node) -> Node:
        if op.text == "~":
            return self.regex(op, left, right)
        if left.type == TUPLE or right.type == TUPLE:
            self.fail(op, f"'{op.text}' cannot compare a tuple; use 'in'")
        if "null" not in (left.type, right.type) and left.type != right.type:
            self.fail(op, f"'{op.text}' compares a {left.type} with a {right.type}")
        get_left, get_right = left.evaluate, right.evaluate
        if op.text in ("==", "!="):
            same = op.text == "=="
            return Node(BOOL, lambda r: (get_left(r) == get_right(r)) is same, left.column)
        if INT not in (left.type, right.type):
            self.fail(op, f"'{op.text}' orders numbers only")
        order = _ORDER[op.text]

        def ordered(record: Record) -> bool:
            a, b = get_left(record), get_right(record)
            return a is not None and b is not None and order(a, b)

        return Node(BOOL, ordered, left.column)

    def regex(self, op: Token, left: Node, right: Node) -> Node:
        if left.type != STR:
            self.fail(op, f"'~' matches a string, not a {left.type}")
        if not (right.constant and right.type == STR):
            self.fail(op, "'~' needs a quoted regular expression on its right")
        try:
            pattern = re.compile(right.evaluate(None))
        except re.error as error:
            why = f"bad regular expression: {error}"
            raise ConditionError(self.text, right.column, why) from None
        get = left.evaluate

        def matches(record: Record) -> bool:
            text = get(record)
            return text is not None and pattern.search(text) is not None

        return Node(BOOL, matches, left.column)

    def membership(self, op: Token, item: Node, within: Node, negated: bool) -> Node:
        get_item, get_within = item.evaluate, within.evaluate
        if within.type == TUPLE:
            kinds = within.types - {item.type}
            if kinds and item.type != "null":
                self.fail(op, f"'in' looks for a {item.type} among {', '.join(sorted(kinds))}s")

            def member(record: Record) -> bool:
                return (get_item(record) in get_within(record)) is not negated

            return Node(BOOL, member, item.column)
        if within.type == STR and item.type == STR:

            def substring(record: Record) -> bool:
                part, whole = get_item(record), get_within(record)
                found = part is not None and whole is not None and part in whole
                return found is not negated

            return Node(BOOL, substring, item.column)
        self.fail(op, "'in' needs a tuple (a, b) or a string on its right")
