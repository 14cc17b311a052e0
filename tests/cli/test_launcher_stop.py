"""The launcher ending a watch: stop signals at any moment, a closed stdout, gdb killed.

Each test drives the real launcher against the real tester and checks the target after:
alive, not traced, its debug registers clear (or, when gdb was SIGKILLed, exactly the fate
the launcher reported).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from launcher_helpers import (
    catches_stop_signals,
    jsonl_lines,
    process_state,
    start_launcher,
    wait_for,
    watch_gdb_of,
)

from gdb_qznusnih.launcher.ptrace_cleanup import clear_debug_registers

pytestmark = pytest.mark.gdb

STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
PROMPT_S = 3.0  # well under the launcher's 10 s grace
RUNNING = ("--no-wait", "--rounds", "100000", "--interval-ms", "10")


def assert_left_running_and_clean(tester) -> None:
    assert tester.alive(), "the target died"
    assert tester.tracer_pid() == 0, "the target is still traced"
    report = clear_debug_registers(tester.pid)
    assert (report.threads, report.cleared, report.failed) == (1, 0, []), "DR7 left armed"


def stop_launcher(launcher, signum) -> tuple[str, float]:
    sent = time.monotonic()
    launcher.send_signal(signum)
    try:
        _out, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    return err, time.monotonic() - sent


def moment_reached(moment: str, launcher, tester, prefix) -> bool:
    if moment == "started":  # the launcher's handlers are in place; gdb is not running yet
        return catches_stop_signals(launcher.pid)
    if moment == "spawned":  # gdb runs but has not attached
        return watch_gdb_of(launcher.pid) is not None
    if moment == "attaching":  # gdb has attached; the watch is not armed yet
        return tester.tracer_pid() != 0
    return jsonl_lines(prefix) >= 1  # armed: hits are being logged


EXPECTED = {
    "started": ["{name} received before gdb started"],
    "spawned": ["{name} received before gdb attached; process {pid} was not touched", "ended"],
    "attaching": ["watch 1 ended: {name} received"],
    "armed": ["watch 1 ended: {name} received"],
}


@pytest.mark.parametrize("moment", list(EXPECTED))
@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_stop_signal_at_any_moment_ends_the_watch(start_tester, tmp_path, signum, moment):
    tester = start_tester(*RUNNING)
    prefix = tmp_path / "s"
    launcher = start_launcher(
        "watch", hex(tester.addr), str(tester.pid), "--log", str(prefix), "--quiet"
    )
    wait_for(lambda: moment_reached(moment, launcher, tester, prefix), what=moment)
    err, took = stop_launcher(launcher, signum)
    name = signal.Signals(signum).name
    assert launcher.returncode == 0, err
    assert took < PROMPT_S, f"took {took:.1f} s: {err}"
    assert "Traceback" not in err
    expected = [text.format(name=name, pid=tester.pid) for text in EXPECTED[moment]]
    if moment == "spawned":  # gdb may win the race to attach: then it ends the watch itself
        expected[1] = f"watch 1 ended: {name} received"
        assert any(text in err for text in expected), err
    else:
        assert expected[0] in err, err
    others = [signal.Signals(s).name for s in STOP_SIGNALS if s != signum]
    assert not any(f"{other} received" in err for other in others), err
    assert_left_running_and_clean(tester)


def test_stopped_gdb_is_continued_and_ends_the_watch(start_tester, tmp_path):
    tester = start_tester(*RUNNING)
    prefix = tmp_path / "s"
    launcher = start_launcher(
        "watch", hex(tester.addr), str(tester.pid), "--log", str(prefix), "--quiet"
    )
    wait_for(lambda: jsonl_lines(prefix) >= 2, what="the first hits")
    gdb = watch_gdb_of(launcher.pid)
    os.kill(gdb, signal.SIGSTOP)
    wait_for(lambda: process_state(gdb) == "T", what="gdb to stop")
    err, took = stop_launcher(launcher, signal.SIGTERM)
    assert launcher.returncode == 0, err
    assert took < PROMPT_S, f"took {took:.1f} s: {err}"
    assert "watch 1 ended: SIGTERM received" in err and "Traceback" not in err
    assert_left_running_and_clean(tester)


def test_closed_stdout_ends_the_stream_not_the_log_files(start_tester, tmp_path):
    """`qznusnih watch ... --log x | head -3`: the files get every record to the end."""
    rounds = 50
    tester = start_tester("--rounds", str(rounds), "--interval-ms", "5")
    prefix = tmp_path / "p"
    launcher = start_launcher("watch", hex(tester.addr), str(tester.pid), "--log", str(prefix))
    head = [launcher.stdout.readline() for _ in range(3)]
    launcher.stdout.close()  # what `head -3` does
    err = launcher.stderr.read()
    launcher.wait(timeout=60)
    assert head[0].startswith("[1:1] WRITE"), head
    assert launcher.returncode == 0, err
    assert "Traceback" not in err
    assert "standard output closed; the --log files go on" in err
    assert "watch 1 ended: target exited with code 0" in err
    tester.assert_completed(rounds)
    assert jsonl_lines(prefix) == 2 * rounds


RATES = {"low": ("--interval-ms", "100"), "full": ("--interval-ms", "0")}


@pytest.mark.parametrize("rate", list(RATES))
def test_sigkill_of_gdb_reports_the_targets_real_fate(start_tester, tmp_path, rate):
    """At a full hit rate the target traps before anyone can clear DR7; say so, not 'cleared'."""
    tester = start_tester("--rounds", "100000000", *RATES[rate])
    prefix = tmp_path / "k"
    launcher = start_launcher(
        "watch", hex(tester.addr), str(tester.pid), "--log", str(prefix), "--quiet"
    )
    try:
        wait_for(lambda: jsonl_lines(prefix) >= 2, what="the watch to be armed")
        os.kill(watch_gdb_of(launcher.pid), signal.SIGKILL)
        _out, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("qznusnih: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("qznusnih: gdb was killed by SIGKILL while watching; "), lines
    if tester.alive():
        assert f"process {tester.pid} is alive: cleared its hardware watchpoints " in lines[0]
        assert " ms after gdb died (1 of 1 thread was armed)" in lines[0]
        assert_left_running_and_clean(tester)
    else:
        assert tester.proc.wait() == -signal.SIGTRAP
        assert f"process {tester.pid} died of SIGTRAP: its watchpoint fired" in lines[0]
