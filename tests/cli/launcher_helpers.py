"""Helpers for driving the `qznusnih` launcher as a subprocess against the real tester."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import LOADER, REPO, Tester, quiet_env  # noqa: F401 (re-exported)


def launcher_command(*args: str) -> list[str]:
    """These tests are the gdb engine's (the tester waits for a tracer): `watch` gets
    --engine gdb unless it names one; tests/perf has the perf engine's."""
    if args[:1] == ("watch",) and "--engine" not in args:
        args = (*args, "--engine", "gdb")
    return [sys.executable, "-m", "gdb_qznusnih", *args]


def run_launcher(*args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        launcher_command(*args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or quiet_env(),
        stdin=subprocess.DEVNULL,
    )


def start_launcher(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        launcher_command(*args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or quiet_env(),
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(
    done, *fragments: str, code: int | None = None, prefixed: bool = True
) -> str:
    """Non-zero exit, exactly one line on stderr holding every fragment, no traceback.

    `prefixed=False` for errors that qzn-watch reports from inside gdb."""
    assert done.returncode != 0, (done.stdout, done.stderr)
    if code is not None:
        assert done.returncode == code
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("qznusnih: ") or not prefixed
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def jsonl_lines(prefix: Path) -> int:
    path = Path(str(prefix) + ".jsonl")
    return path.read_text().count("\n") if path.exists() else 0


def gdb_child_of(pid: int) -> int:
    """The gdb the launcher started (its only child)."""
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        children += [int(c) for c in text.split()]
    assert len(children) == 1, children
    return children[0]


def catches_stop_signals(pid: int) -> bool:
    """Whether the process has handlers for SIGINT, SIGTERM and SIGHUP (SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            caught = int(line.split()[1], 16)
            return all(caught & (1 << (sig - 1)) for sig in (1, 2, 15))
    return False


def watch_gdb_of(launcher_pid: int) -> int | None:
    """The launcher's watching gdb (not its probe), once it has been started."""
    for task in os.listdir(f"/proc/{launcher_pid}/task"):
        for child in Path(f"/proc/{launcher_pid}/task/{task}/children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"qzn-watch" in cmdline:
                return int(child)
    return None


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
