#!/usr/bin/env python3
"""Raw perf-capture hits/s on the hot loop against `perf stat -e mem:ADDR/1:rw` counting.

The floor is perf counting the same breakpoint (no samples at all).  Each capture row opens
the RW and W events of gdb_qznusnih.perf, drains the rings and pairs the samples into hits,
with nothing more done per hit; rows differ in the user stack copied per sample and the
thread strategy.  Rates are on the target's own clock (its rounds' duration under the tool);
"lost" is each event's counter minus the samples delivered.  Run as root.

Usage: bench/bench_perf_capture.py [--rounds N] [--repeat K] [--stack-bytes B ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hot_loop import HotLoop, build, perf_stat  # noqa: E402

from gdb_qznusnih.perf.capture import Capture, CaptureConfig  # noqa: E402
from gdb_qznusnih.perf.events import EventConfig  # noqa: E402
from gdb_qznusnih.perf.hits import Hit  # noqa: E402


def perf_stat_floor(exe: Path, rounds: int) -> tuple[float, int]:
    """(hits/s with perf counting the breakpoint, no samples; hits counted)."""
    seconds, _wall, counted = perf_stat(exe, rounds)
    return counted / seconds, counted


def capture_rate(exe: Path, rounds: int, config: CaptureConfig) -> tuple[float, int, int]:
    """(hits/s on the target's clock, hits, lost)."""
    loop = HotLoop(exe, rounds)
    hits = 0
    with Capture(loop.pid, loop.address, 1, config) as capture:
        loop.go()
        while loop.proc.poll() is None:
            hits += sum(isinstance(item, Hit) for item in capture.read(0.05))
        seconds = loop.seconds()
        hits += sum(isinstance(item, Hit) for item in capture.read_all())
        accounting = capture.accounting()
    return 2 * rounds / seconds, hits, accounting.lost("rw")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stack-bytes", type=int, nargs="+", default=[512, 2048, 4096, 8192])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        floors = [perf_stat_floor(exe, args.rounds) for _ in range(args.repeat)]
        floor = statistics.median(rate for rate, _ in floors)
        print(f"hot loop: {args.rounds} rounds = {2 * args.rounds} hits, median of {args.repeat}")
        print(f"{'engine':<38} {'hits/s':>9} {'ratio':>6} {'hits':>8} {'lost':>6}")
        print(f"{'perf stat mem:ADDR/1:rw (counting)':<38} {floor:>9.0f} {1:>6.2f} "
              f"{floors[-1][1]:>8} {'-':>6}")  # fmt: skip
        rows = [(stack, "inherit", True) for stack in args.stack_bytes]
        rows += [(4096, "per-thread", True), (4096, "inherit", False)]  # False: kernel too
        for stack, threads, exclude_kernel in rows:
            events = EventConfig(stack_bytes=stack, threads=threads, exclude_kernel=exclude_kernel)
            config = CaptureConfig(events=events)
            runs = [capture_rate(exe, args.rounds, config) for _ in range(args.repeat)]
            rate = statistics.median(run[0] for run in runs)
            name = f"capture, {stack} B stack, {threads}" + ("" if exclude_kernel else ", +kernel")
            print(f"{name:<38} {rate:>9.0f} {rate / floor:>6.2f} {runs[-1][1]:>8} "
                  f"{max(run[2] for run in runs):>6}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
