"""Helpers shared by the perf engine's end-to-end tests: processes and logs, polled."""

from __future__ import annotations

import os
import time
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        children += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return children


def wait_for_lines(prefix: Path, count: int, timeout: float = 30) -> None:
    path = Path(f"{prefix}.jsonl")
    wait_until(lambda: path.exists() and path.read_bytes().count(b"\n") >= count, "records")


def wait_until(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
