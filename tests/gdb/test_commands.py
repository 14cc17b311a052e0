"""qzn-watch, qzn-status and qzn-unwatch in a real gdb: interactive-style use and bad input."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import WITH_GDB_ENGINE, quiet_env, run_gdb_stopped_at
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def run_gdb(program, *commands: str, batch: bool = True, timeout: int = 120):
    """gdb on `program`, stopped at ready(), then `commands`."""
    return run_gdb_stopped_at(program, *commands, batch=batch, timeout=timeout)


def test_interactive_style_arms_and_returns(build_c, tmp_path):
    """Without -batch, qzn-watch arms and returns; `continue` then logs the hits."""
    prefix = tmp_path / "i"
    result = run_gdb(
        build_c("mix"),
        f"qzn-watch --log {prefix} &area[11]",
        "qzn-status",
        "continue",
        batch=False,
    )
    assert "Traceback" not in result.stderr
    status = [line for line in result.stdout.splitlines() if line.startswith("watch 1:")]
    assert status and "0 reads, 0 writes" in status[0], result.stdout
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert len(records) == 19
    assert "mix done" in result.stdout
    assert "target exited with code 0" in result.stderr


def test_unwatch_removes_the_watch(build_c, tmp_path):
    prefix = tmp_path / "u"
    result = run_gdb(
        build_c("mix"),
        f"qzn-watch --log {prefix} &area[11]",
        "qzn-unwatch 1",
        "qzn-status",
        "continue",
        batch=False,
    )
    assert "No watches armed." in result.stdout
    assert prefix.with_suffix(".jsonl").read_text() == ""
    assert "mix done" in result.stdout


def test_stop_option_stops_at_the_first_hit(build_c, tmp_path):
    result = run_gdb(
        build_c("mix"),
        "qzn-watch --stop &area[11]",
        "continue",
        "qzn-status",
        "info frame",
        batch=False,
    )
    assert "watch 1:" in result.stdout and "0 reads, 1 write" in result.stdout
    assert "store_new" in result.stdout


@pytest.mark.parametrize(
    "command, message",
    [
        ("qzn-watch", "needs an address"),
        ("qzn-watch --len 3 &area[11]", "not one of 1, 2, 4 or 8"),
        ("qzn-watch --len 4 &area[11]", "not aligned to --len 4"),
        ("qzn-watch --count 0 &area[11]", "must be greater than zero"),
        ("qzn-watch --duration -1 &area[11]", "positive number of seconds"),
        ("qzn-watch --bogus &area[11]", "unrecognized arguments: --bogus"),
        ("qzn-watch 0x10", "is not mapped"),
        ("qzn-watch 0xffffffff81000000", "is a kernel address"),
        ("qzn-watch area[11]", "did you mean '&area[11]'"),
        ("qzn-watch no_such_symbol", "cannot evaluate"),
        ("qzn-watch --log /nonexistent/dir/x &area[11]", "choose a writable --log prefix"),
        ("qzn-watch --style no-such-style &area[11]", "unknown style"),
    ],
)
def test_bad_input_is_one_line_and_the_target_runs_on(build_c, command, message):
    result = run_gdb(build_c("mix"), command, "continue")
    errors = [line for line in result.stderr.splitlines() if message in line]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "mix done" in result.stdout, "the target must be left running"


def test_no_debug_register_left_is_refused_when_arming(build_c):
    result = run_gdb(
        build_c("mix"),
        "qzn-watch --quiet &area[0]",
        "qzn-watch --quiet &area[1]",
        "awatch area[2]",
        "qzn-watch --quiet &area[3]",
        "qzn-watch --quiet &area[4]",
        "qzn-status",
        batch=False,
    )
    assert "no debug register left: 4 of 4 in use" in result.stderr
    assert "Traceback" not in result.stderr
    status = re.findall(r"^watch (\d+): 0x[0-9a-f]+ \((.+?)\)", result.stdout, re.MULTILINE)
    assert status == [("1", "&area[0]"), ("2", "&area[1]"), ("3", "&area[3]")], result.stdout


def test_no_process_is_a_clear_error(build_c):
    cmd = [
        "gdb",
        "-nx",
        "-batch",
        *WITH_GDB_ENGINE,
        "-ex",
        "qzn-watch &area[11]",
        str(build_c("mix")),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=60)
    assert result.returncode != 0
    assert "no process to watch" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_are_defaults_for_qzn_watch(build_c, tmp_path):
    prefix = tmp_path / "s"
    result = run_gdb(
        build_c("mix"),
        "set qzn bt-depth 2",
        f"set qzn log {prefix}",
        "show qzn bt-depth",
        "qzn-watch --count 3 &area[11]",
    )
    assert "The default number of frames per backtrace is 2." in result.stdout
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert len(records) == 3 and all(len(r["frames"]) == 2 for r in records)


@pytest.mark.parametrize("option, written", [((), True), (("--no-html",), False)])
def test_html_report_at_the_end_of_a_logged_run(build_c, tmp_path, option, written):
    prefix = tmp_path / "h"
    result = run_gdb(
        build_c("mix"), " ".join(["qzn-watch", *option, f"--log {prefix}", "&area[11]"])
    )
    assert "mix done" in result.stdout
    html = prefix.with_suffix(".html")
    assert html.exists() == written
    if written:
        assert "<html" in html.read_text().lower()
        assert result.stderr.count(f"report: {html}") == 1
