"""The fast register and memory reads (ptrace, /proc/PID/mem) agree with gdb's own."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO, gdb_base_command, quiet_env

pytestmark = pytest.mark.gdb

CHECK = REPO / "tests" / "gdb" / "native_check.py"


@pytest.mark.parametrize("m32", [False, True], ids=["x86-64", "i386"])
def test_ptrace_reads_agree_with_gdb_on_every_hit_of_every_thread(build_c, m32):
    program = build_c("threads", m32=m32)
    cmd = gdb_base_command() + ["-x", str(CHECK), "--args", str(program), "4", "25"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120)
    assert "STATE PtraceState" in result.stdout, result.stdout + result.stderr
    assert "threads: 4 threads, 100 writes, 100 reads" in result.stdout
    hits, mismatches = next(
        line.split()[1:] for line in result.stdout.splitlines() if line.startswith("RESULT")
    )
    assert (int(hits), int(mismatches)) == (200, 0), result.stdout
