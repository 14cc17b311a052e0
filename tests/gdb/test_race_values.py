"""The gdb engine's values under racing threads, and changes nobody saw (issue 12 points 4-5):
tests/c/race_values.c, run under a real gdb, checked record by record against what each thread
says it stored and loaded."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import gdb_base_command, quiet_env
from tests.records import check_race_records, read_jsonl

pytestmark = pytest.mark.gdb
ROUNDS = 200


def test_each_thread_logs_what_it_stored_and_loaded_and_unseen_changes_are_marked(
    build_c, tmp_path
):
    prefix = tmp_path / "race"
    watch = f"qzn-watch --log {prefix} --color never --quiet &the_byte"
    cmd = gdb_base_command() + ["-ex", "tbreak ready", "-ex", "run", "-ex", watch,
                                "--args", str(build_c("race_values")), str(ROUNDS)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=300)
    assert "done" in result.stdout.splitlines(), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    check_race_records(records, result.stdout, ROUNDS)

    unseen = {kind: [r["seq"] for r in records if r["kind"] == kind and r.get("changed_unseen")]
              for kind in ("read", "write")}  # fmt: skip
    main = [r["seq"] for r in records if r["tid"] == records[0]["tid"] and r.get("changed_unseen")]
    assert main == [2, 4]  # the loads after the kernel's two writes
    for kind in ("read", "write"):
        log = prefix.with_suffix(f".{kind}s.log").read_text()
        headers = re.findall(rf"^\[1:(\d+)\] {kind.upper()} .*  \(changed unseen\)$", log, re.M)
        assert [int(seq) for seq in headers] == unseen[kind]
    page = prefix.with_suffix(".html").read_text()
    rows = re.findall(r'<tr class="change unseen"><td class="num">(\d+)</td>', page)
    assert [int(seq) for seq in rows] == sorted(unseen["read"] + unseen["write"])
