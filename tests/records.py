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


def comparable(record: dict) -> dict:
    """A record without what differs between two runs of one program (ASLR off): the time,
    the pid and the tids.  value/old/value_from are left out too: the perf engine's come from
    classify/values (tested on its own), the gdb engine's from memory."""
    differ = ("time", "pid", "tid", "value", "old", "value_from")
    return {k: v for k, v in record.items() if k not in differ}


def thread_pattern(logged: list[dict]) -> list[int]:
    """Each record's thread as the order in which threads first appear."""
    order: dict[int, int] = {}
    return [order.setdefault(r["tid"], len(order)) for r in logged]
