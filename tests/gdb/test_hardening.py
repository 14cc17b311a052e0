"""Nothing is lost and the target survives: exact accounting, a minute's soak, private logs.

A full log disk is tests/gdb/test_log_files.py's."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import WITH_GDB_ENGINE, quiet_env
from tests.gdb.conftest import run_attached
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def watch_tester(tester, tmp_path, *tester_args, extra=()):
    t = tester(*tester_args)
    prefix = tmp_path / "w"
    gdb = run_attached(t, "--log", str(prefix), "--quiet", *extra)
    return t, t.finish(timeout=300), gdb, prefix


@pytest.mark.parametrize("rounds", [1, 8, 64])
def test_log_matches_the_testers_own_count(tester, tmp_path, rounds):
    t, out, gdb, prefix = watch_tester(tester, tmp_path, "--rounds", str(rounds))
    assert f"tester: {rounds} writes, {rounds} reads" in out
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert sum(r["kind"] == "write" for r in records) == rounds
    assert sum(r["kind"] == "read" for r in records) == rounds
    assert f"summary: {2 * rounds:,} accesses" in gdb.stdout


@pytest.mark.soak
def test_soak_60_seconds_loses_nothing(tester, tmp_path):
    """A minute of steady hits: the log still matches the tester's count exactly."""
    start = time.monotonic()
    t, out, gdb, prefix = watch_tester(tester, tmp_path, "--rounds", "60000", "--interval-ms", "1")
    assert time.monotonic() - start >= 60
    writes = int(out.split("tester: ")[1].split()[0])
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert writes == 60000
    assert sum(r["kind"] == "write" for r in records) == writes
    assert sum(r["kind"] == "read" for r in records) == writes
    print(f"soak: {len(records)} records in {time.monotonic() - start:.1f} s")


def test_logs_are_private_when_the_target_is_another_users(build_c, tmp_path):
    """Root watching somebody else's process must not leak its memory into 0644 files."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    shared = Path(tempfile.mkdtemp(prefix="qzn-other-"))
    shared.chmod(0o755)
    program = shared / "user_space_tester"
    shutil.copy(build_c("user_space_tester"), program)
    program.chmod(0o755)
    proc = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(program)],
        stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        words = proc.stdout.readline().split()
        pid, address = int(words[1]), words[3]
        prefix = tmp_path / "private"
        gdb = subprocess.run(
            ["gdb", "-nx", "-batch", "-p", str(pid), *WITH_GDB_ENGINE,
             "-ex", f"qzn-watch --quiet --log {prefix} {address}"],
            capture_output=True, text=True, env=quiet_env(), timeout=120,
        )  # fmt: skip
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(shared, ignore_errors=True)
    assert gdb.returncode == 0, gdb.stderr
    assert "tester: 1 writes, 1 reads" in out
    for suffix in (".jsonl", ".reads.log", ".writes.log", ".html"):
        mode = stat.S_IMODE(os.stat(f"{prefix}{suffix}").st_mode)
        assert mode == 0o600, f"{suffix}: {oct(mode)}"
