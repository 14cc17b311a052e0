"""A count with its noun: the singular for exactly one, else the plural."""

from __future__ import annotations

import pytest

from gdb_qznusnih.counted import counted, plural


@pytest.mark.parametrize(
    "count, noun, expected",
    [
        (0, "access", "0 accesses"),
        (1, "access", "1 access"),
        (2, "access", "2 accesses"),
        (1, "read", "1 read"),
        (1_204, "read", "1,204 reads"),
        (1, "debug register", "1 debug register"),
        (4, "debug register", "4 debug registers"),
    ],
)
def test_counted(count, noun, expected):
    assert counted(count, noun) == expected


def test_plural_is_the_noun_alone():
    assert (plural(1, "write"), plural(0, "write"), plural(3, "access")) == (
        "write",
        "writes",
        "accesses",
    )
