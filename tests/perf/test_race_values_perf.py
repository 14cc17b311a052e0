"""The perf engine's values under racing threads, and changes nobody saw (issue 12 points 4-5):
tests/c/race_values.c watched by `qznusnih watch --engine perf`, each record checked against
what its thread says it stored and loaded."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, quiet_env
from tests.records import check_race_records, read_jsonl

pytestmark = pytest.mark.perf
ROUNDS = 200


def test_each_thread_logs_what_it_stored_and_loaded_and_unseen_changes_are_marked(
    build_c, tmp_path
):
    program = subprocess.Popen(
        [str(build_c("race_values")), "wait", str(ROUNDS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    prefix = tmp_path / "race"
    watch = None
    try:
        address = program.stdout.readline().split()[3]  # "pid P addr A"
        watch = subprocess.Popen(
            [sys.executable, "-m", "gdb_qznusnih", "watch", address, str(program.pid),
             "--engine", "perf", "--log", str(prefix), "--color", "never"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env(),
        )  # fmt: skip
        armed = watch.stderr.readline()
        assert armed.startswith("qzn: watch 1: "), armed + watch.stderr.read()
        out, _ = program.communicate("g", timeout=60)
        stream, err = watch.communicate(timeout=60)
    finally:
        for proc in (program, watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert watch.returncode == 0 and program.returncode == 0, err
    assert "engine perf" in armed
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    # As root the perf engine watches kernel mode: the kernel's writes are records.
    check_race_records(records, out, ROUNDS, kernel=True)
    unseen = [r["seq"] for r in records if r.get("changed_unseen")]
    main = [r["seq"] for r in records if r["tid"] == program.pid and r.get("changed_unseen")]
    assert main == []  # the kernel's writes are in the log: no change is unseen
    headers = re.findall(r"^\[1:(\d+)\] .*  \(changed unseen\)$", stream, re.MULTILINE)
    assert [int(seq) for seq in headers] == unseen  # on the terminal stream too
    page = prefix.with_suffix(".html").read_text()
    rows = re.findall(r'<tr class="change unseen"><td class="num">(\d+)</td>', page)
    assert [int(seq) for seq in rows] == unseen
