"""Fixtures for the perf capture tests: perf_target processes, started per test, never traced."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gdb_qznusnih.launcher.preflight import parse_status


@pytest.fixture(autouse=True)
def _need_root():
    if os.geteuid() != 0:
        pytest.fail("the perf tests watch other processes and the kernel: run them as root")


class Target:
    """A running perf_target: waits for go(), then does its accesses and says "done"."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        first = proc.stdout.readline().decode().split()  # "pid 1234 addr 0x55..."
        assert first[:1] == ["pid"] and first[2:3] == ["addr"], first
        self.pid, self.address = int(first[1]), int(first[3], 16)

    def go(self) -> None:
        self.proc.stdin.write(b"g")
        self.proc.stdin.flush()

    def wait_done(self) -> None:
        assert self.proc.stdout.readline() == b"done\n"

    def exit_now(self) -> int:
        """Close its stdin: it reads the byte once more and exits."""
        self.proc.stdin.close()
        self.proc.stdin = None
        return self.proc.wait(timeout=10)

    def finish(self) -> int:
        """Let it exit (call after the watch is gone); the byte's value at the end."""
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, (self.proc.returncode, out)
        return int(out.split()[-1])

    def status(self):
        with open(f"/proc/{self.pid}/status") as status:
            return parse_status(status.read())

    def thread_ids(self) -> set[int]:
        return {int(name) for name in os.listdir(f"/proc/{self.pid}/task")}


@pytest.fixture(scope="session")
def perf_target_bin(build_c) -> Path:
    return build_c("perf_target")


@pytest.fixture
def start_target(perf_target_bin, reap):
    """start_target(writes, reads, rmws, early=0, late=0, zero_reads=0, wrapper=[]) -> Target;
    killed at teardown."""

    def start(writes, reads, rmws, early=0, late=0, zero_reads=0, wrapper=()):
        counts = [writes, reads, rmws, early, late, zero_reads]
        proc = subprocess.Popen(
            [*wrapper, str(perf_target_bin), *map(str, counts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return Target(reap(proc))

    return start
