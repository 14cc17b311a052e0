#!/usr/bin/env python3
"""Hits per second: gdb-qznusnih against plain gdb, on the same program, in one run.

Plain gdb: an `awatch` whose commands are `silent`, `bt`, `continue`.
gdb-qznusnih: `qzn-watch` writing complete records to every sink (terminal
stream into a pipe, PREFIX.jsonl, PREFIX.reads.log, PREFIX.writes.log).
Two clocks: the target's own (how long its rounds took under the tool: the hit
rate the watched program sees) and the wall clock around gdb (start, arming,
the run, the summary and, in the third run, the HTML report written at the
end).  Prints the ratios on both.

Usage: bench/bench_watch.py [--rounds N] [--repeat K] [--also CHECKOUT] [--engine gdb|perf]

--also CHECKOUT adds a row for the qzn-watch of another checkout of this project (e.g. an
older commit: `git worktree add /tmp/before COMMIT`), run interleaved with the others, so
before and after are measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hot_loop import build, rounds_seconds

REPO = Path(__file__).resolve().parent.parent
LOADER = REPO / "gdb_qznusnih" / "loader.py"


def plain_gdb(exe: Path, rounds: int, tmp: Path) -> list[str]:
    script = tmp / "plain.gdb"
    script.write_text(
        "tbreak main\nrun\nawatch byte\ncommands\nsilent\nbt\ncontinue\nend\ncontinue\n"
    )
    return ["gdb", "-nx", "-batch", "-x", str(script), "--args", str(exe), str(rounds)]


ENGINE = ["gdb"]  # --engine: qzn-watch's, set from the command line


def qznusnih(
    exe: Path, rounds: int, tmp: Path, html: bool = False, loader: Path = LOADER, log="bench"
) -> list[str]:
    options = f"--engine {ENGINE[0]} --color never" + ("" if html else " --no-html")
    return [
        "gdb", "-nx", "-batch", "-x", str(loader), "-ex", "tbreak main", "-ex", "run",
        "-ex", f"qzn-watch {options} --log {tmp / log} &byte",
        "--args", str(exe), str(rounds),
    ]  # fmt: skip


def qznusnih_with_html(exe: Path, rounds: int, tmp: Path) -> list[str]:
    return qznusnih(exe, rounds, tmp, html=True)


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, seconds the target's rounds took by its own clock)."""
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - start
    rounds_took = rounds_seconds(result.stdout)
    if result.returncode != 0 or rounds_took is None:
        sys.exit(f"bench: run failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return elapsed, rounds_took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--also", type=Path, metavar="CHECKOUT", help="another checkout's row")
    parser.add_argument(
        "--engine", choices=("gdb", "perf"), default="gdb", help="qzn-watch's (default gdb)"
    )
    args = parser.parse_args()
    ENGINE[0] = args.engine
    hits = 2 * args.rounds
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        runs = [
            ("plain gdb", plain_gdb),
            ("gdb-qznusnih", qznusnih),
            ("  + HTML", qznusnih_with_html),
        ]
        if args.also is not None:
            other = args.also.resolve() / "gdb_qznusnih" / "loader.py"
            runs.append(("  --also", lambda e, r, t: qznusnih(e, r, t, loader=other, log="also")))
        wall: dict[str, list[float]] = {name: [] for name, _ in runs}
        target: dict[str, list[float]] = {name: [] for name, _ in runs}
        for _ in range(args.repeat):
            for name, make in runs:
                elapsed, rounds_took = timed(make(exe, args.rounds, tmp))
                wall[name].append(elapsed)
                target[name].append(rounds_took)
        logged = sum(1 for _ in (tmp / "bench.jsonl").open())
    if logged != hits:
        sys.exit(f"bench: gdb-qznusnih logged {logged} records, expected {hits}")
    print(f"{hits} hits ({args.rounds} rounds), median of {args.repeat} runs")
    report("the target's clock (its rounds under the tool)", hits, target)
    report("wall clock (gdb start to exit)", hits, wall)


def report(title: str, hits: int, times: dict[str, list[float]]) -> None:
    print(f"{title}:")
    rates = {}
    for name, values in times.items():
        median = statistics.median(values)
        rates[name] = hits / median
        print(f"  {name:13s} {median:6.2f} s  {rates[name]:8.0f} hits/s")
    plain = rates["plain gdb"]
    print(f"  ratio gdb-qznusnih / plain gdb: {rates['gdb-qznusnih'] / plain:.2f}x")
    print(f"  ratio with the end-of-run HTML report: {rates['  + HTML'] / plain:.2f}x")
    if "  --also" in rates:
        print(f"  ratio --also CHECKOUT / plain gdb: {rates['  --also'] / plain:.2f}x")
        ratio = rates["gdb-qznusnih"] / rates["  --also"]
        print(f"  ratio this checkout / --also CHECKOUT: {ratio:.2f}x")


if __name__ == "__main__":
    main()
