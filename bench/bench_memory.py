#!/usr/bin/env python3
"""Memory over a long watch of bench/hotloop.c, all sinks on: it must stay flat.

--engine perf (the default): `qznusnih watch --engine perf` for HITS hits (default
1,000,000), the launcher's VmRSS sampled every 50 ms; prints it when 100,000 records are on
disk and when all are, and the growth between, which must stay under 10 MB, and the peak
(samples queued while the launcher is behind the target come and go: past 64 MiB they
wait in the spill file), then the summary's `lost:` and `behind:` lines when it has them.

--engine gdb: qzn-watch inside gdb for HITS hits (default 100,000), gdb's VmRSS, twice: with
--no-html, the watch itself, from the first hit to the peak, under 10 MB; and as by default,
with the HTML report written at the end, which holds every value change of the log (shown,
no limit).

Usage: bench/bench_memory.py [--engine perf|gdb] [--hits N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hot_loop import HotLoop, build

REPO = Path(__file__).resolve().parent.parent
LOADER = REPO / "gdb_qznusnih" / "loader.py"
LIMIT_MB = 10.0
EARLY_RECORDS = 100_000  # perf: the first RSS reading, once the watch is in its stride


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_growth(exe: Path, hits: int, prefix: Path, options: str) -> tuple[int, float, float]:
    """(records logged, RSS at the first hit in MB, growth to the peak in MB).

    `prefix` must be new: the first hit is seen as its .jsonl growing.
    """
    gdb = subprocess.Popen(
        ["gdb", "-nx", "-batch", "-x", str(LOADER), "-ex", "tbreak main", "-ex", "run",
         "-ex", f"qzn-watch --quiet {options} --log {prefix} &byte",
         "--args", str(exe), str(hits // 2)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    jsonl = prefix.with_suffix(".jsonl")
    start_rss = peak = None
    while gdb.poll() is None:
        rss = rss_kb(gdb.pid)
        if rss is not None:
            if start_rss is None and jsonl.exists() and jsonl.stat().st_size > 0:
                start_rss = rss
            if start_rss is not None:
                peak = max(peak or 0, rss)
        time.sleep(0.05)
    logged = sum(1 for _ in jsonl.open()) if jsonl.exists() else 0
    if start_rss is None or peak is None:
        sys.exit("bench: no hit was logged")
    return logged, start_rss / 1024, (peak - start_rss) / 1024


def perf_growth(exe: Path, hits: int, prefix: Path) -> tuple[int, float, float, float]:
    """(records logged, launcher RSS in MB at EARLY_RECORDS records on disk, at the end, and
    its peak after EARLY_RECORDS)."""
    loop = HotLoop(exe, hits // 2)
    summary = prefix.with_name("summary").open("w+")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "gdb_qznusnih", "watch", hex(loop.address), str(loop.pid),
         "--engine", "perf", "--log", str(prefix), "--quiet", "--no-html"],
        cwd=REPO, stdout=summary, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )  # fmt: skip
    if not launcher.stderr.readline().startswith("qzn: watch 1: "):
        sys.exit("bench: the perf engine did not arm")
    loop.go()
    jsonl = Path(f"{prefix}.jsonl")
    early = last = None
    peak = logged = 0
    with jsonl.open("rb") as log:
        while launcher.poll() is None:
            logged += log.read().count(b"\n")
            rss = rss_kb(launcher.pid)
            if rss is not None:
                last = rss
                if early is None and logged >= EARLY_RECORDS:
                    early = rss
                if early is not None:
                    peak = max(peak, rss)
            time.sleep(0.05)
        logged += log.read().count(b"\n")
    loop.seconds()
    summary.seek(0)
    for line in summary:  # the summary's own word on loss and lag
        if line.startswith(("lost:", "behind:")):
            print(line, end="")
    if early is None or last is None:
        sys.exit(f"bench: only {logged} records were logged")
    return logged, early / 1024, last / 1024, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("perf", "gdb"), default="perf")
    parser.add_argument("--hits", type=int, help="default 1,000,000 (perf), 100,000 (gdb)")
    args = parser.parse_args()
    hits = args.hits or (1_000_000 if args.engine == "perf" else 100_000)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        started = time.monotonic()
        if args.engine == "perf":
            logged, early, end, peak = perf_growth(exe, hits, tmp / "perf")
            elapsed = time.monotonic() - started
            growth = end - early
            print(
                f"{logged:,} hits in {elapsed:.1f} s: launcher RSS {early:.1f} MB at "
                f"{EARLY_RECORDS:,} records, {end:.1f} MB at {logged:,}: growth {growth:.2f} MB "
                f"(limit {LIMIT_MB:g} MB); peak {peak:.1f} MB"
            )
            sys.exit(0 if growth < LIMIT_MB and logged == hits else 1)
        logged, start, growth = peak_growth(exe, hits, tmp / "watch", "--no-html")
        elapsed = time.monotonic() - started
        _, _, with_report = peak_growth(exe, hits, tmp / "report", "")
    print(
        f"{logged:,} hits in {elapsed:.1f} s: gdb RSS {start:.1f} MB at the first hit,"
        f" growth to the peak {growth:.2f} MB (limit {LIMIT_MB:g} MB)"
    )
    print(f"  with the end-of-run HTML report (all value changes): {with_report:.2f} MB")
    sys.exit(0 if growth < LIMIT_MB and logged == hits else 1)


if __name__ == "__main__":
    main()
