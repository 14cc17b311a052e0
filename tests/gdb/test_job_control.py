"""Job control stays the target's own: stopped before the watch, or by SIGSTOP during it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gdb_qznusnih.launcher.preflight import parse_stat
from tests.conftest import quiet_env
from tests.gdb.conftest import attach_command
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def state(pid: int) -> str:
    return parse_stat(Path(f"/proc/{pid}/stat").read_text())[0]


def wait_for_state(pid: int, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while state(pid) != wanted:
        assert time.monotonic() < deadline, f"process {pid} is {state(pid)}, not {wanted}"
        time.sleep(0.005)


def assert_stays_stopped(pid: int) -> None:
    """T (job control), untraced, and still T a moment later."""
    wait_for_state(pid, "T", timeout=2)
    time.sleep(0.2)
    assert state(pid) == "T"
    assert "TracerPid:\t0" in Path(f"/proc/{pid}/status").read_text()


def test_a_target_stopped_before_the_watch_stays_stopped(tester, tmp_path):
    t = tester("--no-wait", "--rounds", "40", "--interval-ms", "5")  # 200 ms to stop it in
    os.kill(t.pid, signal.SIGSTOP)
    wait_for_state(t.pid, "T")
    prefix = tmp_path / "w"
    gdb = subprocess.run(
        attach_command(t.pid, "--log", str(prefix), "--quiet", "--duration", "2", t.address),
        capture_output=True, text=True, env=quiet_env(), timeout=60,
    )  # fmt: skip
    assert not prefix.with_suffix(".jsonl").exists(), "the watch ran the stopped target"
    assert gdb.returncode == 1
    assert "Traceback" not in gdb.stderr
    errors = [line for line in gdb.stderr.splitlines() if f"process {t.pid} is stopped" in line]
    assert len(errors) == 1, gdb.stderr
    assert f"'kill -CONT {t.pid}'" in errors[0]
    assert_stays_stopped(t.pid)
    os.kill(t.pid, signal.SIGCONT)
    assert "tester: 40 writes, 40 reads" in t.finish()
    assert t.proc.returncode == 0


def test_sigstop_during_the_watch_stops_the_target_then(tester, tmp_path):
    t = tester("--no-wait", "--rounds", "300", "--interval-ms", "1")
    prefix = tmp_path / "w"
    gdb = subprocess.Popen(
        attach_command(t.pid, "--log", str(prefix), "--quiet", "--duration", "60", t.address),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env(),
    )  # fmt: skip
    jsonl = prefix.with_suffix(".jsonl")
    deadline = time.monotonic() + 30
    while not jsonl.exists() or jsonl.read_text().count("\n") < 20:
        assert time.monotonic() < deadline, "no records"
        time.sleep(0.01)
    os.kill(t.pid, signal.SIGSTOP)
    try:
        stdout, stderr = gdb.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        gdb.kill()
        stdout, stderr = gdb.communicate()
        pytest.fail(f"the watch went on after SIGSTOP: {stderr[-500:]}")
    assert gdb.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"stopped by SIGSTOP and is left stopped; resume it with 'kill -CONT {t.pid}'" in stderr
    assert_stays_stopped(t.pid)
    logged = read_jsonl(jsonl)
    assert [r["seq"] for r in logged] == list(range(1, len(logged) + 1))
    assert f"summary: {len(logged):,} accesses" in stdout
    assert t.proc.poll() is None, "the target finished instead of stopping"
    os.kill(t.pid, signal.SIGCONT)
    assert "tester: 300 writes, 300 reads" in t.finish()
    assert t.proc.returncode == 0


@pytest.fixture
def busy_threads(build_c):
    """busy_threads, in a process group of its own that is not orphaned (pytest, its
    parent, is in another group of the session), so the kernel acts on SIGTSTP."""
    started: list[subprocess.Popen] = []

    def start() -> tuple[int, str]:
        proc = subprocess.Popen(
            [str(build_c("busy_threads"))],
            stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, process_group=0,
        )  # fmt: skip
        started.append(proc)
        words = proc.stdout.readline().split()  # "pid 1234 byte 0x55..."
        return int(words[1]), words[3]

    yield start
    for proc in started:
        proc.kill()
        proc.communicate()


def thread_states(pid: int) -> list[str]:
    return [state_of_task(pid, task) for task in sorted(os.listdir(f"/proc/{pid}/task"))]


def state_of_task(pid: int, task: str) -> str:
    return parse_stat(Path(f"/proc/{pid}/task/{task}/stat").read_text())[0]


def assert_all_threads_stay_stopped(pid: int) -> None:
    assert_stays_stopped(pid)
    assert thread_states(pid) == ["T"] * 4


@pytest.mark.parametrize("signum", [signal.SIGSTOP, signal.SIGTSTP])
def test_threads_stopped_before_the_watch_stay_stopped(busy_threads, signum):
    pid, address = busy_threads()
    os.kill(pid, signum)
    wait_for_state(pid, "T")
    gdb = subprocess.run(
        attach_command(pid, "--quiet", "--duration", "2", address),
        capture_output=True, text=True, env=quiet_env(), timeout=60,
    )  # fmt: skip
    assert gdb.returncode == 1
    assert f"process {pid} is stopped" in gdb.stderr
    assert_all_threads_stay_stopped(pid)
    os.kill(pid, signal.SIGCONT)
    wait_for_state(pid, "S")


@pytest.mark.parametrize("signum", [signal.SIGSTOP, signal.SIGTSTP])
def test_threads_stopped_during_the_watch_stop_then(busy_threads, tmp_path, signum):
    pid, address = busy_threads()
    prefix = tmp_path / "w"
    gdb = subprocess.Popen(
        attach_command(pid, "--log", str(prefix), "--quiet", "--duration", "60", address),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env(),
    )  # fmt: skip
    jsonl = prefix.with_suffix(".jsonl")
    deadline = time.monotonic() + 30
    while not jsonl.exists() or jsonl.read_text().count("\n") < 20:
        assert time.monotonic() < deadline, "no records"
        time.sleep(0.01)
    os.kill(pid, signum)
    try:
        _, stderr = gdb.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        gdb.kill()
        pytest.fail(f"the watch went on after {signum.name}")
    assert gdb.returncode == 0, stderr
    assert f"stopped by {signum.name} and is left stopped" in stderr
    assert_all_threads_stay_stopped(pid)
