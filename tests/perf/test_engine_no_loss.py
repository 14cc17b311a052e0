"""`qznusnih watch --engine perf` with the defaults loses nothing at full speed on these 2
cores: a 200,000-access hot loop, and three threads hammering the byte at once.  The target
(tests/c/perf_target.c) knows how many accesses it makes; every one is a record, with its
backtrace to main or the thread's clone3, and the exit status is 0 (3 would be accesses lost)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.perf.perf_helpers import launcher, wait_armed
from tests.records import read_jsonl

pytestmark = pytest.mark.perf


def watch_to_the_end(target, prefix: Path) -> tuple[list[dict], str, str]:
    """Watch `target` with the defaults from go() until it exits; (records, stdout, stderr)."""
    proc = launcher(hex(target.address), str(target.pid), "--engine", "perf", "--log",
                    str(prefix), "--quiet", "--no-html")  # fmt: skip
    try:
        wait_armed(proc)
        target.go()
        target.wait_done()
        target.proc.stdin.close()  # it reads the byte once more and exits
        target.proc.stdin = None
        out, err = proc.communicate(timeout=120)  # it is reaped only after: its code is read
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "lost" not in out, out
    assert "qzn: watch 1 ended: target exited with code 0" in err, err
    assert target.proc.wait(timeout=10) == 0
    return read_jsonl(f"{prefix}.jsonl"), out, err


def test_a_200000_access_hot_loop_loses_nothing(start_target, tmp_path):
    target = start_target(100_000, 100_000, 0)
    logged, out, _ = watch_to_the_end(target, tmp_path / "hot")
    assert Counter(r["kind"] for r in logged) == {"write": 100_000, "read": 100_000 + 1}
    assert [r["seq"] for r in logged] == list(range(1, 200_002))
    assert "200,001 accesses: 100,001 reads, 100,000 writes" in out
    functions = Counter(tuple(frame["func"] for frame in r["frames"]) for r in logged)
    assert functions == {
        ("touch_write", "work", "main"): 100_000,
        ("touch_read", "work", "main"): 100_000,
        ("main",): 1,  # the last read, after "done" (wait_for_stdin, inlined)
    }


def test_three_threads_hammering_the_byte_lose_nothing(start_target, tmp_path):
    target = start_target(25_000, 25_000, 0, early=2)  # main and two threads, each 50,000
    logged, _, _ = watch_to_the_end(target, tmp_path / "three")
    per_thread = Counter((r["tid"], r["kind"]) for r in logged)
    tids = {tid for tid, _kind in per_thread}
    assert len(tids) == 3 and target.pid in tids
    expected = {(tid, kind): 25_000 for tid in tids for kind in ("read", "write")}
    expected[target.pid, "read"] += 1
    assert per_thread == expected
    assert sorted(r["seq"] for r in logged) == list(range(1, 150_002))
    outermost = Counter(r["frames"][-1]["func"] for r in logged)
    assert outermost == {"main": 50_001, "clone3": 100_000}  # gdb's: a thread ends there
