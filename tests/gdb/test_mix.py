"""A real gdb watches tests/c/mix.c: every access logged, each with the right kind."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import gdb_base_command, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb

# (kind, function) in program order; the last two come from the second thread.
EXPECTED = [
    ("write", "store_new"),
    ("write", "store_same"),
    ("read", "load"),
    ("read", "compare"),
    ("read", "add_zero"),
    ("write", "add_zero"),
    ("read", "increment"),
    ("write", "increment"),
    ("read", "locked_increment"),
    ("write", "locked_increment"),
    ("read", "exchange"),
    ("write", "exchange"),
    ("write", "wide_store"),
    ("read", "wide_load"),
    ("read", "sse_load"),
    ("read", "string_copy_from"),
    ("write", "string_fill"),
    ("write", "store_new"),
    ("read", "load"),
]


def watch_mix(program, tmp_path, *options: str):
    prefix = tmp_path / "mix"
    cmd = gdb_base_command() + [
        "-ex",
        "tbreak ready",
        "-ex",
        "run",
        "-ex",
        " ".join(["qzn-watch", "--log", str(prefix), "--color", "never", *options, "&area[11]"]),
        str(program),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120)
    records = []
    jsonl = prefix.with_suffix(".jsonl")
    if jsonl.exists():
        records = read_jsonl(jsonl)
    return result, records, prefix


@pytest.mark.parametrize("m32", [False, True], ids=["x86-64", "i386"])
def test_every_access_is_logged_with_its_kind(build_c, tmp_path, m32):
    result, records, _ = watch_mix(build_c("mix", m32=m32), tmp_path)
    assert "Traceback" not in result.stderr
    assert "mix done" in result.stdout, result.stderr
    got = [(r["kind"], r["frames"][0]["func"]) for r in records]
    assert got == EXPECTED, result.stdout + result.stderr
    assert all(r["kind_from"] == "insn" for r in records)
    assert sum(r["kind"] == "read" for r in records) == 10
    assert sum(r["kind"] == "write" for r in records) == 9
    assert [r["seq"] for r in records] == list(range(1, len(EXPECTED) + 1))


def test_values_and_threads(build_c, tmp_path):
    _, records, _ = watch_mix(build_c("mix"), tmp_path)
    first, second = records[0], records[1]
    assert (first["old"], first["value"]) == (0, 1)
    assert (second["old"], second["value"]) == (1, 1), "a same-value store is still a write"
    add_read, add_write = records[4], records[5]
    assert add_read["old"] is None and add_write["old"] == add_write["value"] == 1
    main_tids = {r["tid"] for r in records[:-2]}
    thread_tids = {r["tid"] for r in records[-2:]}
    assert len(main_tids) == 1 and len(thread_tids) == 1 and main_tids != thread_tids
    assert all(r["pid"] == records[0]["pid"] for r in records)


def test_backtraces_are_three_frames_deep_with_lines(build_c, tmp_path):
    _, records, _ = watch_mix(build_c("mix"), tmp_path)
    for record in records[:-2]:
        funcs = [f["func"] for f in record["frames"][:3]]
        assert funcs[1:] == ["run_sequence", "main"], record
        assert record["frames"][0]["file"].endswith("mix.c")
        assert isinstance(record["frames"][0]["line"], int)
        assert record["pc"] == record["frames"][0]["pc"]
    assert [f["func"] for f in records[-1]["frames"][:2]] == ["load", "second_thread"]


def test_reads_and_writes_go_to_separate_logs(build_c, tmp_path):
    _, records, prefix = watch_mix(build_c("mix"), tmp_path)
    reads = (tmp_path / "mix.reads.log").read_text()
    writes = (tmp_path / "mix.writes.log").read_text()
    assert reads.count("READ") == 10 and "WRITE" not in reads
    assert writes.count("WRITE") == 9 and "READ" not in writes
    assert "\x1b[" not in reads + writes


@pytest.mark.parametrize("access,count", [("r", 10), ("w", 9)])
def test_access_filter(build_c, tmp_path, access, count):
    _, records, _ = watch_mix(build_c("mix"), tmp_path, "--access", access)
    kind = {"r": "read", "w": "write"}[access]
    assert len(records) == count and all(r["kind"] == kind for r in records)


def test_count_ends_the_watch_and_the_program_runs_on(build_c, tmp_path):
    result, records, _ = watch_mix(build_c("mix"), tmp_path, "--count", "3")
    assert len(records) == 3
    assert "mix done" in result.stdout
    assert "--count 3 reached" in result.stderr
