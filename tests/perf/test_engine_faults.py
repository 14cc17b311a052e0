"""The perf engine meets the target's faults the way the gdb engine does: an exit (code or
signal), an exec, a fork, an munmap of the watched page, a library dlopen()ed after arming;
a SIGSTOP it leaves alone; Ctrl-C, SIGTERM and SIGHUP with every record whole on disk.

Each case runs tests/c/faults.c under both engines (ASLR off: the same addresses) and holds
the perf engine's records and messages to the gdb engine's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gdb_qznusnih.launcher import procfs
from gdb_qznusnih.launcher.preflight import parse_stat
from tests.conftest import C_DIR
from tests.perf.perf_helpers import (
    LineReader,
    armed_launcher,
    launcher_run,
    records,
    wait_for_lines,
    wait_until,
)
from tests.records import comparable

pytestmark = pytest.mark.perf
FORK_NOTE = "qzn: the target forked; children are not watched (said once)"


class Faults:
    """tests/c/faults.c MODE [ARG], waiting on stdin for the go byte."""

    def __init__(self, program: Path, *args: str):
        self.proc = subprocess.Popen(
            ["setarch", "x86_64", "-R", str(program), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = self.proc.stdout.readline().split()  # "pid P addr 0x..."
        assert first[:1] == ["pid"], first
        self.pid, self.address = int(first[1]), first[3]

    def send(self, text: str = "g") -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def state(self) -> str:
        return parse_stat(Path(f"/proc/{self.pid}/stat").read_text())[0]


@pytest.fixture(scope="module")
def faults(build_c) -> Path:
    return build_c("faults")


def watch(program: Path, engine: str, tmp_path: Path, *args: str, exit_status: int = 0):
    """Watch faults MODE's byte to the end: (records, the launcher's stderr, the target's
    exit status), the launcher's exit status checked to be `exit_status`."""
    target = Faults(program, *args)
    prefix = tmp_path / engine
    with armed_launcher(target.address, target.pid, prefix, engine=engine) as (proc, armed):
        target.send()
        _, err = proc.communicate(timeout=120)
    target.proc.stdin.close()
    status = target.proc.wait(timeout=30)  # reaped only now: its status was readable
    assert proc.returncode == exit_status, err
    assert "Traceback" not in err
    return records(prefix), armed + err, status


def both_engines(program: Path, tmp_path: Path, *args: str, exit_status: int = 0):
    """The same run under each engine; (perf's, gdb's), each as watch() gives it."""
    return tuple(
        watch(program, engine, tmp_path, *args, exit_status=exit_status)
        for engine in ("perf", "gdb")
    )


def kinds_and_values(logged: list[dict]) -> list[tuple[str, int]]:
    return [(r["kind"], r["value"]) for r in logged]


def ended(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("qzn: watch 1 ended: "))


def test_an_exit_code_ends_the_watch_with_the_gdb_engines_message(faults, tmp_path):
    (by_perf, perf_err, perf_status), (by_gdb, gdb_err, gdb_status) = both_engines(
        faults, tmp_path, "exit", "7"
    )
    assert perf_status == gdb_status == 7
    assert ended(perf_err) == ended(gdb_err) == "qzn: watch 1 ended: target exited with code 7"
    assert kinds_and_values(by_perf) == kinds_and_values(by_gdb) == [("write", 1)]


def test_a_death_by_signal_ends_the_watch_naming_the_signal(faults, tmp_path):
    (by_perf, perf_err, perf_status), (by_gdb, gdb_err, gdb_status) = both_engines(
        faults, tmp_path, "signal", exit_status=128 + signal.SIGABRT
    )
    assert perf_status == gdb_status == -signal.SIGABRT
    assert ended(perf_err) == ended(gdb_err) == "qzn: watch 1 ended: target was killed by SIGABRT"
    assert kinds_and_values(by_perf) == kinds_and_values(by_gdb) == [("write", 1)]


def test_exec_ends_the_watch_keeping_every_record_before_it(faults, tmp_path):
    (by_perf, perf_err, _), (by_gdb, gdb_err, _) = both_engines(faults, tmp_path, "exec")
    expected = f"qzn: watch 1 ended: target called exec({faults}); exec clears watches"
    assert ended(perf_err) == ended(gdb_err) == expected
    # the new program writes 5 at the same address 20,000 times: not the watched program any more
    assert kinds_and_values(by_perf) == kinds_and_values(by_gdb) == [("write", 1)]


def test_a_fork_child_is_not_watched_and_said_once(faults, tmp_path):
    (by_perf, perf_err, _), (by_gdb, gdb_err, _) = both_engines(faults, tmp_path, "fork")
    assert perf_err.count(FORK_NOTE) == gdb_err.count(FORK_NOTE) == 1
    assert kinds_and_values(by_perf) == kinds_and_values(by_gdb) == [("write", 1), ("write", 3)]
    assert {r["pid"] for r in by_perf} == {by_perf[0]["tid"]}  # the parent's alone
    assert ended(perf_err) == ended(gdb_err) == "qzn: watch 1 ended: target exited with code 0"


def test_munmap_of_the_page_goes_on_watching_the_address_as_the_gdb_engine(faults, tmp_path):
    (by_perf, perf_err, _), (by_gdb, gdb_err, _) = both_engines(faults, tmp_path, "munmap")
    # written, unmapped, mapped again, written and read: the address is what is watched
    assert kinds_and_values(by_perf) == [("write", 1), ("write", 4), ("read", 4)]
    assert [comparable(r) for r in by_perf] == [comparable(r) for r in by_gdb]
    assert ended(perf_err) == ended(gdb_err) == "qzn: watch 1 ended: target exited with code 0"


def test_a_library_dlopened_after_arming_gets_full_frames(faults, build_c, tmp_path):
    plugin = build_c("symbols_plugin", extra=("-shared", "-fPIC"))
    (by_perf, _, status), (by_gdb, _, _) = both_engines(faults, tmp_path, "dlopen", str(plugin))
    assert status == 0
    assert kinds_and_values(by_perf) == [("write", 1), ("read", 1), ("write", 2), ("read", 2)]
    in_plugin = by_perf[1:3]  # the plugin's load and store, made after it was loaded
    assert [r["frames"][0]["func"] for r in in_plugin] == ["bump", "bump"]
    source = str(C_DIR / "symbols_plugin.c")
    assert {(r["frames"][0]["file"], r["frames"][0]["line"]) for r in in_plugin} == {(source, 3)}
    assert [f["func"] for f in in_plugin[0]["frames"]] == [
        "bump", "plugin_touch", "call_plugin", "main"
    ]  # fmt: skip
    assert all(r["insn"] and r["value_from"] == "registers" for r in in_plugin)
    assert [comparable(r) for r in by_perf] == [comparable(r) for r in by_gdb]


def test_a_sigstop_mid_watch_is_said_once_left_to_the_target_and_its_sigcont_too(faults, tmp_path):
    target = Faults(faults, "phases")
    prefix = tmp_path / "stopped"
    with armed_launcher(target.address, target.pid, prefix) as (proc, _):
        err = LineReader(proc.stderr)
        target.send()
        assert target.proc.stdout.readline() == "phase\n"
        target.proc.send_signal(signal.SIGSTOP)
        err.wait_for(stopped_note(target.pid))
        assert target.state() == "T"
        target.send()  # its go byte for the reads: it cannot take it while stopped
        time.sleep(0.5)  # two checks of its state and more: still one note
        assert target.state() == "T" and proc.poll() is None  # still stopped, still watched
        assert kinds_and_values(records(prefix)) == [("write", 1)]
        target.proc.send_signal(signal.SIGCONT)
        assert target.proc.stdout.readline() == "done\n"
        err.wait_for(RUNS_AGAIN_NOTE)  # it waits for the end of its stdin: running
        target.proc.stdin.close()
        proc.wait(timeout=60)
        err = err.text()
    assert_both_exited_0(proc, err, target)
    assert kinds_and_values(records(prefix)) == [("write", 1)] + [("read", 1)] * 100
    assert qzn_notes(err) == [stopped_note(target.pid), RUNS_AGAIN_NOTE, ended(err)]


def test_a_target_stopped_before_the_watch_is_armed_said_and_stays_stopped(faults, tmp_path):
    target = Faults(faults, "phases")
    target.proc.send_signal(signal.SIGSTOP)
    wait_for_state(target, "T")
    prefix = tmp_path / "prestopped"
    # perf needs no stop to arm: the gdb engine refuses a stopped target
    with armed_launcher(target.address, target.pid, prefix) as (proc, armed):
        err = LineReader(proc.stderr)
        assert armed_stopped(target.pid) in armed
        target.send()
        time.sleep(0.5)
        assert target.state() == "T" and proc.poll() is None
        assert records(prefix) == [] and err.lines == []  # no "was stopped": the armed line
        target.proc.send_signal(signal.SIGCONT)
        assert target.proc.stdout.readline() == "phase\n"
        err.wait_for(RUNS_AGAIN_NOTE)
        target.send()
        assert target.proc.stdout.readline() == "done\n"
        target.proc.stdin.close()
        proc.wait(timeout=60)
        err = err.text()
    assert_both_exited_0(proc, err, target)
    assert kinds_and_values(records(prefix)) == [("write", 1)] + [("read", 1)] * 100
    assert qzn_notes(err) == [RUNS_AGAIN_NOTE, ended(err)]


@pytest.mark.parametrize("how", ["SIGINT", "--duration"])
def test_the_watch_ends_while_the_target_is_stopped_and_leaves_it_stopped(faults, tmp_path, how):
    target = Faults(faults, "phases")
    prefix = tmp_path / "ended"
    duration = ("--duration", "1.5") if how == "--duration" else ()
    with armed_launcher(target.address, target.pid, prefix, *duration) as (proc, _):
        err = LineReader(proc.stderr)
        target.send()
        assert target.proc.stdout.readline() == "phase\n"
        target.proc.send_signal(signal.SIGSTOP)
        err.wait_for(stopped_note(target.pid))
        if how == "SIGINT":
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        out = proc.stdout.read()
        proc.wait(timeout=60)
        err = err.text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    reason = "SIGINT received" if how == "SIGINT" else "--duration 1.5s reached"
    assert qzn_notes(err) == [
        stopped_note(target.pid),
        f"qzn: the target is left stopped; resume it with 'kill -CONT {target.pid}'",
        f"qzn: watch 1 ended: {reason}",
    ]
    assert "summary: 1 access: 0 reads, 1 write in " in out
    assert kinds_and_values(records(prefix)) == [("write", 1)]
    time.sleep(0.3)
    assert target.state() == "T"  # a job-control stop, not a tracer's (t)
    assert procfs.tracer_pid(target.pid) == 0
    target.proc.send_signal(signal.SIGCONT)
    target.send()
    assert target.proc.stdout.readline() == "done\n"
    target.proc.stdin.close()
    assert target.proc.wait(timeout=30) == 0


def test_a_sigstop_under_run_engine_perf_is_said_once_and_its_sigcont_too(faults, tmp_path):
    """`run`: gdb detached the target at once (-batch); the notes come through gdb's thread."""
    prefix = tmp_path / "run"
    proc = launcher_run("--engine", "perf", "--log", str(prefix), "--quiet", "--no-html",
                        "--watch", "&the_byte", "--", str(faults), "phases",
                        stdin=subprocess.PIPE)  # fmt: skip
    try:
        err = LineReader(proc.stderr)
        line = proc.stdout.readline()  # the program's first line: "pid P addr 0x..."
        while not line.startswith("pid "):
            line = proc.stdout.readline()
        pid = int(line.split()[1])
        wait_until(lambda: procfs.tracer_pid(pid) == 0, "gdb to detach")
        proc.stdin.write("g")
        proc.stdin.flush()
        assert proc.stdout.readline() == "phase\n"
        os.kill(pid, signal.SIGSTOP)
        err.wait_for(stopped_note(pid))
        proc.stdin.write("g")
        proc.stdin.flush()
        time.sleep(0.5)
        assert procfs.state(pid) == "T" and procfs.tracer_pid(pid) == 0
        assert kinds_and_values(records(prefix)) == [("write", 1)]
        os.kill(pid, signal.SIGCONT)
        assert proc.stdout.readline() == "done\n"
        err.wait_for(RUNS_AGAIN_NOTE)
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=60)
        err = err.text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "summary: 101 accesses: 100 reads, 1 write in " in out
    assert kinds_and_values(records(prefix)) == [("write", 1)] + [("read", 1)] * 100
    notes = [line for line in qzn_notes(err) if not line.startswith("qzn: watch 1: ")]
    assert notes == [stopped_note(pid), RUNS_AGAIN_NOTE, ended(err)]
    assert ended(err) == "qzn: watch 1 ended: target exited with code 0"


def stopped_note(pid: int) -> str:
    return (
        "qzn: the target was stopped (SIGSTOP or Ctrl-Z) and is left stopped; the watch goes "
        f"on and logs its accesses after 'kill -CONT {pid}'"
    )


def armed_stopped(pid: int) -> str:
    return (
        "; stopped (SIGSTOP or Ctrl-Z): left stopped, its accesses logged after "
        f"'kill -CONT {pid}';"
    )


RUNS_AGAIN_NOTE = "qzn: the target was continued (SIGCONT) and runs again; the watch goes on"


def qzn_notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("qzn: ")]


HOT_WRITES = 100_000


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_mid_flood_leaves_every_record_whole(start_target, tmp_path, signum):
    target = start_target(HOT_WRITES, 0, 0)
    prefix = tmp_path / "flood"
    with armed_launcher(hex(target.address), target.pid, prefix) as (proc, _):
        target.go()
        wait_for_lines(prefix, 1000)  # the hot loop is under way
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert ended(err) == f"qzn: watch 1 ended: {signal.Signals(signum).name} received"
    text = Path(f"{prefix}.jsonl").read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]  # each whole
    accesses = [line for line in lines if "lost" not in line]
    lost = sum(line["lost"] for line in lines if "lost" in line)
    assert 1000 <= len(accesses) < HOT_WRITES  # stopped mid-flood
    assert [r["seq"] for r in accesses] == list(range(1, len(accesses) + 1))
    assert f"summary: {len(accesses):,} accesses: 0 reads, {len(accesses):,} writes" in out
    writes_log = Path(f"{prefix}.writes.log").read_text()
    assert writes_log.count("] WRITE ") == len(accesses)
    assert proc.returncode == (3 if lost else 0), (err, lost)
    target.wait_done()
    assert target.finish() == (HOT_WRITES - 1) % 256  # ran on to the end, unharmed


def assert_both_exited_0(proc: subprocess.Popen, err: str, target: Faults) -> None:
    """The launcher and the target exited 0, the watch ending with the target's exit."""
    assert proc.returncode == 0, err
    assert target.proc.wait(timeout=30) == 0
    assert ended(err) == "qzn: watch 1 ended: target exited with code 0"


def wait_for_state(target: Faults, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while target.state() != wanted:
        assert time.monotonic() < deadline, f"process {target.pid} is {target.state()}"
        time.sleep(0.005)
