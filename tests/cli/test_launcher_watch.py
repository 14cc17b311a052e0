"""The launcher end to end: watch, run, stop signals, and gdb dying under it."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from launcher_helpers import (
    gdb_child_of,
    jsonl_lines,
    quiet_env,
    run_launcher,
    start_launcher,
    wait_for,
)

from gdb_qznusnih.launcher.ptrace_cleanup import clear_debug_registers
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def test_watch_logs_every_access(start_tester, tmp_path):
    tester = start_tester("--rounds", "5")
    prefix = tmp_path / "w"
    bare_hex = f"{tester.addr:x}"  # the original's "ADDR PID", 0x optional
    done = run_launcher("watch", bare_hex, str(tester.pid), "--log", str(prefix), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    tester.assert_completed(5)
    logged = read_jsonl(f"{prefix}.jsonl")
    assert [r["kind"] for r in logged] == ["write", "read"] * 5
    assert all(r["addr"] == hex(tester.addr) and r["pid"] == tester.pid for r in logged)
    funcs = [f["func"] for f in logged[0]["frames"][:3]]
    assert funcs == ["write_byte", "do_round", "main"]


def test_watch_stream_starts_with_the_first_record_not_gdb_chatter(start_tester):
    tester = start_tester("--rounds", "2")
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), "--color", "never")
    assert done.returncode == 0, done.stderr
    tester.assert_completed(2)
    # No "[Thread debugging using libthread_db enabled]", no frame the target stopped in.
    assert done.stdout.startswith(f"[1:1] WRITE 0x{tester.addr:x}"), done.stdout[:300]
    assert "libthread_db" not in done.stdout + done.stderr


def test_run_starts_the_program_and_watches_from_main(tester_bin, tmp_path):
    prefix = tmp_path / "r"
    done = run_launcher(
        "run",
        "--watch",
        "&the_data",
        "--log",
        str(prefix),
        "--quiet",
        "--",
        str(tester_bin),
        "--no-wait",
        "--rounds",
        "4",
    )
    assert done.returncode == 0, done.stderr
    assert "tester: 4 writes, 4 reads" in done.stdout
    assert [r["kind"] for r in read_jsonl(f"{prefix}.jsonl")] == ["write", "read"] * 4


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_detaches_and_exits_0(start_tester, tmp_path, signum):
    rounds = 100  # 1 s of rounds: the signal lands after the second
    tester = start_tester("--rounds", str(rounds), "--interval-ms", "10")
    prefix = tmp_path / "s"
    launcher = start_launcher("watch", hex(tester.addr), str(tester.pid), "--log", str(prefix))
    try:
        wait_for(lambda: jsonl_lines(prefix) >= 4, what="the first hits")
        launcher.send_signal(signum)
        out, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, err
    assert "Traceback" not in err
    assert f"watch 1 ended: {signal.Signals(signum).name} received" in err
    logged = jsonl_lines(prefix)
    assert logged < 2 * rounds  # the signal, not the target's end, ended the watch
    assert f"summary: {logged} accesses" in out
    tester.assert_completed(rounds)
    assert tester.proc.returncode == 0


def test_sigkill_of_gdb_clears_the_debug_registers(start_tester, tmp_path):
    # Low rate, killed just after a round's read: gdb's death resumes the target at once, so a
    # kill during the write's stop would let the read trap before anyone could clear DR7.
    rounds = 2  # the second round runs on with DR7 cleared
    tester = start_tester("--rounds", str(rounds), "--interval-ms", "300")
    prefix = tmp_path / "k"
    launcher = start_launcher(
        "watch", hex(tester.addr), str(tester.pid), "--log", str(prefix), "--quiet"
    )
    try:
        wait_for(lambda: jsonl_lines(prefix) >= 2, what="the watch to be armed")
        time.sleep(0.05)
        gdb = gdb_child_of(launcher.pid)
        subprocess.run(["kill", "-KILL", str(gdb)], check=True)
        out, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("qznusnih: ")]
    assert len(lines) == 1, err
    assert "killed by SIGKILL" in lines[0]
    assert f"process {tester.pid} is alive: cleared its hardware watchpoints" in lines[0]
    tester.assert_completed(rounds)
    # Every record logged before the kill is whole: the first round's write and read.
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert [(r["seq"], r["kind"]) for r in records] == [(1, "write"), (2, "read")]


# Without the launcher: plain gdb with an armed access watchpoint, killed with SIGKILL.
# The first test shows what the cleanup is for (the target dies of SIGTRAP, exit 133);
# the second that clear_debug_registers saves it.

PLAIN_WATCH = """\
awatch *(char *){addr:#x}
commands
silent
printf "hit\\n"
continue
end
continue
"""


def kill_plain_gdb_after_a_hit(tester, tmp_path) -> None:
    script = tmp_path / "watch.gdb"
    script.write_text(PLAIN_WATCH.format(addr=tester.addr))
    gdb = subprocess.Popen(
        ["gdb", "-nx", "-batch", "-p", str(tester.pid), "-x", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=quiet_env(),
    )
    hits = 0
    for line in gdb.stdout:
        hits += line.strip() == "hit"
        if hits == 2:  # a round's write and read: the target now sleeps for a while
            break
    time.sleep(0.05)  # gdb resumes it; killing gdb while it holds a trap stop is fatal anyway
    gdb.kill()
    gdb.wait()


def test_plain_gdb_killed_leaves_the_watchpoint_armed(start_tester, tmp_path):
    tester = start_tester("--rounds", "2", "--interval-ms", "300")
    kill_plain_gdb_after_a_hit(tester, tmp_path)
    code, _out, _err = tester.finish()
    assert code == -signal.SIGTRAP  # the shell would say 133


def test_clear_debug_registers_saves_the_target(start_tester, tmp_path):
    tester = start_tester("--rounds", "2", "--interval-ms", "300")  # round 2 would trap
    kill_plain_gdb_after_a_hit(tester, tmp_path)
    report = clear_debug_registers(tester.pid, resume_if_stopped=True)
    assert (report.threads, report.cleared, report.failed) == (1, 1, [])
    tester.assert_completed(2)


def test_clear_debug_registers_on_an_unwatched_process_is_harmless(start_tester):
    tester = start_tester("--rounds", "1", "--no-wait", "--interval-ms", "200")
    report = clear_debug_registers(tester.pid)
    assert (report.threads, report.cleared, report.redelivered, report.failed) == (1, 0, [], [])
    tester.assert_completed(1)


def test_clear_debug_registers_skips_a_reused_pid(start_tester):
    tester = start_tester("--rounds", "1", "--no-wait")
    report = clear_debug_registers(tester.pid, expected_start_time="1")
    assert report.gone
