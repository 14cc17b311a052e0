"""`qznusnih watch --engine perf` of a target that dies of a signal: the gdb engine's words and
exit status (tests/cli/test_launcher_run_at.py has the gdb engine's)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.perf


def test_a_target_killed_by_sigsegv_ends_the_watch_with_128_plus_11(build_c, tmp_path):
    target = subprocess.Popen(
        [str(build_c("run_at")), "crash", "4", "--go"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    prefix = tmp_path / "p"
    try:
        _, pid, _, byte = target.stdout.readline().split()  # "pid PID byte 0x55..."
        watch = subprocess.Popen(
            [sys.executable, "-m", "gdb_qznusnih", "watch", byte, pid, "--engine", "perf",
             "--quiet", "--no-html", "--log", str(prefix)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env(),
        )  # fmt: skip
        armed = watch.stderr.readline()
        assert armed.startswith("qzn: watch 1: "), armed + watch.stderr.read()
        target.stdin.write("g")
        target.stdin.close()
        # Its status is read while it is a zombie: reap it only after the watch has ended.
        out, err = watch.communicate(timeout=30)
        assert target.wait(timeout=30) == -signal.SIGSEGV
    finally:
        for proc in (target, locals().get("watch")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert watch.returncode == 128 + signal.SIGSEGV, err
    assert err.splitlines()[-1] == "qzn: watch 1 ended: target was killed by SIGSEGV"
    assert [r["kind"] for r in read_jsonl(f"{prefix}.jsonl")] == ["write"] * 4 + ["read"]
