"""COND, the --if / --stop-if language: a table of good and bad expressions."""

from __future__ import annotations

import pytest

from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.record.condition import ConditionError, compile_condition
from tests.records import make_record

WRITE = make_record()  # write 0 -> 1 by round_once (mix.c:40) <- main, tid 4243
READ = make_record(kind="read", value=0x41, frames=(Frame(0, 0x401000, None, None, None),))
KERNEL = make_record(mode="kernel", value=None, pc=0xFFFFFFFF81000000)

GOOD = [
    # (COND, holds for WRITE, for READ, for KERNEL)
    ("kind == 'write'", True, False, True),
    ('kind == "read"', False, True, False),
    ("kind != 'write'", False, True, False),
    ("value == 1", True, False, False),
    ("value == 0x41", False, True, False),
    ("value > 0 and kind == 'write'", True, False, False),
    ("value >= 0x41", False, True, False),
    ("value < 2", True, False, False),
    ("value <= 1 or kind == 'read'", True, True, False),
    ("value == null", False, False, True),
    ("null != value", True, True, False),
    ("old == 0", True, False, True),
    ("old == null", False, True, False),
    ("tid == 4243", True, True, True),
    ("tid in (1, 4243, 7)", True, True, True),
    ("tid not in (4243,)", False, False, False),
    ("kind in ('read', 'write')", True, True, True),
    ("func == 'round_once'", True, False, True),
    ("func == null", False, True, False),
    ('func ~ "^round_"', True, False, True),
    ("func ~ 'once$' and line == 40", True, False, True),
    ("'ound' in func", True, False, True),
    ("'x' not in func", True, True, True),  # not ('x' in func), also where func is null
    ("file == 'mix.c'", True, False, True),
    ("line > 39", True, False, True),
    ("pc == 0x55d0c3a08168", True, False, False),
    ("pc >= 0xffffffff80000000", False, False, True),
    ("mode == 'kernel'", False, False, True),
    ("mode == null", True, True, False),
    ("changed_unseen", False, False, False),
    ("not changed_unseen", True, True, True),
    ("not (kind == 'write')", False, True, False),
    ("not kind == 'write' or value == 0x41", False, True, False),
    ("(kind == 'write' or kind == 'read') and tid == 4243", True, True, True),
    ("true", True, True, True),
    ("false or value == 1", True, False, False),
    ("  kind\t== 'write'  ", True, False, True),
    (r"func ~ 'r\\w+_once'", True, False, True),
    ("value in (0x41, null)", False, True, True),
]


@pytest.mark.parametrize("text, on_write, on_read, on_kernel", GOOD)
def test_good_conditions(text, on_write, on_read, on_kernel):
    condition = compile_condition(text)
    assert (condition(WRITE), condition(READ), condition(KERNEL)) == (on_write, on_read, on_kernel)


BAD = [
    # (COND, column, what the message says)
    ("", 1, "empty condition"),
    ("kind ==", 8, "expected a value at the end"),
    ("kind = 'write'", 6, "unexpected '='"),
    ("knd == 'write'", 1, "unknown name 'knd'; the names are kind, value, old, tid"),
    ("value == 'one'", 7, "'==' compares a number with a string"),
    ("kind < 'x'", 6, "'<' orders numbers only"),
    ("value", 1, "a number is not a condition"),
    ("func", 1, "a string is not a condition"),
    ("value == 1 and tid", 16, "a number is not a condition"),
    ("value ~ '1'", 7, "'~' matches a string, not a number"),
    ("func ~ file", 6, "'~' needs a quoted regular expression on its right"),
    ("func ~ '('", 8, "bad regular expression"),
    ("tid in 3", 5, "'in' needs a tuple (a, b) or a string on its right"),
    ("tid in ('a', 'b')", 5, "'in' looks for a number among strings"),
    ("tid in (tid, 1)", 9, "a tuple holds literals only"),
    ("(kind == 'write'", 17, "expected ')' to close the '(' at column 1"),
    ("kind == 'write')", 16, "unexpected ')': expected 'and', 'or' or the end"),
    ("kind == 'wr", 9, 'unexpected "\'"'),
    ("kind == 'a\\q'", 11, "unknown escape '\\q'"),
    ("kind == 'write'\n", 16, "control characters are not allowed"),
    ("value == 0x", 10, "unexpected '0'"),
    ("value == 12abc", 10, "unexpected '1'"),
    ("kind == 'write' and", 20, "expected a value at the end"),
    ("__import__('os')", 1, "unknown name '__import__'"),
    ("value.real == 1", 6, "unexpected '.'"),
    ("(1, 2) == tid", 8, "'==' cannot compare a tuple; use 'in'"),
]


@pytest.mark.parametrize("text, column, message", BAD)
def test_bad_conditions_are_one_line_naming_the_column(text, column, message):
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert caught.value.column == column, str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"column {column}: ")
    assert "\n" not in str(caught.value).replace("\\n", "")
