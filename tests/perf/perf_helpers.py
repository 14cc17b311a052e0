"""Helpers shared by the perf engine's end-to-end tests: the launcher and gdb run on real
processes, their logs and output, and the processes' state, polled."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.events import EventConfig
from gdb_qznusnih.perf.hits import Hit
from tests.conftest import LOADER, REPO, quiet_env, run_gdb_stopped_at
from tests.records import read_jsonl

LOADER_ONLY = ("-x", str(LOADER))  # qzn-watch's default engine, auto, as a user gets it


# ---------------------------------------------------------------- processes, polled


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


def assert_untouched(target):
    """Not traced by us, and no thread stopped (strace's syscall stops would be 't')."""
    assert target.status().tracer_pid == 0
    for tid in target.thread_ids():
        with open(f"/proc/{target.pid}/task/{tid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
        assert state not in ("T", "t"), (tid, state)


class LineReader:
    """The lines of a stream as they come, read by a thread of its own, so that a test can
    wait for one with a timeout."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, line: str, timeout: float = 10) -> None:
        """Until `line` (without its newline) has come."""
        wait_until(lambda: line + "\n" in self.lines, repr(line), timeout)

    def text(self, timeout: float = 30) -> str:
        """Everything, once the stream has ended."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"
        return "".join(self.lines)


# ---------------------------------------------------------------- a Capture of its own

# 512 B of stack: a sample is 736 B, so a 4 MiB ring holds every sample of these tests even if
# the drain thread never ran; the counts are exact, not hopeful.
SMALL_STACK = CaptureConfig(events=EventConfig(stack_bytes=512))


def capture_run(target, config=SMALL_STACK, armed=lambda capture: None):
    """Arm (then `armed(capture)`), let the target do its accesses, check it was never
    stopped nor traced, drain: (hits, other records, accounting)."""
    with Capture(target.pid, target.address, 1, config) as capture:
        armed(capture)
        target.go()
        target.wait_done()
        assert_untouched(target)
        out = capture.read_all()
        accounting = capture.accounting()
    hits = [item for item in out if isinstance(item, Hit)]
    records = [item for item in out if not isinstance(item, Hit)]
    return hits, records, accounting


# ---------------------------------------------------------------- `qznusnih watch`


def launcher(*args: str, wrapper=(), python: str = sys.executable) -> subprocess.Popen:
    return _start("watch", args, wrapper, python)


def _start(command: str, args, wrapper, python: str = sys.executable, stdin=subprocess.DEVNULL):
    """`qznusnih COMMAND ARGS...` under `wrapper`, its output piped as text."""
    return subprocess.Popen(
        [*wrapper, python, "-m", "gdb_qznusnih", command, *args],
        cwd=REPO,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=quiet_env(),
    )


def wait_armed(proc: subprocess.Popen) -> str:
    """The launcher's armed line (its first line on stderr)."""
    line = proc.stderr.readline()
    assert line.startswith("qzn: watch 1: "), line + proc.stderr.read()
    return line


@contextmanager
def armed_launcher(address, pid, prefix: Path, *options: str, engine="perf", wrapper=()):
    """`watch ADDRESS PID --engine ENGINE --log PREFIX --quiet --no-html OPTIONS` (engine None:
    its default), armed: (process, its armed line).  Killed on the way out if it still runs."""
    engine_options = ("--engine", engine) if engine else ()
    proc = launcher(
        address, str(pid), *engine_options, "--log", str(prefix), "--quiet", "--no-html",
        *options, wrapper=wrapper,
    )  # fmt: skip
    try:
        yield proc, wait_armed(proc)
    finally:
        if proc.poll() is None:
            proc.kill()


def records(prefix: Path) -> list[dict]:
    return read_jsonl(f"{prefix}.jsonl")


class Mix:
    """tests/c/mix.c waiting on stdin: armed, then go()."""

    def __init__(self, program: Path):
        self.proc = subprocess.Popen(
            # ASLR off: both engines' runs put code and data at the same addresses
            ["setarch", "x86_64", "-R", str(program), "wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.byte = int(self.proc.stdout.readline().split()[1], 16)
        self.pid = int(self.proc.stdout.readline().split()[1])

    def go(self) -> None:
        self.proc.stdin.write("g")
        self.proc.stdin.flush()


def watch_mix(program: Path, tmp_path: Path, engine: str, *options: str):
    """Watch mix's byte by its expression; (records, the launcher's stderr)."""
    mix = Mix(program)
    prefix = tmp_path / (engine + str(len(options)))
    with armed_launcher("&area[11]", mix.pid, prefix, *options, engine=engine) as (proc, armed):
        mix.go()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    out, _ = mix.proc.communicate(timeout=30)  # reaped only now: its status was readable
    assert mix.proc.returncode == 0 and "mix done" in out
    return records(prefix), armed + err, mix.byte


# ---------------------------------------------------------------- gdb and `qznusnih run`


def run_gdb(program, *commands: str, **how) -> subprocess.CompletedProcess:
    return run_gdb_stopped_at(program, *commands, extension=LOADER_ONLY, **how)


def launcher_run(*args: str, wrapper=(), stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return _start("run", args, wrapper, stdin=stdin)
