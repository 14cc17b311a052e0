"""How the commands present themselves in a real gdb: help, settings, completion."""

from __future__ import annotations

import subprocess

import pytest

from gdb_qznusnih.options import build_watch_parser
from tests.conftest import LOADER, REPO, quiet_env, run_gdb_stopped_at

pytestmark = pytest.mark.gdb


def gdb_lines(*commands: str) -> subprocess.CompletedProcess:
    """A gdb with no program, the extension loaded, then `commands` (each its own -ex)."""
    cmd = ["gdb", "-nx", "-batch", "-ex", "set width 0", "-x", str(LOADER)]
    for command in commands:
        cmd += ["-ex", command]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=quiet_env(), timeout=60, stdin=subprocess.DEVNULL
    )


def gdb_at_ready(program, *commands: str) -> subprocess.CompletedProcess:
    """An interactive-style gdb (not -batch, where qzn-watch would run the program to its end)
    on `program`, stopped at ready(), then `commands`; stdin is empty, so gdb then exits."""
    return run_gdb_stopped_at(program, *commands, timeout=60)


def test_help_qzn_watch_is_generated_from_the_parser_and_reads_cleanly():
    result = gdb_lines("help qzn-watch")
    lines = result.stdout.splitlines()
    assert lines[0] == "Log every read and write of memory at ADDR, with backtraces."
    assert lines[1] == ""
    assert lines[2] == "Usage: qzn-watch [OPTIONS] ADDR"
    flags = [flag for action in build_watch_parser()._actions for flag in action.option_strings]
    for flag in flags:
        starts = [
            line for line in lines if line.lstrip().startswith(flag + " ") or line.strip() == flag
        ]
        assert len(starts) == 1, (flag, result.stdout)
        # Every option line is indented by two, none at column 0.
        assert starts[0].startswith("  " + flag), starts[0]
    assert max(len(line) for line in lines) <= 80
    assert result.stderr == ""


def test_show_qzn_lists_every_setting_with_its_value():
    result = gdb_lines("set qzn bt-depth 7", "set qzn log /tmp/qzn-x", "show qzn")
    assert result.stdout.splitlines() == [
        "qzn args:  The default for --args, function arguments in backtraces is off.",
        "qzn bt-depth:  The default number of frames per backtrace is 7.",
        "qzn color:  The default colour mode is auto.",
        "qzn engine:  The default engine is auto.",
        'qzn if:  The default condition for logging an access is "".',
        'qzn log:  The default log file prefix is "/tmp/qzn-x".',
        'qzn stop-if:  The default condition for stopping at an access is "".',
        'qzn style:  The default pygments style for colours is "".',
    ]


def test_an_unknown_style_is_refused_at_once_and_the_old_one_kept():
    result = gdb_lines("set qzn style monokai", "set qzn style nosuch", "show qzn style")
    error = [line for line in result.stderr.splitlines() if line]
    assert len(error) == 1
    assert error[0].startswith("unknown style 'nosuch'; valid names")
    assert "monokai" in error[0]
    assert result.stdout.splitlines() == ['The default pygments style for colours is "monokai".']


def test_set_and_show_docs_read_as_sentences():
    result = gdb_lines("help set qzn style", "help show qzn color")
    lines = result.stdout.splitlines()
    assert lines[0] == "Set the default pygments style for colours."
    assert "Show the default colour mode." in lines


def test_qzn_watch_completes_option_names():
    result = gdb_lines("complete qzn-watch --c", "complete qzn-watch --access rw --no")
    assert result.stdout.splitlines() == [
        "qzn-watch --color",
        "qzn-watch --count",
        "qzn-watch --cr3",
        "qzn-watch --access rw --no-html",
    ]


def test_qzn_unwatch_completes_watch_numbers(build_c):
    program = build_c("mix")
    result = gdb_at_ready(
        program,
        "qzn-watch --quiet &area[11]",
        "qzn-watch --quiet &area[12]",
        "complete qzn-unwatch ",
        "qzn-unwatch 1",
        "complete qzn-unwatch ",
        "kill",
    )
    completions = [line for line in result.stdout.splitlines() if line.startswith("qzn-unwatch")]
    assert completions == [
        "qzn-unwatch 1",
        "qzn-unwatch 2",
        "qzn-unwatch all",
        "qzn-unwatch 2",
        "qzn-unwatch all",
    ], result.stdout + result.stderr


def test_the_summary_rate_counts_only_the_time_the_program_ran(build_c):
    """A second at gdb's prompt after arming is not part of the watch's duration or rate."""
    result = gdb_at_ready(
        build_c("mix"), "qzn-watch --quiet &area[11]", "shell sleep 1", "continue"
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("summary: "))
    seconds = float(line.split(" in ")[1].split(" s ")[0])
    assert line.startswith("summary: 19 accesses: 10 reads, 9 writes in "), line
    assert seconds < 0.5, line  # the sleep at the prompt took 1 s


@pytest.mark.parametrize(
    "expression, note",
    [
        ("&area", "; that object is 64 bytes, only its first 1 byte is watched"),
        ("--len 8 &area[8]", None),
        ("&area[11]", None),
    ],
)
def test_watching_an_object_larger_than_len_says_so(build_c, expression, note):
    result = gdb_at_ready(build_c("mix"), f"qzn-watch --quiet {expression}")
    armed = [line for line in result.stderr.splitlines() if line.startswith("qzn: watch 1: ")]
    assert len(armed) == 1, result.stderr
    if note is None:
        assert "that object is" not in armed[0]
    else:
        assert note + " (use --len 2, 4 or 8, or the address of the part to watch)" in armed[0]


def test_stop_prints_gdbs_usual_location_line(build_c):
    result = gdb_at_ready(
        build_c("mix"), "qzn-watch --quiet --stop &area[11]", "continue", "continue", "kill"
    )
    lines = result.stdout.splitlines()
    stops = [i for i, line in enumerate(lines) if line.startswith(("store_new (", "store_same ("))]
    assert [lines[i].split(" (")[0] for i in stops] == ["store_new", "store_same"], result.stdout
    source = (REPO / "tests" / "c" / "mix.c").read_text().splitlines()
    where = [str(n) for n, text in enumerate(source, 1) if text.startswith("static void store_")][
        :2
    ]
    assert [lines[i].rsplit(":", 1)[-1] for i in stops] == where, result.stdout
    assert [lines[i + 1].split("\t")[0] for i in stops] == where  # then the source line
