#!/usr/bin/env python3
"""Hits per second of the engines on bench/hotloop.c, in one run: plain gdb (awatch + bt),
`qznusnih watch --engine gdb`, `qznusnih watch --engine perf`, and the floor, perf counting
the same breakpoint (`perf stat -e mem:ADDR/1:rw`, no samples).

Each run attaches to a hot loop waiting on stdin (`hotloop ROUNDS wait`), then lets it go.
Two clocks: the target's own (its rounds' duration under the tool: the rate the watched
program sees) and the wall clock from starting the tool to the last record on disk (the
PREFIX.jsonl's last write; for plain gdb and perf stat, to their exit).  The launcher rows
write complete records to PREFIX.jsonl/.reads.log/.writes.log (terminal stream off, no HTML).
Run as root.

Usage: bench/bench_engines.py [--rounds N] [--gdb-rounds N] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hot_loop import HotLoop, build, perf_stat  # noqa: E402


def plain_gdb(exe: Path, rounds: int, tmp: Path) -> tuple[float, float, int]:
    loop = HotLoop(exe, rounds)
    script = tmp / "plain.gdb"
    script.write_text(
        "awatch byte\ncommands\nsilent\nbt\ncontinue\nend\n"
        "python import os; os.write(2, b'armed\\n')\ncontinue\n"
    )
    output = tmp / "plain.out"
    start = time.time()
    with output.open("w") as out:  # a file: a full pipe would stall gdb and the loop
        gdb = subprocess.Popen(
            ["gdb", "-nx", "-batch", "-p", str(loop.pid), "-x", str(script)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_line(gdb.stderr, "armed")
        loop.go()
        seconds = loop.seconds()
        gdb.communicate()
    return seconds, time.time() - start, output.read_text().count("\n#0 ")


def launcher(engine: str):
    def run(exe: Path, rounds: int, tmp: Path) -> tuple[float, float, int]:
        loop = HotLoop(exe, rounds)
        prefix = tmp / engine
        for suffix in (".jsonl", ".reads.log", ".writes.log"):
            Path(f"{prefix}{suffix}").unlink(missing_ok=True)
        start = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gdb_qznusnih", "watch", hex(loop.address), str(loop.pid),
             "--engine", engine, "--log", str(prefix), "--quiet", "--no-html"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, NO_COLOR="1"),
        )  # fmt: skip
        _wait_for_line(proc.stderr, "qzn: watch 1: ")
        loop.go()
        seconds = loop.seconds()
        _, err = proc.communicate(timeout=600)
        if proc.returncode not in (0, 3):  # 3: accesses lost, shown as fewer logged
            raise SystemExit(f"bench: --engine {engine} failed ({proc.returncode}): {err}")
        jsonl = Path(f"{prefix}.jsonl")
        last_record = jsonl.stat().st_mtime_ns / 1e9
        with jsonl.open() as log:
            logged = sum(1 for _ in log)
        _check_complete(jsonl)
        return seconds, last_record - start, logged

    return run


def perf_stat_row(exe: Path, rounds: int, tmp: Path) -> tuple[float, float, int]:
    return perf_stat(exe, rounds)


def _wait_for_line(stream, start: str) -> None:
    for line in stream:
        if line.startswith(start):
            return
    raise SystemExit(f"bench: the tool ended before printing {start!r}")


def _check_complete(jsonl: Path) -> None:
    """The last record is whole, with a backtrace to main."""
    with jsonl.open("rb") as log:
        log.seek(max(0, jsonl.stat().st_size - 4096))
        last = json.loads(log.read().splitlines()[-1])
    funcs = [frame["func"] for frame in last["frames"]]
    if funcs[-1:] != ["main"]:
        raise SystemExit(f"bench: the last record's backtrace does not reach main: {funcs}")


ROWS = (
    ("plain gdb (awatch + bt)", plain_gdb, "gdb"),
    ("qznusnih --engine gdb", launcher("gdb"), "gdb"),
    ("qznusnih --engine perf", launcher("perf"), "perf"),
    ("perf stat mem:ADDR/1:rw (floor)", perf_stat_row, "perf"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50_000, help="rounds for the perf rows")
    parser.add_argument("--gdb-rounds", type=int, default=3_000, help="rounds for the gdb rows")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = {"gdb": args.gdb_rounds, "perf": args.rounds}
    results = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        for _ in range(args.repeat):
            for name, run, kind in ROWS:
                seconds, wall, hits = run(exe, rounds[kind], tmp)
                results.setdefault(name, []).append((2 * rounds[kind], seconds, wall, hits))
    print(f"hot loop, median of {args.repeat}: {args.gdb_rounds} rounds under gdb, "
          f"{args.rounds} under perf (2 hits a round)")  # fmt: skip
    print(f"{'':33} {'hits':>8} {'logged':>8} {'target hits/s':>14} {'ratio':>6} "
          f"{'wall hits/s':>12} {'ratio':>6}")  # fmt: skip
    plain = None
    for name, runs in results.items():
        hits = runs[0][0]
        target_rate = statistics.median(h / s for h, s, _, _ in runs)
        wall_rate = statistics.median(h / w for h, _, w, _ in runs)
        if plain is None:
            plain = (target_rate, wall_rate)
        logged = min(run[3] for run in runs)
        ratios = (target_rate / plain[0], wall_rate / plain[1])
        print(f"{name:33} {hits:>8} {logged:>8} {target_rate:>14,.0f} {ratios[0]:>5.1f}x "
              f"{wall_rate:>12,.0f} {ratios[1]:>5.1f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
