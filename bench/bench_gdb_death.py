#!/usr/bin/env python3
"""What becomes of the target when gdb is SIGKILLed mid-watch, at a low and a full hit rate.

Each trial starts the tester (tests/c/user_space_tester.c: one write and one read of its byte a
round, --interval-ms apart), watches it with `qznusnih watch --quiet`, kills gdb with SIGKILL
at a random moment once hits are logged, and checks the target's real fate against the
launcher's one line.  The window is the launcher's figure: from gdb's death being seen (its
pidfd readable) to DR7 cleared on every thread; the kernel resumes the target just before
that, in gdb's exit_notify.  Outcomes that disagree with the message are counted as errors.

Usage: bench/bench_gdb_death.py [--trials N]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RATES = {"low (10 rounds/s)": "100", "full (no pause)": "0"}
WINDOW = re.compile(r"cleared its hardware watchpoints ([0-9.]+) ms after gdb died")


def build(tmp: Path) -> Path:
    exe = tmp / "user_space_tester"
    source = REPO / "tests" / "c" / "user_space_tester.c"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(source)], check=True)
    return exe


def watch_gdb(launcher_pid: int) -> int | None:
    for child in Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split():
        try:
            if b"qzn-watch" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        except OSError:
            pass
    return None


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def trial(exe: Path, interval: str, tmp: Path) -> tuple[str, float | None]:
    """One kill: ("alive" | "SIGTRAP" | "mismatch: ...", the launcher's window in ms)."""
    tester = subprocess.Popen(
        [str(exe), "--rounds", "100000000", "--interval-ms", interval],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid, addr = tester.stdout.readline().split()[1::2]
    log = tmp / f"k{pid}"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "gdb_qznusnih", "watch", addr, pid, "--quiet", "--log", str(log)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )
    try:
        jsonl = Path(str(log) + ".jsonl")
        while lines_in(jsonl) < 2:
            time.sleep(0.005)
        time.sleep(random.uniform(0, 0.2))
        os.kill(watch_gdb(launcher.pid), signal.SIGKILL)
        message = launcher.communicate(timeout=60)[1].strip().splitlines()[-1]
        alive = tester.poll() is None
        window = WINDOW.search(message)
        if alive and window:
            return "alive", float(window.group(1))
        if not alive and tester.returncode == -signal.SIGTRAP and "died of SIGTRAP" in message:
            return "SIGTRAP", None
        return f"mismatch: alive={alive} exit={tester.returncode}: {message}", None
    finally:
        for proc in (launcher, tester):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        exe = build(tmp)
        for label, interval in RATES.items():
            outcomes = [trial(exe, interval, tmp) for _ in range(args.trials)]
            windows = [ms for fate, ms in outcomes if ms is not None]
            died = sum(fate == "SIGTRAP" for fate, _ in outcomes)
            bad = [fate for fate, _ in outcomes if fate.startswith("mismatch")]
            spread = (
                f"window median {statistics.median(windows):.2f} ms, max {max(windows):.2f} ms"
                if windows
                else "no survivor to time"
            )
            print(
                f"{label}: {len(windows)}/{args.trials} alive and cleared, {died} died of "
                f"SIGTRAP, {len(bad)} message mismatches; {spread}"
            )
            for fate in bad:
                print("  " + fate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
