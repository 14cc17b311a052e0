"""bench/hotloop.c for the benchmarks: build it, run it, read its own clock, count it with perf.

One home for what bench_engines, bench_perf_capture, bench_watch and bench_memory all need:
the loop's "hotloop: N rounds, sum S, T s" line is parsed here only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "bench" / "hotloop.c"
_ROUNDS_LINE = re.compile(r"hotloop: \d+ rounds, sum \d+, ([0-9.]+) s")


def build(tmp: Path) -> Path:
    """The hot loop, compiled at -O0 with debug info into `tmp`."""
    exe = tmp / "hotloop"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(exe), str(SOURCE)], check=True)
    return exe


def rounds_seconds(output: str) -> float | None:
    """How long the rounds took by the loop's own clock, from its output; None if absent."""
    found = _ROUNDS_LINE.search(output)
    return float(found.group(1)) if found else None


class HotLoop:
    """`hotloop ROUNDS wait`: armed before it starts, timed by its own clock."""

    def __init__(self, exe: Path, rounds: int):
        self.rounds = rounds
        self.proc = subprocess.Popen(
            [str(exe), str(rounds), "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        fields = self.proc.stdout.readline().decode().split()  # "pid P addr A"
        self.pid, self.address = int(fields[1]), int(fields[3], 16)

    def go(self) -> None:
        self.proc.stdin.write(b"g")
        self.proc.stdin.flush()

    def seconds(self) -> float:
        """Wait for the end; how long its rounds took."""
        line = self.proc.stdout.readline().decode()
        self.proc.wait()
        seconds = rounds_seconds(line)
        if seconds is None:
            raise SystemExit(f"bench: the hot loop did not finish its rounds: {line!r}")
        return seconds


def perf_stat(exe: Path, rounds: int) -> tuple[float, float, int]:
    """The floor, perf counting the breakpoint (`perf stat -e mem:ADDR/1:rw`, no samples):
    (seconds on the loop's clock, wall seconds from starting perf, hits counted)."""
    loop = HotLoop(exe, rounds)
    start = time.time()
    stat = subprocess.Popen(
        ["perf", "stat", "-x,", "-e", f"mem:{loop.address:#x}/1:rw", "-p", str(loop.pid)],
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_until_perf_attached(stat.pid)
    loop.go()
    seconds = loop.seconds()
    stat.send_signal(signal.SIGINT)
    _, err = stat.communicate()
    counted = int(next(line for line in err.splitlines() if ",mem:" in line).split(",")[0])
    return seconds, time.time() - start, counted


def _wait_until_perf_attached(perf_pid: int) -> None:
    """perf stat -p opens its events a moment after it starts: the loop must not start
    before.  Wait until perf holds a perf_event fd."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(link.endswith("[perf_event]") for link in _fd_links(perf_pid)):
            time.sleep(0.01)  # it enables its events right after opening them
            return
        time.sleep(0.005)
    raise SystemExit("perf stat did not open its event within 10 s")


def _fd_links(pid: int) -> list[str]:
    """What each open fd of `pid` points to; fds closed while listing are skipped."""
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except FileNotFoundError:
            pass
    return links
