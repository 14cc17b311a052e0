"""qzn-watch --at-every inside gdb, and a batch `gdb -p PID` whose target dies of a signal, on
tests/c/run_at.c."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.conftest import gdb_base_command, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def gdb_at_main(program, *commands: str, batch=True, args=("heap",), stop_at="main"):
    cmd = gdb_base_command() + ["-ex", f"tbreak {stop_at}", "-ex", "run"]
    if not batch:
        cmd.remove("-batch")  # commands from -ex, then `quit`: an interactive gdb's rules
    for command in commands:
        cmd += ["-ex", command]
    if not batch:
        cmd += ["-ex", "kill", "-ex", "quit"]
    cmd += ["--args", str(program), *args]
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=quiet_env(), timeout=120, stdin=subprocess.DEVNULL
    )
    assert "Traceback" not in result.stderr
    return result


def test_at_every_cannot_call_a_function_of_the_target(build_c):
    # gdb would evaluate *EXPR to find the place, calling printf in the target each time.
    result = gdb_at_main(
        build_c("run_at"), "qzn-watch --quiet --at-every '*printf(\"PWNED\")' &the_byte"
    )
    assert "is not a location this takes" in result.stderr
    assert "PWNED" not in result.stdout
    assert "qzn: watch 1:" not in result.stderr  # nothing armed


def test_at_every_needs_batch_mode(build_c):
    result = gdb_at_main(build_c("run_at"), "qzn-watch --at-every fill_buf &the_byte", batch=False)
    assert "--at-every needs gdb -batch" in result.stderr
    assert "qzn: watch 1:" not in result.stderr


def test_batch_attach_to_a_target_that_dies_of_sigsegv(build_c, tmp_path):
    target = subprocess.Popen(
        [str(build_c("run_at")), "crash", "2", "--wait"], stdout=subprocess.PIPE, text=True
    )
    prefix = tmp_path / "b"
    try:
        pid = target.stdout.readline().split()[1]  # "pid PID byte 0x55..."
        cmd = gdb_base_command() + [
            "-ex", f"qzn-watch --quiet --no-html --log {prefix} &the_byte", "-p", pid,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=60)
        assert target.wait(timeout=10) == -signal.SIGSEGV
    finally:
        if target.poll() is None:
            target.kill()
        target.communicate()
    assert result.returncode == 128 + signal.SIGSEGV, result.stderr
    assert "qzn: watch 1 ended: target was killed by SIGSEGV" in result.stderr
    assert "target exited" not in result.stderr
    assert [r["kind"] for r in read_jsonl(f"{prefix}.jsonl")] == ["write", "write", "read"]


def test_inside_gdb_a_target_killed_by_a_signal_is_named(build_c):
    # continue: to the SIGSEGV stop; continue: gdb delivers it and the program dies.
    result = gdb_at_main(
        build_c("run_at"), "qzn-watch --quiet &the_byte", "continue", "continue",
        batch=False, args=("crash", "2"),
    )  # fmt: skip
    assert "summary: 3 accesses: 1 read, 2 writes" in result.stdout
    assert "qzn: watch 1 ended: target was killed by SIGSEGV" in result.stderr


def test_inside_gdb_a_local_watch_ends_when_its_frame_returns(build_c):
    result = gdb_at_main(
        build_c("run_at"), "qzn-watch --quiet &slot[2]", "continue", "qzn-status", "continue",
        batch=False, args=("stack",), stop_at="use_slot",
    )  # fmt: skip
    assert "summary: 4 accesses: 1 read, 3 writes" in result.stdout
    assert "qzn: watch 1 ended: use_slot() returned: its stack slot is gone" in result.stderr
    assert "No watches armed." in result.stdout  # ended at the return, before clobber()
    assert "run_at stack: 242" in result.stdout
