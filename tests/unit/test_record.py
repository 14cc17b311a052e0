"""The record and its JSON Lines contract."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.record.access import (
    Frame,
    Record,
    format_time,
    frames_key,
    parse_time,
)
from gdb_qznusnih.sinks.formats import FIELDS, JsonLine, record_from_json, to_json
from tests.records import FRAMES, frame_tuples, make_record, optional_names, plain_block

CONTRACT_KEYS = [
    "watch", "seq", "kind", "addr", "len", "old", "value", "value_from", "pid", "tid", "pc",
    "insn", "time", "frames", "kind_from",
]  # fmt: skip


def test_the_key_order_is_the_one_in_formats():
    assert CONTRACT_KEYS == list(FIELDS)


def test_the_issue_example_line():
    line = JsonLine().encode(make_record())
    assert line.endswith("}\n") and line.count("\n") == 1
    doc = json.loads(line)
    assert list(doc)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert doc == {
        "watch": 1,
        "seq": 17,
        "kind": "write",
        "addr": "0x55d0c3a0b04b",
        "len": 1,
        "old": 0,
        "value": 1,
        "value_from": "memory",
        "pid": 4242,
        "tid": 4243,
        "pc": "0x55d0c3a08168",
        "insn": "movb $0x1,(%rax)",
        "time": "2026-11-26T03:13:20.123456Z",
        "frames": [
            {"level": 0, "pc": "0x55d0c3a08168", "func": "round_once", "file": "mix.c", "line": 40},
            {"level": 1, "pc": "0x55d0c3a0826a", "func": "main", "file": "mix.c", "line": 61},
        ],
        "kind_from": "insn",
    }


def test_encoder_matches_json_dumps_of_to_json_exactly():
    encoder = JsonLine()
    records = [
        make_record(),
        make_record(kind="read", insn=None),
        make_record(frames=(Frame(0, 0x401000, None, None, None),), kind_from="value"),
        make_record(mode="kernel", comm="tester", extra={"cr3": "0x1234000", "cpu": 1}),
        make_record(mode="user", comm=None),
        make_record(insn='movb $0x22,"(%rax)\\" ü'),
        make_record(frames=()),
    ]
    for record in records * 2:  # the second round comes from the caches
        assert encoder.encode(record) == json.dumps(to_json(record)) + "\n"


def test_round_trip_through_json():
    for record in (
        make_record(),
        make_record(kind="read", mode="kernel", comm="t", extra={"x": 1}),
    ):
        back = record_from_json(json.loads(JsonLine().encode(record)))
        assert to_json(back) == to_json(record)


def test_time_format_and_rounding():
    assert format_time(1795662800.123456) == "2026-11-26T03:13:20.123456Z"
    assert format_time(1795662800.9999996) == "2026-11-26T03:13:21.000000Z"
    assert abs(parse_time(format_time(1795662800.123456)) - 1795662800.123456) < 1e-6
    encoder = JsonLine()
    for t in (1795662800.9999996, 1795662800.0, 1795662801.5, 1795662800.25):
        assert json.loads(encoder.encode(make_record(time=t)))["time"] == format_time(t)


def test_frames_key_is_levels_and_pcs():
    assert frames_key(FRAMES) == ((0, 0x55D0C3A08168), (1, 0x55D0C3A0826A))


def test_clearing_the_registry_forgets_cached_frames():
    caches = CacheRegistry()
    encoder = JsonLine(caches)
    encoder.encode(make_record())
    renamed = (Frame(0, FRAMES[0].pc, "renamed", "mix.c", 40), FRAMES[1])
    assert "round_once" in encoder.encode(make_record(frames=renamed))  # same pcs: cached
    caches.clear()
    assert "renamed" in encoder.encode(make_record(frames=renamed))


@settings(deadline=None)  # a loaded CI machine must not fail a correct encoder
@given(
    seq=st.integers(1, 2**40),
    kind=st.sampled_from(["read", "write"]),
    length=st.sampled_from([1, 2, 4, 8]),
    old=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    value=st.integers(0, 2**64 - 1),
    addr=st.integers(0, 2**64 - 1),
    insn=optional_names,
    time=st.floats(0, 4e9, allow_nan=False),
    frames=frame_tuples,
    mode=st.one_of(st.none(), st.sampled_from(["user", "kernel"])),
    comm=optional_names,
    changed_unseen=st.booleans(),
)
def test_encoder_equals_json_dumps_for_any_record(
    seq, kind, length, old, value, addr, insn, time, frames, mode, comm, changed_unseen
):
    record = Record(
        seq, kind, addr, length, old, value, 1, 2, addr // 2, insn, time, frames,
        mode=mode, comm=comm, changed_unseen=changed_unseen,
    )  # fmt: skip
    assert JsonLine().encode(record) == json.dumps(to_json(record)) + "\n"


def test_a_cut_backtrace_says_so_in_json_and_text():
    record = make_record(more_frames=True)
    line = JsonLine().encode(record)
    assert line == json.dumps(to_json(record)) + "\n"
    assert json.loads(line)["more_frames"] is True
    assert to_json(record_from_json(json.loads(line))) == to_json(record)
    assert "more_frames" not in json.loads(JsonLine().encode(make_record()))
    block = plain_block(record).splitlines()
    assert block[3] == "#2  …more frames"  # after the two frames, before the instruction


def test_an_unknown_value_is_null_in_json_and_a_question_mark_in_text():
    record = make_record(value=None, value_from=None)
    line = JsonLine().encode(record)
    assert line == json.dumps(to_json(record)) + "\n"
    assert json.loads(line)["value"] is None and json.loads(line)["value_from"] is None
    assert to_json(record_from_json(json.loads(line))) == to_json(record)
    assert plain_block(record).splitlines()[0] == (
        "[1:17] WRITE 0x55d0c3a0b04b  0x00 → ?  tid 4243  03:13:20.123456"
    )


def test_a_change_nobody_saw_says_so_in_json_and_text():
    record = make_record(kind="read", value=0x77, changed_unseen=True)
    line = JsonLine().encode(record)
    assert line == json.dumps(to_json(record)) + "\n"
    assert json.loads(line)["changed_unseen"] is True
    assert to_json(record_from_json(json.loads(line))) == to_json(record)
    assert "changed_unseen" not in json.loads(JsonLine().encode(make_record()))
    header = plain_block(record).splitlines()[0]
    assert (
        header == "[1:17] READ  0x55d0c3a0b04b  0x77  tid 4243  03:13:20.123456  (changed unseen)"
    )
    assert "changed unseen" not in plain_block(make_record())
