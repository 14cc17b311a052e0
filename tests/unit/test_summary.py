"""The end-of-watch summary: totals, threads, call sites, rate."""

from __future__ import annotations

import re

import pytest

from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.record.summary import AccessCounts, Site, Summary
from gdb_qznusnih.sinks.colour import Colorizer
from tests.records import make_record

MAIN = Frame(2, 0x555555555290, "main", "mix.c", 61)
ROUND_WRITE = Frame(0, 0x555555555168, "round_once", "mix.c", 40)
ROUND_READ = Frame(0, 0x555555555170, "round_once", "mix.c", 41)
MEMCPY = Frame(0, 0x7FFFF7F2A100, "__memmove_avx_unaligned_erms", None, None)
CALLER = Frame(1, 0x5555555551A0, "copy_out", "mix.c", 50)


def filled() -> Summary:
    summary = Summary(start=1000.0, end=1002.0)
    for i in range(30):
        summary.add(make_record(kind="write", frames=(ROUND_WRITE, MAIN), tid=100 + i % 2))
        summary.add(make_record(kind="read", frames=(ROUND_READ, MAIN), tid=100))
    for _ in range(5):
        summary.add(make_record(kind="read", frames=(MEMCPY, CALLER, MAIN), tid=102))
    return summary


def test_totals_and_threads():
    summary = filled()
    assert (summary.reads, summary.writes, summary.total) == (35, 30, 65)
    assert summary.threads() == [(100, 30, 15), (101, 0, 15), (102, 5, 0)]


def test_sites_are_the_innermost_frame_with_source():
    summary = filled()
    assert summary.top_sites("read") == [
        Site("round_once", "mix.c", 41, None, 30),
        Site("copy_out", "mix.c", 50, None, 5),
    ]
    assert summary.top_sites("write") == [Site("round_once", "mix.c", 40, None, 30)]


def test_frames_without_any_source_are_told_apart_by_pc():
    summary = Summary()
    summary.add(make_record(kind="write", frames=(Frame(0, 0x401000, None, None, None),)))
    summary.add(make_record(kind="write", frames=(Frame(0, 0x401008, None, None, None),)))
    summary.add(make_record(kind="write", frames=()))
    sites = summary.top_sites("write")
    assert {s.pc for s in sites} == {0x401000, 0x401008}
    assert sites[0].describe() in ("?? at 0x401000", "?? at 0x401008")
    assert sum(s.count for s in sites) == 3


def test_records_without_frames_are_sites_of_their_own_pcs():
    """Every empty frames tuple is the same object: its site is each record's pc."""
    summary = Summary()
    for pc in (0x401000, 0x401000, 0x402000):
        summary.add(make_record(kind="write", frames=(), pc=pc))
    assert [(s.pc, s.count) for s in summary.top_sites("write")] == [(0x401000, 2), (0x402000, 1)]


def test_a_call_path_shared_by_records_is_one_site_and_equal_paths_count_together():
    summary = Summary()
    shared = (ROUND_WRITE, MAIN)
    for _ in range(3):
        summary.add(make_record(kind="write", frames=shared))
    summary.add(make_record(kind="write", frames=(ROUND_WRITE, MAIN)))  # another tuple
    summary.add(make_record(kind="write", frames=(ROUND_READ, MAIN)))
    assert summary.top_sites("write") == [
        Site("round_once", "mix.c", 40, None, 4),
        Site("round_once", "mix.c", 41, None, 1),
    ]


def test_top_five_by_count():
    summary = Summary()
    for line in range(1, 9):
        for _ in range(line):
            summary.add(
                make_record(kind="read", frames=(Frame(0, 0x400000 + line, "f", "f.c", line),))
            )
    top = summary.top_sites("read")
    assert [s.line for s in top] == [8, 7, 6, 5, 4]
    assert [s.count for s in top] == [8, 7, 6, 5, 4]


def test_duration_and_rate_from_start_and_end():
    summary = filled()
    assert summary.duration == 2.0
    assert summary.rate == pytest.approx(32.5)
    loose = Summary()
    loose.add(make_record(kind="read", frames=(MAIN,), time=10.0))
    loose.add(make_record(kind="read", frames=(MAIN,), time=14.0))
    assert loose.duration == 4.0
    assert Summary().duration is None
    assert Summary().rate is None


def test_format():
    text = filled().format()
    assert text == (
        "summary: 65 accesses: 35 reads, 30 writes in 2.000 s (32 hits/s)\n"
        "  tid 100: 30 reads, 15 writes\n"
        "  tid 101: 0 reads, 15 writes\n"
        "  tid 102: 5 reads, 0 writes\n"
        "top read sites:\n"
        "  30  round_once at mix.c:41\n"
        "   5  copy_out at mix.c:50\n"
        "top write sites:\n"
        "  30  round_once at mix.c:40\n"
    )


def test_format_of_an_empty_watch():
    assert Summary().format() == "summary: 0 accesses: 0 reads, 0 writes\n"


def test_a_count_of_one_takes_the_singular_coloured_as_the_plural_is():
    pytest.importorskip("pygments")
    summary = Summary()
    summary.add(make_record(kind="read", frames=(MAIN,), tid=7))
    summary.add(make_record(kind="write", frames=(MAIN,), tid=8))
    summary.add(make_record(kind="write", frames=(MAIN,), tid=8))
    lines = summary.format().splitlines()
    assert lines[0] == "summary: 3 accesses: 1 read, 2 writes in 0.000 s"
    assert lines[1:3] == [
        "  tid 7: 1 read, 0 writes",
        "  tid 8: 0 reads, 2 writes",
    ]
    colorizer = Colorizer()
    coloured = summary.format(colorizer)
    assert f"1 {colorizer.kind('read', 'read')}, 2 {colorizer.kind('write', 'writes')}" in coloured
    single = Summary()
    single.add(make_record(kind="write", frames=(MAIN,)))
    assert single.format().startswith("summary: 1 access: 0 reads, 1 write in 0.000 s\n")


def test_format_with_modes_and_colour():
    pytest.importorskip("pygments")
    summary = Summary()
    summary.add(make_record(kind="read", frames=(MAIN,), mode="kernel"))
    summary.add(make_record(kind="write", frames=(MAIN,), mode="user"))
    text = summary.format(Colorizer())
    assert "\x1b[" in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain == summary.format()
    assert "  by mode: kernel 1, user 1\n" in plain


def test_records_without_a_mode_beside_kernel_ones_are_user_mode():
    """The perf engine marks only the kernel's accesses; a native gdb watch marks none."""
    summary = Summary(start=0.0)
    summary.add(make_record(kind="write", frames=(MAIN,)))
    summary.add(make_record(kind="write", frames=(MAIN,)))
    assert summary.modes() == {}
    summary.add(make_record(kind="write", frames=(MAIN,), mode="kernel"))
    assert summary.modes() == {"kernel": 1, "user": 2}
    assert "  by mode: kernel 1, user 2\n" in summary.format()


def test_to_json():
    doc = filled().to_json()
    assert doc["reads"] == 35 and doc["writes"] == 30 and doc["total"] == 65
    assert doc["threads"][0] == {"tid": 100, "reads": 30, "writes": 15}
    assert doc["top_sites"]["read"][1] == {
        "func": "copy_out",
        "file": "mix.c",
        "line": 50,
        "pc": None,
        "count": 5,
        "module": None,
    }
    assert doc["duration"] == 2.0
    assert doc["hits_per_second"] == 32.5
    assert doc["modes"] == {}


def test_memory_stays_flat():
    summary = Summary()
    for i in range(50_000):
        summary.add(
            make_record(
                kind="write" if i % 2 else "read", frames=(ROUND_WRITE, MAIN), tid=1 + i % 4
            )
        )
    assert summary.total == 50_000
    assert len(summary._threads) == 4
    assert sum(len(sites) for sites in summary._sites.values()) == 2


def test_access_counts_tell_writes_from_reads():
    counts = AccessCounts()
    assert [counts.count(kind) for kind in ("read", "write", "write", "read", "read")] == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert (counts.reads, counts.writes, counts.total) == (3, 2, 5)
