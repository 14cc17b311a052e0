"""`qzn-watch --engine perf` inside a real gdb, and `qznusnih run --engine perf`: the gdb
engine's records on tests/c/mix.c field by field, records written while the program still
runs under `continue`, -batch detaching the target, the debug registers perf shares with gdb,
a core file, and SIGKILL of the launcher or of gdb at full speed under `run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LOADER, gdb_stopped_at_argv, quiet_env, tracer_pid
from tests.perf.perf_helpers import (
    LOADER_ONLY,
    child_pids,
    launcher_run,
    run_gdb,
    wait_for_lines,
    wait_until,
)
from tests.records import comparable, read_jsonl, thread_pattern

pytestmark = pytest.mark.perf
NO_PERF = Path(__file__).with_name("no_perf_events.py")
ROOT_PERF = "engine perf (perf events permitted: root)"


def gdb_argv(program, *commands: str, **how) -> list:
    return gdb_stopped_at_argv(program, *commands, extension=LOADER_ONLY, **how)


def watch_in_gdb(program, prefix: Path, engine: str) -> subprocess.CompletedProcess:
    """An interactive gdb: qzn-watch &area[11] at ready(), then `continue` to the end."""
    watch = f"qzn-watch --engine {engine} --log {prefix} --quiet --no-html &area[11]"
    result = run_gdb(program, watch, "continue")
    assert "Traceback" not in result.stdout + result.stderr
    assert "mix done" in result.stdout
    return result


def test_in_gdb_perf_gives_the_same_records_as_the_gdb_engine(build_c, tmp_path):
    mix = build_c("mix")
    by_perf = watch_in_gdb(mix, tmp_path / "perf", "perf")
    by_gdb = watch_in_gdb(mix, tmp_path / "gdb", "gdb")
    perf_records = read_jsonl(tmp_path / "perf.jsonl")
    gdb_records = read_jsonl(tmp_path / "gdb.jsonl")
    assert len(perf_records) == len(gdb_records) == 19
    assert [comparable(r) for r in perf_records] == [comparable(r) for r in gdb_records]
    assert thread_pattern(perf_records) == thread_pattern(gdb_records) == [0] * 17 + [1, 1]
    # One record builder: where the perf engine knows a value, the gdb engine has the same;
    # the gdb engine reads memory where the registers do not tell, the perf engine cannot.
    pairs = [(p, g) for p, g in zip(perf_records, gdb_records) if p["value_from"] is not None]
    assert [(p["value"], p["value_from"]) for p, _ in pairs] == [
        (g["value"], g["value_from"]) for _, g in pairs
    ]
    assert len(pairs) == 9
    assert all(r["value_from"] is not None for r in gdb_records)
    armed = [line for line in by_perf.stderr.splitlines() if line.startswith("qzn: watch 1: ")]
    assert len(armed) == 1 and armed[0].endswith(
        f"; {ROOT_PERF}; takes 2 debug registers; logs {tmp_path}/perf.jsonl, "
        f"{tmp_path}/perf.reads.log, {tmp_path}/perf.writes.log"
    ), by_perf.stderr
    gdb_armed = next(line for line in by_gdb.stderr.splitlines() if "qzn: watch 1: " in line)
    assert "engine" not in gdb_armed  # --engine gdb: the line as it always was
    for result in (by_perf, by_gdb):
        assert "qzn: watch 1 ended: target exited with code 0" in result.stderr
        assert "summary: 19 accesses: 10 reads, 9 writes" in result.stdout


def paused_program(program, fifo: Path, rounds: int, watch: str) -> subprocess.Popen:
    """An interactive gdb running fifo_pause under `watch` and `continue`: `rounds` writes
    and reads, then the program waits for a byte on `fifo`."""
    argv = gdb_argv(program, watch, "continue", stop_at="main", args=(str(fifo), str(rounds)))
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=quiet_env())  # fmt: skip


def test_records_are_written_while_the_program_runs_under_continue(build_c, tmp_path):
    """The program does 3 writes and 3 reads, then blocks opening a fifo: its 6 records are
    on disk while gdb is still in `continue`, before it exits."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    prefix = tmp_path / "live"
    watch = f"qzn-watch --engine perf --log {prefix} --quiet --no-html &byte"
    gdb = paused_program(build_c("fifo_pause"), fifo, 3, watch)
    try:
        armed = armed_line(gdb.stderr)
        assert ROOT_PERF in armed, armed
        pid = int(re.search(r" in process (\d+);", armed).group(1))
        jsonl = Path(f"{prefix}.jsonl")
        wait_until(lambda: jsonl.read_bytes().count(b"\n") == 6, "6 records")
        logged = read_jsonl(jsonl)
        assert [r["kind"] for r in logged] == ["write", "read"] * 3
        assert [r["frames"][0]["func"] for r in logged] == ["touch_write", "touch_read"] * 3
        assert Path(f"/proc/{pid}").exists() and gdb.poll() is None  # the program is blocked
        with open(fifo, "w") as go:
            go.write("x")
        _, err = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
    assert gdb.returncode == 0, err
    assert "qzn: watch 1 ended: target exited with code 0" in err
    assert [r["kind"] for r in read_jsonl(jsonl)] == ["write", "read"] * 3 + ["write", "read"]


def test_count_ends_the_watch_by_itself_while_the_program_runs_on(build_c, tmp_path):
    """--count is met on the consumer thread: gdb's thread ends the watch (a posted event)
    while `continue` goes on, and the program is not stopped."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    prefix = tmp_path / "count"
    watch = f"qzn-watch --engine perf --count 5 --log {prefix} --quiet &byte"
    gdb = paused_program(build_c("fifo_pause"), fifo, 10, watch)
    try:
        armed_line(gdb.stderr)
        assert gdb.stderr.readline() == "qzn: watch 1 ended: --count 5 reached\n"
        with open(fifo, "w") as go:
            go.write("x")
        out, err = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
    assert "Traceback" not in err and "exited normally" in out
    assert [r["kind"] for r in read_jsonl(prefix.with_suffix(".jsonl"))] == [
        "write", "read", "write", "read", "write"
    ]  # fmt: skip


def test_exec_ends_the_watch_after_the_old_programs_last_access(build_c, tmp_path):
    """forkexec writes, forks, writes, reads, then execs true: the read comes last, just
    before the exec, and is logged; the watch ends at the exec."""
    true = os.path.realpath("/bin/true")
    logged, said = {}, {}
    for engine in ("perf", "gdb"):
        prefix = tmp_path / engine
        watch = f"qzn-watch --engine {engine} --log {prefix} --quiet --no-html &the_data"
        result = run_gdb(build_c("forkexec"), watch, "continue", stop_at="main", args=(true,))
        assert "Traceback" not in result.stderr and "exited normally" in result.stdout
        logged[engine], said[engine] = read_jsonl(prefix.with_suffix(".jsonl")), result.stderr
    assert [comparable(r) for r in logged["perf"]] == [comparable(r) for r in logged["gdb"]]
    assert [(r["kind"], r["value"]) for r in logged["perf"]] == [
        ("write", 1), ("write", 3), ("read", 3)
    ]  # fmt: skip
    # gdb's own watch goes on in the new program; perf's events would then watch another
    # thing at that address, so the watch ends with the line of the gdb engine's -batch.
    assert f"qzn: watch 1 ended: target called exec({true}); exec clears watches" in said["perf"]


def test_status_and_unwatch_take_perf_watches(build_c, tmp_path):
    prefix = tmp_path / "gone"
    result = run_gdb(build_c("mix"),
                     f"qzn-watch --engine perf --log {prefix} --quiet &area[11]",
                     "qzn-status", "qzn-unwatch 1", "qzn-status", "continue")  # fmt: skip
    status = r"^watch 1: 0x[0-9a-f]+ \(&area\[11\]\), 1 byte, access rw: 0 reads, 0 writes; "
    assert len(re.findall(status, result.stdout, re.MULTILINE)) == 1, result.stdout
    assert "summary: 0 accesses: 0 reads, 0 writes" in result.stdout
    assert "qzn: watch 1 ended: removed by qzn-unwatch" in result.stderr
    assert "No watches armed." in result.stdout and "mix done" in result.stdout
    assert prefix.with_suffix(".jsonl").read_text() == ""


def test_batch_auto_takes_perf_detaches_and_lets_the_target_run_free(build_c, tmp_path):
    mix = subprocess.Popen(["setarch", "x86_64", "-R", str(build_c("mix")), "wait"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    mix.stdout.readline()
    pid = int(mix.stdout.readline().split()[1])
    prefix = tmp_path / "batch"
    argv = ["gdb", "-nx", "-batch", "-p", str(pid), "-x", str(LOADER), "-ex",
            f"qzn-watch --engine auto --log {prefix} --quiet --no-html &area[11]"]  # fmt: skip
    gdb = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=quiet_env())  # fmt: skip
    try:
        armed = armed_line(gdb.stderr)
        assert ROOT_PERF in armed, armed
        wait_until(lambda: tracer_pid(pid) == 0, "gdb to detach")
        mix.stdin.write("g")
        mix.stdin.flush()
        out, err = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
    assert gdb.returncode == 0, err
    assert "qzn: watch 1 ended: target exited with code 0" in err
    assert "summary: 19 accesses: 10 reads, 9 writes" in out
    assert len(read_jsonl(prefix.with_suffix(".jsonl"))) == 19
    assert mix.wait(timeout=30) == 0 and "mix done" in mix.stdout.read()


def test_a_perf_watch_takes_two_of_the_four_debug_registers_gdb_uses(build_c, tmp_path):
    """The kernel gives perf events and ptrace watchpoints the same 4 registers of a task."""
    prefix = tmp_path / "shared"
    result = run_gdb(build_c("mix"),
                     f"qzn-watch --engine perf --log {prefix} --quiet --no-html &area[11]",
                     "awatch area[1]",
                     "qzn-watch --engine perf --quiet &area[3]",
                     "qzn-watch --engine gdb --quiet &area[2]",
                     "qzn-status", "continue")  # fmt: skip
    refused = [line for line in result.stderr.splitlines() if "no debug register left" in line]
    assert refused == [
        "no debug register left: 3 of 4 in use, the perf engine needs 2; free one with "
        "'qzn-unwatch N' or 'delete' on a hardware watchpoint"
    ], result.stderr
    status = re.findall(r"^watch (\d+): 0x[0-9a-f]+ \((.+?)\)", result.stdout, re.MULTILINE)
    assert status == [("1", "&area[11]"), ("2", "&area[2]")]
    assert "No space left on device" not in result.stdout + result.stderr
    assert "mix done" in result.stdout
    assert len(read_jsonl(prefix.with_suffix(".jsonl"))) == 19


def test_auto_inside_gdb_takes_gdb_where_perf_events_are_forbidden(build_c, tmp_path):
    prefix = tmp_path / "fallback"
    watch = f"qzn-watch --engine auto --log {prefix} --quiet &area[11]"
    result = run_gdb(build_c("mix"), watch, "continue", wrapper=["/usr/bin/python3", str(NO_PERF)])
    armed = next(line for line in result.stderr.splitlines() if line.startswith("qzn: watch 1"))
    assert "; engine gdb (not permitted to watch process" in armed, armed
    logged = read_jsonl(prefix.with_suffix(".jsonl"))  # the gdb engine knows every value
    assert len(logged) == 19 and all(r["value_from"] is not None for r in logged)
    assert "mix done" in result.stdout


def test_a_core_file_is_watched_by_gdb_only(build_c, tmp_path):
    mix = build_c("mix")
    core = tmp_path / "core"
    made = run_gdb(mix, f"gcore {core}", "kill")
    assert core.exists(), made.stderr
    base = ["gdb", "-nx", "-batch", "-x", str(LOADER), str(mix), str(core), "-ex"]
    perf = subprocess.run([*base, "qzn-watch --engine perf &area[11]"], capture_output=True,
                          text=True, env=quiet_env(), timeout=60)  # fmt: skip
    errors = [line for line in perf.stderr.splitlines() if "core file" in line]
    assert errors == ["a core file: perf events watch a live process"], perf.stderr
    assert "Traceback" not in perf.stderr
    assert perf.returncode == 1


# ---------------------------------------------------------------- qznusnih run


def run_mix(program, prefix: Path, *engine: str, wrapper=()) -> str:
    proc = launcher_run(*engine, "--log", str(prefix), "--quiet", "--no-html",
                        "--watch", "&area[11]", "--", str(program), wrapper=wrapper)  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "mix done" in out and "Traceback" not in err
    assert "qzn: watch 1 ended: target exited with code 0" in err
    return err


def test_run_engine_perf_on_mix_gives_the_gdb_engines_records(build_c, tmp_path):
    mix = build_c("mix")
    perf_err = run_mix(mix, tmp_path / "perf", "--engine", "perf")
    gdb_err = run_mix(mix, tmp_path / "gdb", "--engine", "gdb")
    assert ROOT_PERF in perf_err and "engine gdb" not in gdb_err
    by_perf, by_gdb = read_jsonl(tmp_path / "perf.jsonl"), read_jsonl(tmp_path / "gdb.jsonl")
    assert len(by_perf) == len(by_gdb) == 19
    assert [comparable(r) for r in by_perf] == [comparable(r) for r in by_gdb]


def test_run_auto_falls_back_to_gdb_where_perf_events_are_forbidden(build_c, tmp_path):
    err = run_mix(build_c("mix"), tmp_path / "auto", wrapper=["/usr/bin/python3", str(NO_PERF)])
    armed = next(line for line in err.splitlines() if line.startswith("qzn: watch 1: "))
    assert "; engine gdb (not permitted to watch process" in armed, armed
    assert len(read_jsonl(tmp_path / "auto.jsonl")) == 19


HOT_WRITES = 100_000


def start_hot_run(program, prefix: Path) -> tuple[subprocess.Popen, int]:
    """`run --engine perf` on perf_target's hot loop of HOT_WRITES stores, under way with
    records on disk; (the launcher, the target's pid)."""
    proc = launcher_run("--engine", "perf", "--log", str(prefix), "--quiet", "--no-html",
                        "--watch", "&byte", "--", str(program), str(HOT_WRITES),
                        "0", "0", "0", "0", stdin=subprocess.PIPE)  # fmt: skip
    armed = armed_line(proc.stderr)
    assert ROOT_PERF in armed, armed
    pid = int(re.search(r" in process (\d+);", armed).group(1))
    wait_until(lambda: tracer_pid(pid) == 0, "gdb to detach")
    proc.stdin.write("g")
    proc.stdin.flush()
    wait_for_lines(prefix, 1000)
    return proc, pid


def assert_finished_whole(out: str) -> None:
    """perf_target says "value V" at its normal end, never if killed (by a SIGTRAP, say)."""
    assert "done" in out.splitlines()
    assert re.findall(r"^value (\d+)$", out, re.MULTILINE) == [str((HOT_WRITES - 1) % 256)]


def test_sigterm_under_run_engine_perf_drains_the_rings_and_the_target_runs_on(
    perf_target_bin, tmp_path
):
    prefix = tmp_path / "term"
    proc, pid = start_hot_run(perf_target_bin, prefix)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)  # closes its stdin: perf_target ends, once done
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "qzn: watch 1 ended: SIGTERM received" in err and "Traceback" not in err
    logged = read_jsonl(prefix.with_suffix(".jsonl"))  # every line whole
    summary = re.search(r"^summary: ([\d,]+) accesses", out, re.MULTILINE).group(1)
    assert int(summary.replace(",", "")) == len(logged) < HOT_WRITES + 1
    assert [r["seq"] for r in logged] == list(range(1, len(logged) + 1))
    assert_finished_whole(out)


@pytest.mark.parametrize("victim", ["launcher", "launcher", "launcher", "gdb", "gdb"])
def test_sigkill_under_run_engine_perf_at_full_speed_leaves_the_target_finishing(
    perf_target_bin, tmp_path, victim
):
    prefix = tmp_path / "killed"
    proc, pid = start_hot_run(perf_target_bin, prefix)
    try:
        gdb = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # parent
        symbolizer = [child for child in child_pids(gdb) if child != pid]
        os.kill(proc.pid if victim == "launcher" else gdb, signal.SIGKILL)
        proc.stdin.close()  # perf_target exits at the end of its stdin, once done
        out = proc.stdout.read()  # to the end: the target, gdb (if alive) and the launcher
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert_finished_whole(out)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the target to end")
    for child in symbolizer:  # the symbolizer's gdb ends with its socket
        wait_until(lambda child=child: not Path(f"/proc/{child}").exists(), f"gdb {child}")


# ---------------------------------------------------------------- helpers


def armed_line(stream) -> str:
    """The armed line, after whatever gdb said before it (the source line of an attach)."""
    for line in stream:
        if line.startswith("qzn: watch 1: "):
            return line
        assert line.startswith(("26\t", "Temporary breakpoint")) or not line.strip(), line
    raise AssertionError("no armed line")


def test_the_default_inside_gdb_is_auto_which_takes_perf_for_a_native_process(build_c, tmp_path):
    prefix = tmp_path / "default"
    watch = f"qzn-watch --log {prefix} --quiet --no-html &area[11]"
    result = run_gdb(build_c("mix"), watch, "continue")
    armed = next(line for line in result.stderr.splitlines() if line.startswith("qzn: watch 1"))
    assert f"; {ROOT_PERF}" in armed, armed
    assert len(read_jsonl(prefix.with_suffix(".jsonl"))) == 19
    assert "mix done" in result.stdout


def test_stop_if_at_gdbs_prompt_takes_the_gdb_engine_under_auto(build_c):
    watch = """qzn-watch --color never --stop-if "func == 'increment'" &area[11]"""
    where = "python print('in', gdb.selected_frame().name())"
    result = run_gdb(build_c("mix"), watch, "continue", where)
    armed = next(line for line in result.stderr.splitlines() if line.startswith("qzn: watch 1"))
    assert "engine gdb (--stop-if inside gdb stops the program there" in armed, armed
    assert "in increment" in result.stdout
