"""The target changes under the watch: threads appear, it forks, it calls exec."""

from __future__ import annotations

import collections
import subprocess

import pytest

from tests.conftest import gdb_base_command, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def run_watch(program, args, prefix, *options, stop_at="main"):
    cmd = gdb_base_command() + [
        "-ex",
        f"tbreak {stop_at}",
        "-ex",
        "run",
        "-ex",
        " ".join(["qzn-watch", "--quiet", "--log", str(prefix), *options, "&the_data"]),
        "--args",
        str(program),
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=300)
    assert "Traceback" not in result.stderr
    return result


def test_threads_created_after_arming_are_all_watched(build_c, tmp_path):
    prefix = tmp_path / "t"
    result = run_watch(build_c("threads"), ["8", "100"], prefix, stop_at="ready")
    assert "threads: 8 threads, 800 writes, 800 reads" in result.stdout
    logged = read_jsonl(prefix.with_suffix(".jsonl"))
    by_tid = collections.Counter((r["tid"], r["kind"]) for r in logged)
    tids = {tid for tid, _ in by_tid}
    assert len(tids) == 8
    assert all(by_tid[(tid, "write")] == 100 and by_tid[(tid, "read")] == 100 for tid in tids)
    assert len(logged) == 1600


def test_exec_ends_the_watch_and_names_the_new_program(build_c, tmp_path):
    prefix = tmp_path / "e"
    result = run_watch(build_c("forkexec"), ["/bin/true"], prefix)
    assert "target called exec(/usr/bin/true)" in result.stderr
    assert result.stderr.count("children are not watched") == 1
    logged = read_jsonl(prefix.with_suffix(".jsonl"))
    assert [(r["kind"], r["value"]) for r in logged] == [("write", 1), ("write", 3), ("read", 3)]
    assert "forkexec: parent done, value 3" in result.stdout


def test_follow_exec_arms_again_in_the_new_program(build_c, tmp_path):
    prefix = tmp_path / "f"
    program = build_c("forkexec")
    result = run_watch(program, [str(program)], prefix, "--follow-exec", "&the_data")
    assert f"watch 1 ended: target called exec({program}); exec clears watches" in result.stderr
    assert result.stderr.count("children are not watched") == 2  # once per watch
    assert result.stdout.count("forkexec: parent done, value 3") == 2  # before and after exec
    first = read_jsonl(prefix.with_suffix(".jsonl"))
    second = read_jsonl(tmp_path / "f.exec1.jsonl")
    assert [r["kind"] for r in first] == ["write", "write", "read"]
    assert [r["kind"] for r in second] == ["write", "write", "read"]
    assert "watch 2 ended: target exited with code 0" in result.stderr
