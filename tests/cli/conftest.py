"""Fixtures for the launcher tests: the built tester, started per test and killed after."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from launcher_helpers import Tester


@pytest.fixture(scope="session")
def tester_bin(build_c) -> Path:
    return build_c("user_space_tester")


@pytest.fixture
def start_tester(tester_bin):
    """start_tester("--rounds", "5") -> Tester, waiting for a tracer; killed at teardown."""
    started: list[Tester] = []

    def start(*args: str) -> Tester:
        proc = subprocess.Popen(
            [str(tester_bin), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        first = proc.stdout.readline().split()  # "pid 1234 byte 0x55..."
        assert first[:1] == ["pid"] and first[2:3] == ["byte"], first
        tester = Tester(proc, int(first[1]), int(first[3], 16))
        started.append(tester)
        return tester

    yield start
    for tester in started:
        if tester.proc.poll() is None:
            tester.proc.kill()
        tester.proc.communicate()
