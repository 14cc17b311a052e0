"""Helpers shared by the tests that build records and read logs."""

from __future__ import annotations

import json
import re

from hypothesis import strategies as st

from gdb_qznusnih.record.access import Frame, Record
from gdb_qznusnih.sinks.formats import BlockRenderer

T = 1795662800.123456  # 2026-11-26T03:13:20.123456Z
FRAMES = (
    Frame(0, 0x55D0C3A08168, "round_once", "mix.c", 40, "i=3"),
    Frame(1, 0x55D0C3A0826A, "main", "mix.c", 61, "argc=1, argv=0x7ffd5c1e0a18"),
)
RECORD_DEFAULTS = dict(
    seq=17,
    kind="write",
    addr=0x55D0C3A0B04B,
    length=1,
    old=0,
    value=1,
    pid=4242,
    tid=4243,
    insn="movb $0x1,(%rax)",
    time=T,
    frames=FRAMES,
)


def make_record(**changes) -> Record:
    """Record 17 of mix: a write of 0 -> 1 by round_once <- main; `changes` replace fields.

    A read has no old value and `pc` is the innermost frame's, unless given."""
    fields = {**RECORD_DEFAULTS, **changes}
    if fields["kind"] == "read" and "old" not in changes:
        fields["old"] = None
    if "pc" not in changes:
        fields["pc"] = fields["frames"][0].pc if fields["frames"] else 0x401000
    return Record(**fields)


# Hypothesis strategies for any record's parts.
optional_names = st.one_of(st.none(), st.text(max_size=12))
frame_tuples = st.lists(
    st.builds(
        Frame,
        level=st.integers(0, 64),
        pc=st.integers(0, 2**64 - 1),
        func=optional_names,
        file=optional_names,
        line=st.one_of(st.none(), st.integers(1, 10**6)),
    ),
    max_size=4,
).map(tuple)


def plain_block(record, show_args: bool = False) -> str:
    """One record as a plain text block, rendered afresh (no cache kept between calls)."""
    return BlockRenderer(show_args=show_args).render(record)


BLOCK_HEADER = re.compile(r"^\[\d+:(\d+)\] ", re.MULTILINE)


def block_seqs(text: str) -> list[int]:
    """The record numbers of the text blocks in `text` ("[WATCH:SEQ] KIND ..." headers; gdb's
    own bracketed lines such as "[Thread debugging ...]" are not blocks)."""
    return [int(seq) for seq in BLOCK_HEADER.findall(text)]


def read_jsonl(path) -> list[dict]:
    """Every line of a JSON Lines log, parsed."""
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


# tests/c/race_values.c: what its main thread does to the byte, as records show it:
# (kind, old, value, changed_unseen).  The kernel's writes (read() from a pipe, then from
# /dev/zero) make no record; the load after each finds a value no record left.
RACE_MAIN_RECORDS = [
    ("write", 0x00, 0x5A, False),
    ("read", None, 0x77, True),
    ("write", 0x77, 0x33, False),
    ("read", None, 0x00, True),
    ("read", None, 0x00, False),
]
# The same under the perf engine watching kernel mode (root): each read() into the byte is a
# kernel write of a value no register holds; the load after it is then no unseen change.
RACE_MAIN_RECORDS_WITH_KERNEL = [
    ("write", 0x00, 0x5A, False),
    ("write", 0x5A, None, False),
    ("read", None, 0x77, False),
    ("write", 0x77, 0x33, False),
    ("write", 0x33, None, False),
    ("read", None, 0x00, False),
    ("read", None, 0x00, False),
]


def race_program_output(out: str) -> tuple[int, dict[int, tuple[int, list[int]]]]:
    """(main tid, {racing thread's tid: (its constant, what each of its loads got)}) from
    race_values' output."""
    main, racers = None, {}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["main"]:
            main = int(words[1])
        elif words[:1] == ["thread"]:
            racers[int(words[1])] = (int(words[2], 16), [int(w, 16) for w in words[3:]])
    assert main is not None and len(racers) == 2, out
    return main, racers


def check_race_records(records: list[dict], out: str, rounds: int, kernel: bool = False) -> None:
    """Every record of a race_values watch is exactly what its thread stored or loaded;
    `kernel`: the kernel's writes are records too (the perf engine, kernel mode watched)."""
    main, racers = race_program_output(out)
    assert {r["tid"] for r in records} == {main, *racers}
    expected_main = RACE_MAIN_RECORDS_WITH_KERNEL if kernel else RACE_MAIN_RECORDS
    got = [(r["kind"], r["old"], r["value"], r.get("changed_unseen", False))
           for r in records if r["tid"] == main]  # fmt: skip
    assert got == expected_main
    modes = [r.get("mode") for r in records if r["tid"] == main]
    assert modes == [("kernel" if value is None else None) for _, _, value, _ in expected_main]
    for tid, (mine, loads) in racers.items():
        assert len(loads) == rounds
        expected = [step for load in loads for step in (("write", mine), ("read", load))]
        assert [(r["kind"], r["value"]) for r in records if r["tid"] == tid] == expected, tid
    user = [r for r in records if r.get("mode") != "kernel"]
    assert {r["value_from"] for r in user} == {"registers"}
    assert {r["value_from"] for r in records if r not in user} <= {None}
    assert [r["seq"] for r in records] == list(range(1, len(expected_main) + 4 * rounds + 1))
    check_changed_unseen(records, initial=0)


def check_changed_unseen(records: list[dict], initial: int) -> None:
    """changed_unseen is there exactly where a record's value before the access (a read's
    value, a write's old) is not the value the previous record left (`initial` at first),
    both known.

    With racing threads the log can show a load before the store it saw (accesses that trap
    together are logged in the order the engine gets them): such a load is marked too."""
    shown = initial
    for record in records:
        before = record["value"] if record["kind"] == "read" else record["old"]
        differs = before is not None and shown is not None and before != shown
        assert record.get("changed_unseen", False) == differs, record
        shown = record["value"]  # None after a write of a value nobody knows


def comparable(record: dict) -> dict:
    """A record without what differs between two runs of one program (ASLR off): the time,
    the pid and the tids.  value/old/value_from are left out too: the gdb engine reads memory
    where the registers do not tell, the perf engine cannot (compared where both know)."""
    differ = ("time", "pid", "tid", "value", "old", "value_from")
    return {k: v for k, v in record.items() if k not in differ}


def thread_pattern(logged: list[dict]) -> list[int]:
    """Each record's thread as the order in which threads first appear."""
    order: dict[int, int] = {}
    return [order.setdefault(r["tid"], len(order)) for r in logged]
