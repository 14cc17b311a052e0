"""`qznusnih watch --engine perf` on tests/c/run_at.c: a target that dies of a signal gets the
gdb engine's words and exit status, and a stripped program's sites are module+offset
(tests/cli/test_launcher_run_at.py has the gdb engine's)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.perf.perf_helpers import armed_launcher
from tests.records import read_jsonl

pytestmark = pytest.mark.perf


def watch_with_perf(program: Path, args: list[str], prefix: Path):
    """Start `program ARGS --go`, watch its byte with the perf engine, let it go; the
    launcher's (returncode, stdout, stderr) and the program's returncode.  The program is
    reaped only after the watch: its status is read while it is a zombie."""
    target = subprocess.Popen(
        [str(program), *args, "--go"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        _, pid, _, byte = target.stdout.readline().split()  # "pid PID byte 0x55..."
        with armed_launcher(byte, pid, prefix) as (watch, _):
            target.stdin.write("g")
            target.stdin.close()
            out, err = watch.communicate(timeout=30)
        return watch.returncode, out, err, target.wait(timeout=30)
    finally:
        if target.poll() is None:
            target.kill()


def test_a_target_killed_by_sigsegv_ends_the_watch_with_128_plus_11(build_c, tmp_path):
    prefix = tmp_path / "p"
    code, _, err, target_code = watch_with_perf(build_c("run_at"), ["crash", "4"], prefix)
    assert target_code == -signal.SIGSEGV
    assert code == 128 + signal.SIGSEGV, err
    assert err.splitlines()[-1] == "qzn: watch 1 ended: target was killed by SIGSEGV"
    assert [r["kind"] for r in read_jsonl(f"{prefix}.jsonl")] == ["write"] * 4 + ["read"]


def test_a_stripped_programs_sites_are_module_offsets(build_c, c_build_dir, tmp_path):
    stripped = c_build_dir / "run_at-stripped-for-perf"
    subprocess.run(
        ["strip", "-o", str(stripped), str(build_c("run_at", extra=("-no-pie",)))], check=True
    )
    prefix = tmp_path / "s"
    code, out, err, target_code = watch_with_perf(stripped, ["global", "4"], prefix)
    assert (code, target_code) == (0, 0), err
    records = read_jsonl(f"{prefix}.jsonl")
    assert [r["kind"] for r in records] == ["write"] * 4 + ["read"]
    write_pc, read_pc = (int(r["pc"], 16) for r in (records[0], records[-1]))
    # A -no-pie program is loaded at 0x400000.
    assert f"  4  {stripped.name}+{write_pc - 0x400000:#x}\n" in out
    assert f"  1  {stripped.name}+{read_pc - 0x400000:#x}\n" in out
