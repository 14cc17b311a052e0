"""Shared by the tests that attach a real gdb to a running tester."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import WITH_GDB_ENGINE, quiet_env


class RunningTester:
    """A running user_space_tester, its pid and byte address."""

    def __init__(self, program, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(program), *args], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        words = self.proc.stdout.readline().split()  # "pid 1234 byte 0x55..."
        self.pid, self.address = int(words[1]), words[3]

    def finish(self, timeout: float = 60) -> str:
        out, _ = self.proc.communicate(timeout=timeout)
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def tester(build_c):
    started: list[RunningTester] = []

    def start(*args: str) -> RunningTester:
        t = RunningTester(build_c("user_space_tester"), *args)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


def attach_command(pid: int, *watch_args: str) -> list[str]:
    return [
        "gdb",
        "-nx",
        "-batch",
        "-p",
        str(pid),
        *WITH_GDB_ENGINE,
        "-ex",
        "qzn-watch " + " ".join(watch_args),
    ]


def run_attached(t: RunningTester, *watch_args: str, timeout: int = 300):
    """gdb -p on the tester with `qzn-watch WATCH_ARGS ADDR`, to its end."""
    return subprocess.run(
        attach_command(t.pid, *watch_args, t.address),
        capture_output=True,
        text=True,
        env=quiet_env(),
        timeout=timeout,
    )
