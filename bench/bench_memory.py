#!/usr/bin/env python3
"""gdb's memory over a long watch: RSS when the first hit is logged against the peak.

Runs bench/hotloop.c under qzn-watch (all sinks) for HITS hits and samples gdb's
VmRSS from /proc every 50 ms, twice: with --no-html, the watch itself, whose growth
must stay under 10 MB over 100,000 hits; and as by default, with the HTML report
written at the end, which holds every value change of the log (shown, no limit).

Usage: bench/bench_memory.py [--hits 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOADER = REPO / "gdb_qznusnih" / "loader.py"
LIMIT_MB = 10.0


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = tmp / "hotloop"
        subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(REPO / "bench" / "hotloop.c")],
                       check=True)  # fmt: skip
        started = time.monotonic()
        logged, start, growth = peak_growth(exe, args.hits, tmp / "watch", "--no-html")
        elapsed = time.monotonic() - started
        _, _, with_report = peak_growth(exe, args.hits, tmp / "report", "")
    print(
        f"{logged:,} hits in {elapsed:.1f} s: gdb RSS {start:.1f} MB at the first hit,"
        f" growth to the peak {growth:.2f} MB (limit {LIMIT_MB:g} MB)"
    )
    print(f"  with the end-of-run HTML report (all value changes): {with_report:.2f} MB")
    sys.exit(0 if growth < LIMIT_MB and logged == args.hits else 1)


if __name__ == "__main__":
    main()
