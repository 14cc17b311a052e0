"""`qznusnih report --format folded|chrome` on logs recorded by a real gdb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from tests.conftest import REPO, quiet_env


def report(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gdb_qznusnih.launcher.cli", "report", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=quiet_env())


def expected_stack(doc: dict) -> str:
    names = [frame["func"] or frame["pc"] for frame in reversed(doc["frames"])]
    return ";".join([doc["kind"], *names])


def folded(text: str) -> Counter:
    counts = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        assert stack not in counts, f"stack listed twice: {stack}"
        counts[stack] = int(count)
    return counts


def test_folded_stacks_add_up_to_the_log_and_match_its_records(mix_log, callers_log):
    for log in (mix_log, callers_log):
        done = report(str(log), "--format", "folded")
        assert done.returncode == 0, done.stderr
        assert folded(done.stdout) == Counter(expected_stack(doc) for doc in log.docs)
        assert sum(folded(done.stdout).values()) == len(log.docs)
        counts = [int(line.rpartition(" ")[2]) for line in done.stdout.splitlines()]
        assert counts == sorted(counts, reverse=True)  # the biggest first


def test_folded_stacks_of_callers_name_both_paths_outermost_first(callers_log):
    done = report(str(callers_log), "--format", "folded")
    assert folded(done.stdout) == {"write;main;via_a;touch": 10, "write;main;via_b;touch": 10}


def test_folded_honours_the_filters(mix_log):
    done = report(str(mix_log), "--format", "folded", "--kind", "read")
    reads = [doc for doc in mix_log.docs if doc["kind"] == "read"]
    assert folded(done.stdout) == Counter(expected_stack(doc) for doc in reads)


def test_the_chrome_trace_is_trace_event_json_with_one_event_per_access(mix_log, tmp_path):
    out = tmp_path / "mix.trace.json"
    done = report(str(mix_log), "--format", "chrome", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert os.stat(out).st_mode & 0o777 == 0o600
    trace = json.loads(out.read_text())
    events = trace["traceEvents"]
    accesses = [e for e in events if e["ph"] == "i"]
    assert [e["args"]["seq"] for e in accesses] == [doc["seq"] for doc in mix_log.docs]
    for event, doc in zip(accesses, mix_log.docs):
        assert (event["name"], event["pid"], event["tid"], event["s"]) == (
            doc["kind"],
            doc["pid"],
            doc["tid"],
            "t",
        )
        assert (event["args"]["value"], event["args"]["old"]) == (doc["value"], doc["old"])
        innermost = next(f for f in doc["frames"] if f["file"])
        where = f"{innermost['func']} at {innermost['file']}:{innermost['line']}"
        assert event["args"]["site"] == where
    stamps = [e["ts"] for e in accesses]
    assert stamps == sorted(stamps)
    names = [e for e in events if e["ph"] == "M"]
    assert sorted(e["tid"] for e in names) == sorted({doc["tid"] for doc in mix_log.docs})
    assert all(e["name"] == "thread_name" for e in names)


def test_an_unknown_format_lists_the_formats(mix_log):
    done = report(str(mix_log), "--format", "svg")
    assert done.returncode == 2
    assert "text, json, html, folded, chrome" in done.stderr.replace("'", "")


def test_report_if_keeps_exactly_the_records_where_cond_holds(mix_log):
    cond = "kind == 'write' and value != 0 or func ~ '^load'"
    done = report(str(mix_log), "--format", "folded", "--if", cond)
    assert done.returncode == 0, done.stderr
    kept = [
        doc
        for doc in mix_log.docs
        if (doc["kind"] == "write" and doc["value"] != 0)
        or (doc["frames"][0]["func"] or "").startswith("load")
    ]
    assert 0 < len(kept) < len(mix_log.docs)
    assert folded(done.stdout) == Counter(expected_stack(doc) for doc in kept)
    text = report(str(mix_log), "--if", cond)
    assert f"{len(kept)} of {len(mix_log.docs)} records" in text.stdout
    assert f"--if {cond!r}" in text.stdout


def test_a_bad_cond_is_one_line_with_its_column(mix_log):
    done = report(str(mix_log), "--if", "value == 'x'")
    assert done.returncode == 2
    assert done.stderr == (
        "qznusnih report: --if: column 7: '==' compares a number with a string "
        "(in \"value == 'x'\")\n"
    )


def test_tz_local_shows_the_times_of_day_in_the_local_zone(mix_log):
    env = quiet_env(TZ="QZN-5:30")  # a POSIX zone: 5 h 30 east of UTC, no tzdata needed
    cmd = [sys.executable, "-m", "gdb_qznusnih.launcher.cli", "report", str(mix_log)]
    utc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    local = subprocess.run(
        cmd + ["--tz", "local"], capture_output=True, text=True, cwd=REPO, env=env
    )
    first = mix_log.docs[0]["time"]  # 2026-12-02T00:08:12.077819Z
    hours, minutes = int(first[11:13]), int(first[14:16])
    shifted = (hours * 60 + minutes + 330) % 1440
    assert f"{first[11:19]}" in utc.stdout and " UTC" in utc.stdout
    assert f"{shifted // 60:02d}:{shifted % 60:02d}:{first[17:19]}" in local.stdout
    assert " QZN" in local.stdout and " UTC" not in local.stdout
