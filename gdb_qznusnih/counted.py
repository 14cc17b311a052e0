"""A count with its noun, in one wording everywhere: "1 access", "2 accesses".  Pure."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`noun` for a count of one, else its plural: "read" -> "reads", "access" -> "accesses"."""
    if count == 1:
        return noun
    return noun + ("es" if noun.endswith("s") else "s")


def counted(count: int, noun: str) -> str:
    """`1 access`, `2 accesses`, `1,204 reads`: the count, then its noun."""
    return f"{count:,} {plural(count, noun)}"
