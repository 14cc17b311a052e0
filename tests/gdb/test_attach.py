"""`gdb -p PID -batch -ex 'qzn-watch ADDR'` on a running tester: complete logs, clean exits."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from gdb_qznusnih.counted import counted
from tests.conftest import quiet_env
from tests.gdb.conftest import attach_command, run_attached
from tests.records import block_seqs, read_jsonl

pytestmark = pytest.mark.gdb


def test_batch_attach_logs_every_access_and_detaches(tester, tmp_path):
    t = tester("--rounds", "300")
    prefix = tmp_path / "attach"
    gdb = run_attached(t, "--log", str(prefix), "--quiet")
    out = t.finish()
    assert gdb.returncode == 0, gdb.stderr
    assert "Traceback" not in gdb.stderr
    assert "tester: 300 writes, 300 reads" in out
    assert t.proc.returncode == 0
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert [r["kind"] for r in records] == ["write", "read"] * 300
    assert all(r["pid"] == t.pid for r in records)
    assert [r["frames"][0]["func"] for r in records[:2]] == ["write_byte", "read_byte"]
    assert all([f["func"] for f in r["frames"][1:3]] == ["do_round", "main"] for r in records)
    assert "summary: 600 accesses: 300 reads, 300 writes" in gdb.stdout
    assert "target exited with code 0" in gdb.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_mid_run_detaches_and_the_target_finishes(tester, tmp_path, signum):
    t = tester("--rounds", "1000", "--interval-ms", "1")
    prefix = tmp_path / "sig"
    gdb = subprocess.Popen(
        attach_command(t.pid, "--log", str(prefix), "--quiet", t.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=quiet_env(),
    )
    jsonl = prefix.with_suffix(".jsonl")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not jsonl.exists() or jsonl.stat().st_size < 2000):
        time.sleep(0.05)
    gdb.send_signal(signum)
    stdout, stderr = gdb.communicate(timeout=60)
    out = t.finish()
    assert gdb.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"watch 1 ended: {signum.name} received" in stderr
    assert "summary:" in stdout
    assert "tester: 1000 writes, 1000 reads" in out, f"target exit {t.proc.returncode}: {stderr}"
    assert t.proc.returncode == 0
    records = read_jsonl(jsonl)  # every line whole
    assert 0 < len(records) < 2000  # the signal, not the target's end, ended the watch
    assert f"summary: {counted(len(records), 'access')}" in stdout
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_count_stops_and_detaches_leaving_the_target_running(tester, tmp_path):
    t = tester("--rounds", "500")
    gdb = run_attached(t, "--count", "10", "--color", "never")
    out = t.finish()
    assert gdb.returncode == 0
    assert block_seqs(gdb.stdout) == list(range(1, 11))
    assert "summary: 10 accesses: 5 reads, 5 writes" in gdb.stdout
    assert "--count 10 reached" in gdb.stderr
    assert "tester: 500 writes, 500 reads" in out


def test_duration_stops_an_idle_watch(tester, tmp_path):
    t = tester("--rounds", "1", "--interval-ms", "3000")  # one round, then 3 s of quiet
    start = time.monotonic()
    gdb = run_attached(t, "--duration", "1", "--quiet")
    assert gdb.returncode == 0, gdb.stderr
    assert "--duration 1s reached" in gdb.stderr
    assert time.monotonic() - start < 3
    assert "summary: 2 accesses: 1 read, 1 write" in gdb.stdout
    assert "tester: 1 writes, 1 reads" in t.finish()
