"""Reports of logs recorded from real runs: counts, call sites, timeline, colour, qzn-report."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest

from gdb_qznusnih.report import cli as report
from tests.conftest import REPO, WITH_GDB_ENGINE, gdb_base_command, quiet_env

pytestmark = pytest.mark.gdb

ANSI = re.compile(r"\x1b\[")
ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")


def report_cli(*argv, **env):
    """`python -m gdb_qznusnih.report ARGV` as the launcher runs it, with NO_COLOR unless env."""
    return subprocess.run(
        [sys.executable, "-m", "gdb_qznusnih.report", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=quiet_env(**env),
        timeout=60,
    )


def report_json(*argv):
    result = report_cli(*argv, "--format", "json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def changes_in(docs):
    """Seqs of the writes whose old value differs from the new one, straight from the JSONL."""
    return [d["seq"] for d in docs if d["kind"] == "write" and d["old"] != d["value"]]


def test_counts_match_the_jsonl(mix_log):
    doc = report_json(mix_log)
    docs = mix_log.docs
    summary = doc["summary"]
    assert (doc["records"], doc["matched"]) == (19, 19)
    assert summary["reads"] == sum(d["kind"] == "read" for d in docs) == 10
    assert summary["writes"] == sum(d["kind"] == "write" for d in docs) == 9
    by_thread = {}
    for d in docs:
        by_thread.setdefault(d["tid"], [0, 0])[d["kind"] == "write"] += 1
    assert {t["tid"]: [t["reads"], t["writes"]] for t in summary["threads"]} == by_thread
    writes = [d["seq"] for d in docs if d["kind"] == "write"]
    assert (doc["first_writer"]["seq"], doc["last_writer"]["seq"]) == (writes[0], writes[-1])


def test_call_sites_are_grouped_by_the_innermost_frame_with_source(mix_log, callers_log):
    doc = report_json(callers_log, "--top", "0")
    (site,) = doc["sites"]["write"]
    assert (site["func"], site["file"].endswith("callers.c"), site["count"]) == ("touch", True, 20)
    assert site["line"] == callers_log.docs[0]["frames"][0]["line"]
    assert [f["func"] for f in site["sample"]["frames"]] == ["touch", "via_a", "main"]
    assert doc["sites"]["read"] == []

    sites = report_json(mix_log, "--top", "0")["sites"]
    reads = {s["func"]: s["count"] for s in sites["read"]}
    writes = {s["func"]: s["count"] for s in sites["write"]}
    assert reads["load"] == 2, "main thread and second thread, one site"
    assert writes["store_new"] == 2 and writes["add_zero"] == 1
    for kind, counts in (("read", reads), ("write", writes)):
        expected = {}
        for d in mix_log.docs:
            if d["kind"] == kind:
                expected[d["frames"][0]["func"]] = expected.get(d["frames"][0]["func"], 0) + 1
        assert counts == expected


def test_the_timeline_lists_only_value_changes(mix_log, callers_log):
    for log, count in ((mix_log, 7), (callers_log, 19)):
        doc = report_json(log)
        seqs = [c["seq"] for c in doc["changes"]]
        assert seqs == changes_in(log.docs) and len(seqs) == count
        by_seq = {d["seq"]: d for d in log.docs}
        assert all(by_seq[c["seq"]]["value"] == c["value"] for c in doc["changes"])
    assert 1 not in seqs, "callers.c stores 0 over 0 first: no change"


def test_filters_on_a_real_log(mix_log):
    second_tid = mix_log.docs[-1]["tid"]
    doc = report_json(mix_log, "--tid", second_tid)
    assert (doc["summary"]["reads"], doc["summary"]["writes"]) == (1, 1)
    assert report_json(mix_log, "--func", "^second_thread$")["matched"] == 2
    assert report_json(mix_log, "--kind", "read", "--func", "exchange")["matched"] == 1
    first = mix_log.docs[0]["time"]
    assert report_json(mix_log, "--since", first, "--until", "+0")["matched"] == 1
    assert report_json(mix_log, "--since", first[11:-1])["matched"] == 19


def report_on_terminal(*argv, no_color: bool):
    """The report's stdout when stdout is a terminal (a pty), with or without NO_COLOR."""
    env = quiet_env()
    if not no_color:
        del env["NO_COLOR"]
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gdb_qznusnih.report", *map(str, argv)],
            stdout=follower, stderr=subprocess.PIPE, cwd=REPO, env=env,
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the report closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    "argv, no_color, coloured",
    [
        ([], False, True),
        ([], True, False),
        (["--color", "never"], False, False),
        (["--color", "always"], True, True),
    ],
    ids=["terminal", "NO_COLOR", "never", "always"],
)
def test_colour_on_a_terminal_follows_no_color_and_color(mix_log, argv, no_color, coloured):
    out = report_on_terminal(mix_log, *argv, no_color=no_color)
    assert "READ call sites (10 reads)" in ANSI_SGR.sub("", out)
    assert bool(ANSI.search(out)) is coloured


def test_no_escape_codes_in_a_pipe_or_a_file(mix_log, tmp_path):
    piped = report_cli(mix_log)
    assert piped.returncode == 0 and not ANSI.search(piped.stdout + piped.stderr)
    out = tmp_path / "report.txt"
    assert report_cli(mix_log, "--output", out).returncode == 0
    assert "value changes: 7 of 9 writes" in out.read_text() and not ANSI.search(out.read_text())


def test_qzn_report_inside_gdb(mix_log):
    cmd = gdb_base_command() + [
        "-ex",
        f"qzn-report {mix_log} --color never --top 3",
        "-ex",
        f"qzn-report {mix_log}.missing",
        "-ex",
        "qzn-report --kind maybe x",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=60)
    expected = report_cli(mix_log, "--color", "never", "--top", "3").stdout
    assert result.stdout == expected
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"cannot read {mix_log}.missing: No such file or directory",
        "argument --kind: invalid choice: 'maybe' (choose from 'read', 'write') "
        "(see 'qzn-report --help')",
    ]


def test_the_end_of_run_html_report(mix_log, tmp_path):
    html_path = tmp_path / "mix.html"
    built = report.write_html_report(str(mix_log), str(html_path))
    page = html_path.read_text()
    assert built.summary.total == 19
    assert 'id="total-reads">10<' in page and 'id="total-writes">9<' in page
    assert page.count('<tr class="change">') == len(changes_in(mix_log.docs))


def test_qzn_report_typed_at_a_terminal_does_not_colour_into_a_pipe(mix_log):
    """gdb reads commands from a terminal (from_tty) but its stdout is a pipe: no colour."""
    master, slave = pty.openpty()
    cmd = ["gdb", "-nx", "-q", "-ex", "set style enabled on", *WITH_GDB_ENGINE]
    with subprocess.Popen(
        cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=quiet_env()
    ) as gdb:
        os.close(slave)
        os.write(master, f"qzn-report {mix_log} --top 1\nquit\n".encode())
        out, err = gdb.communicate(timeout=60)
    os.close(master)
    text = out.decode()
    assert "READ call sites (10 reads)" in text, err.decode()
    assert not ANSI_SGR.search(text)  # readline's own bracketed-paste codes are no colour
