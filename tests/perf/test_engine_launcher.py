"""`qznusnih watch --engine perf` end to end, on real processes: the same records as the gdb
engine, every thread, a target under strace, SIGKILL of the launcher at full speed, the loss
accounting, no permission, and `auto` falling back to gdb."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.perf.perf_helpers import (
    Mix,
    armed_launcher,
    child_pids,
    launcher,
    records,
    wait_for_lines,
    wait_until,
    watch_mix,
)
from tests.records import comparable, thread_pattern

pytestmark = pytest.mark.perf
NO_PERF = Path(__file__).with_name("no_perf_events.py")
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_mix_gives_the_same_records_under_perf_as_under_gdb(build_c, tmp_path):
    program = build_c("mix")
    by_perf, perf_err, perf_byte = watch_mix(program, tmp_path, "perf")
    by_gdb, gdb_err, gdb_byte = watch_mix(program, tmp_path, "gdb")
    assert perf_byte == gdb_byte
    assert "engine perf (perf events permitted: root)" in perf_err
    assert "engine gdb (--engine gdb)" in gdb_err
    assert "Traceback" not in perf_err + gdb_err
    assert len(by_perf) == len(by_gdb) == 19
    assert [comparable(r) for r in by_perf] == [comparable(r) for r in by_gdb]
    # One record builder: where the perf engine knows a value, the gdb engine has the same.
    pairs = [(p, g) for p, g in zip(by_perf, by_gdb) if p["value_from"] is not None]
    assert [(p["value"], p["value_from"]) for p, _ in pairs] == [
        (g["value"], g["value_from"]) for _, g in pairs
    ]
    assert len(pairs) == 9  # 8 from the registers, 1 the read half of `addb $0,(%rax)`
    assert thread_pattern(by_perf) == thread_pattern(by_gdb) == [0] * 17 + [1, 1]
    assert "qzn: watch 1 ended: target exited with code 0" in perf_err
    assert "qzn: watch 1 ended: target exited with code 0" in gdb_err


@pytest.mark.parametrize("engine", ["perf", "gdb"])
def test_if_and_stop_if_through_the_launcher(build_c, tmp_path, engine):
    program = build_c("mix")
    every, _, _ = watch_mix(program, tmp_path, engine)
    stores = "kind == 'write' and func ~ '^store_'"
    kept, err, _ = watch_mix(program, tmp_path, engine, "--if", stores)
    wanted = [r for r in every if r["kind"] == "write" and r["frames"][0]["func"][:6] == "store_"]
    # Accesses --if leaves out are not shown: the next record may say changed_unseen.
    ignore = {"seq": 0, "changed_unseen": None}
    assert [comparable(r) | ignore for r in kept] == [comparable(r) | ignore for r in wanted]
    assert [r["seq"] for r in kept] == list(range(1, len(wanted) + 1)) and len(wanted) == 3
    stop = "func == 'exchange'"
    upto, err, _ = watch_mix(program, tmp_path, engine, "--stop-if", stop)
    first = next(i for i, r in enumerate(every) if r["frames"][0]["func"] == "exchange")
    assert [comparable(r) for r in upto] == [comparable(r) for r in every[: first + 1]]
    assert f"qzn: watch 1 ended: --stop-if {stop} matched" in err  # and mix ran on: "mix done"


def test_threads_made_before_and_after_arming_are_all_watched(start_target, tmp_path):
    target = start_target(200, 100, 10, early=2, late=2)
    prefix = tmp_path / "threads"
    with armed_launcher(hex(target.address), target.pid, prefix) as (proc, _):
        assert target.status().tracer_pid == 0
        target.go()
        target.wait_done()
        target.proc.stdin.close()  # it reads the byte once more and exits
        target.proc.stdin = None
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert target.proc.wait(timeout=10) == 0
    logged = records(prefix)
    per_thread: dict[int, list[int]] = {}
    for record in logged:
        counts = per_thread.setdefault(record["tid"], [0, 0])
        counts[record["kind"] == "write"] += 1
    main = target.pid
    assert len(per_thread) == 5
    assert per_thread.pop(main) == [110 + 1, 210]
    assert all(counts == [110, 210] for counts in per_thread.values()), per_thread
    workers = {r["frames"][2]["func"] for r in logged if r["tid"] != main and len(r["frames"]) > 2}
    assert workers == {"early_worker", "late_worker"}
    assert "target exited with code 0" in err


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_target_under_strace_is_watched(start_target, tmp_path):
    target = start_target(50, 50, 0, wrapper=["strace", "-f", "-o", "/dev/null"])
    tracer = target.status().tracer_pid
    assert tracer != 0
    prefix = tmp_path / "traced"
    with armed_launcher(hex(target.address), target.pid, prefix, engine=None) as (proc, armed):
        assert "engine perf" in armed  # auto: the gdb engine would refuse a traced process
        target.go()
        target.wait_done()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "watch 1 ended: SIGTERM received" in err
    assert [r["kind"] for r in records(prefix)] == ["write"] * 50 + ["read"] * 50
    assert target.status().tracer_pid == tracer  # strace still has it
    assert target.finish() == 49


HOT_WRITES = 100_000


@pytest.mark.parametrize("trial", range(5))
def test_sigkill_of_the_launcher_at_full_speed_leaves_the_target_running(
    start_target, tmp_path, trial
):
    target = start_target(HOT_WRITES, 0, 0)
    prefix = tmp_path / "killed"
    with armed_launcher(hex(target.address), target.pid, prefix) as (proc, _):
        symbolizer = child_pids(proc.pid)
        target.go()
        wait_for_lines(prefix, 1000)  # the hot loop is under way, records on disk
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    proc.communicate()
    target.wait_done()
    assert target.status().tracer_pid == 0
    assert target.finish() == (HOT_WRITES - 1) % 256  # exit 0, not killed by SIGTRAP
    for pid in symbolizer:  # the symbolizer's gdb sees its socket close and ends
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), f"gdb {pid} to end")


def test_a_tiny_ring_loses_accesses_and_says_how_many_exactly(start_target, tmp_path):
    target = start_target(20_000, 0, 0)
    prefix = tmp_path / "lossy"
    tiny = ("--stack-bytes", "512", "--ring-pages", "1")
    with armed_launcher(hex(target.address), target.pid, prefix, *tiny) as (proc, _):
        target.go()
        target.wait_done()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err  # accesses lost: not a clean watch
    assert "watch 1 ended: SIGINT received" in err
    lines = records(prefix)
    accesses = [line for line in lines if "lost" not in line]
    marks = [line for line in lines if "lost" in line]
    lost_line = next(line for line in out.splitlines() if line.startswith("lost: "))
    lost = int(lost_line.split()[1].replace(",", ""))
    assert lost > 0 and len(accesses) + lost == 20_000, (len(accesses), lost_line)
    # in the stream, where they happened: they add up to the hardware's own count
    assert {tuple(mark) for mark in marks} == {("lost", "watch", "time", "reason")}
    assert {mark["reason"] for mark in marks} == {"ring overflow"}
    assert sum(mark["lost"] for mark in marks) == lost
    assert lines[0] in accesses and len(marks) > 1, "a loss only at the end"
    for log in ("reads", "writes"):  # the text logs' one-line markers
        markers = Path(f"{prefix}.{log}.log").read_text().count("] LOST  ")
        assert markers == len(marks), log
    assert target.finish() == (20_000 - 1) % 256


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_perf_engine_without_permission_is_one_line_and_the_target_untouched(
    start_target,
):
    target = start_target(10, 10, 0)  # root's process; the launcher runs as nobody
    proc = launcher(hex(target.address), str(target.pid), "--engine", "perf",
                    wrapper=AS_NOBODY, python="/usr/bin/python3")  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"qznusnih: not permitted to watch process {target.pid}")
    assert target.status().tracer_pid == 0
    target.go()
    target.wait_done()
    assert target.finish() == 9


def test_a_gdb_only_option_with_engine_perf_is_one_line(start_target):
    target = start_target(1, 1, 0)
    proc = launcher(hex(target.address), str(target.pid), "--engine", "perf", "--stop")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        "qznusnih: --stop needs the gdb engine (perf never stops the target)"
    ]


def test_auto_falls_back_to_gdb_where_perf_events_are_forbidden(start_target, tmp_path):
    target = start_target(20, 20, 0)
    prefix = tmp_path / "fallback"
    with armed_launcher(
        hex(target.address), target.pid, prefix, engine=None,
        wrapper=["/usr/bin/python3", str(NO_PERF)],
    ) as (proc, armed):  # fmt: skip
        assert "; engine gdb (not permitted to watch process" in armed, armed
        wait_until(lambda: target.status().tracer_pid != 0, "gdb to attach")
        target.go()
        target.wait_done()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [r["kind"] for r in records(prefix)] == ["write"] * 20 + ["read"] * 20
    assert target.finish() == 19


def test_addr_may_only_read_a_gdb_function_call_runs_nothing(build_c, tmp_path):
    """The symbolizer's gdb is root's: `$_shell(...)` in ADDR would run a shell command."""
    mix = Mix(build_c("mix"))
    planted = tmp_path / "ran"
    proc = launcher(f'$_shell("touch {planted}")', str(mix.pid), "--engine", "perf")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qznusnih: '$_shell("), err
    assert lines[0].endswith("calls $_shell(); ADDR must only read the target: give an address "
                             "such as '&buf[3]' or '0x7ffd1234'")  # fmt: skip
    assert not planted.exists()
    mix.go()
    assert mix.proc.wait(timeout=30) == 0


def test_addr_that_is_not_an_address_is_one_line(build_c):
    mix = Mix(build_c("mix"))
    proc = launcher("area[11]", str(mix.pid), "--engine", "perf")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [
        "qznusnih: 'area[11]' is a volatile unsigned char value, not an address; "
        "did you mean '&area[11]'?"
    ]
    mix.go()
    assert mix.proc.wait(timeout=30) == 0


def test_count_and_access_filter_under_perf(build_c, tmp_path):
    mix = Mix(build_c("mix"))
    prefix = tmp_path / "count"
    filters = ("--access", "w", "--count", "5")
    with armed_launcher(hex(mix.byte), mix.pid, prefix, *filters) as (proc, _):
        mix.go()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "watch 1 ended: --count 5 reached" in err
    logged = records(prefix)
    assert [r["kind"] for r in logged] == ["write"] * 5
    assert [r["frames"][0]["func"] for r in logged] == [
        "store_new", "store_same", "add_zero", "increment", "locked_increment"
    ]  # fmt: skip
    assert mix.proc.wait(timeout=30) == 0
