"""The launcher's argument parsing and gdb command line, without gdb."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_qznusnih.launcher import cli, preflight, procfs
from gdb_qznusnih.launcher.ptrace_cleanup import CleanupReport, Fate, process_fate
from gdb_qznusnih.options import OptionError, parse_watch_args


def buildargv(text: str) -> list[str]:
    """libiberty's buildargv, which gdb.string_to_argv uses (reference for the quoting)."""
    argv: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        arg, squote, dquote, bsquote = [], False, False, False
        while i < n:
            ch = text[i]
            if ch.isspace() and not (squote or dquote or bsquote):
                break
            if bsquote:
                bsquote = False
                arg.append(ch)
            elif ch == "\\":
                bsquote = True
            elif squote:
                if ch == "'":
                    squote = False
                else:
                    arg.append(ch)
            elif dquote:
                if ch == '"':
                    dquote = False
                else:
                    arg.append(ch)
            elif ch == "'":
                squote = True
            elif ch == '"':
                dquote = True
            else:
                arg.append(ch)
            i += 1
        argv.append("".join(arg))
    return argv


def test_watch_bare_hex_gets_0x_like_the_original():
    request = cli.parse_request(["watch", "7ffd1234abcd", "4242"])
    assert request.command == "watch"
    assert request.pid == 4242
    assert request.options.address == "0x7ffd1234abcd"


@pytest.mark.parametrize(
    "addr, expected",
    [
        ("0x7FFD1234", "0x7ffd1234"),
        ("1234", "0x1234"),
        ("&counter", "&counter"),
        ("$rsp+8", "$rsp+8"),
        ("cafe", "cafe"),  # no digit: a variable, not hex
        ("(a1)", "(a1)"),
    ],
)
def test_address_forms(addr, expected):
    assert cli.parse_request(["watch", addr, "1"]).options.address == expected


@pytest.mark.parametrize("pid", ["abc", "0", "-5", "1.5", "99999999", ""])
def test_bad_pid_is_an_option_error(pid):
    with pytest.raises(OptionError, match="not a PID"):
        cli.parse_request(["watch", "0x10", pid])


def test_swapped_order_gets_a_hint():
    with pytest.raises(OptionError, match="the order is ADDR PID"):
        cli.parse_request(["watch", "4242", "0x7ffd1234"])


@pytest.mark.parametrize(
    "argv, match",
    [
        (["watch", "0x10", "1", "--len", "3"], "1, 2, 4 or 8"),
        (["watch", "0x10", "1", "--count", "0"], "greater than zero"),
        (["watch", "0x10", "1", "--duration", "-1"], "positive number of seconds"),
        (["watch", "0x10", "1", "--bogus"], "unrecognized arguments"),
        (["watch", "0x10", "1", "--pid", "3"], "QEMU mode"),
        (["watch", "0x10", "1", "--log", "a\nb"], "control characters"),
        (["watch", "0x10", "1", "--log", ""], "is empty; give a file prefix"),
        (["watch", "0x10", "1", "--log", "/var/tmp/"], "names a directory"),
        (["watch", "0x10", "1", "--duration", "nan"], "positive number of seconds"),
        (["watch", "0x10", "1", "--duration", "1e308"], "more than a year"),
        (["watch", "a\nshell id", "1"], "control characters"),
        (["watch", "0x10", "1", "--follow-exec", "x\x1b"], "control characters"),
        (["watch", "0x10"], "needs ADDR PID, or ADDR --remote"),
        (["run", "--watch", "&x"], "needs the program"),
        (["run", "--", "./prog"], "--watch"),
        ([], "give a command"),
    ],
)
def test_bad_options_are_one_line(argv, match):
    with pytest.raises(OptionError, match=match) as caught:
        cli.parse_request(argv)
    assert "\n" not in str(caught.value)


def test_run_splits_at_the_first_double_dash():
    request = cli.parse_request(
        ["run", "--count", "5", "--watch", "&the_data", "--", "./p", "-v", "--", "a b"]
    )
    assert request.command == "run"
    assert request.program == ["./p", "-v", "--", "a b"]
    assert request.options.address == "&the_data"
    assert request.options.count == 5


def test_gdbinit_command():
    assert cli.parse_request(["gdbinit"]).command == "gdbinit"


def test_watch_argv_shape():
    request = cli.parse_request(["watch", "7ffd0010", "4242", "--log", "/tmp/x y", "--len", "8"])
    argv = cli.gdb_watch_argv("/usr/bin/gdb", 4242, request.options, ["/opt/my pkg", "/s'p"])
    assert argv[:3] == ["/usr/bin/gdb", "-nx", "-batch"]
    assert argv[3] == "-ex"
    assert argv[4] == "python import sys; sys.path.append('/opt/my pkg'); sys.path.append(\"/s'p\")"
    assert argv[5:7] == ["-x", cli.LOADER]
    flags, commands = argv[7::2], argv[8::2]
    assert flags == ["-ex"] * len(commands) and len(argv) == 7 + 2 * len(commands)
    # gdb's attach chatter goes to /dev/null (arm/attach.py reports a failure), then the watch.
    assert commands == [
        "set logging file /dev/null",
        "set logging redirect on",
        "set logging enabled on",
        "python from gdb_qznusnih.arm import attach; attach.attach(4242)",
        "set logging enabled off",
        "qzn-watch --len 8 --log '/tmp/x y' --engine auto 0x7ffd0010",
    ]


def test_run_argv_shape():
    request = cli.parse_request(["run", "--watch", "&c", "--", "/bin/prog", "a;b"])
    argv = cli.gdb_run_argv("gdb", ["/bin/prog", "a;b"], request.options, ["/pkg"])
    assert argv[-3:] == ["--args", "/bin/prog", "a;b"]
    assert "qzn-watch --engine auto &c" in argv
    # The program starts only after gdb has found where to stop it (main here).
    assert "python from gdb_qznusnih.arm import at_location; at_location.run_to(None)" in argv
    assert "start" not in argv and "run" not in argv


@pytest.mark.parametrize(
    "expr",
    ["x; shell touch /tmp/pwned", "a' ; shell id '", 'say "hi" \\ there', "-8+$rsp", "#x"],
)
def test_expression_stays_one_argument(expr):
    options = cli.parse_request(["watch", "--", expr, "1"]).options
    line = cli.qzn_watch_command(options)
    argv = buildargv(line)
    assert argv[0] == "qzn-watch"
    assert parse_watch_args(argv[1:]).address == expr


@given(st.text(min_size=1).filter(lambda s: s.strip() and s.isprintable()))
def test_any_printable_expression_round_trips(expr):
    try:
        options = cli.parse_request(["watch", "--", expr, "7"]).options
    except OptionError:
        return
    argv = buildargv(cli.qzn_watch_command(options))
    assert argv[0] == "qzn-watch"
    assert parse_watch_args(argv[1:]).address == options.address


@given(st.lists(st.text(max_size=12), max_size=8))
def test_parser_never_crashes(argv):
    try:
        cli.parse_request(argv)
    except OptionError as error:
        assert "\n" not in str(error)
    except SystemExit as exit_:  # --help / --version
        assert exit_.code == 0


@given(st.text(max_size=20), st.text(max_size=12))
def test_addr_pid_parsing_never_crashes(addr, pid):
    try:
        request = cli.parse_request(["watch", addr, pid])
    except OptionError:
        return
    except SystemExit as exit_:
        assert exit_.code == 0
        return
    assert request.pid > 0


def test_longest_duration_is_a_year():
    options = cli.parse_request(["watch", "0x10", "1", "--duration", str(365 * 24 * 3600)])
    assert options.options.duration == 365 * 24 * 3600
    with pytest.raises(OptionError, match="more than a year"):
        parse_watch_args(["--duration", "31536001", "&x"])  # qzn-watch inside gdb too


# ---- what the launcher makes of gdb's stderr


def filtered(lines, target=None) -> tuple[list[str], int]:
    out: list[str] = []
    armed = []
    line_filter = cli.StderrFilter(target, out.append, on_armed=lambda: armed.append(1))
    for line in lines:
        line_filter.feed(line + "\n")
    line_filter.close()
    return out, len(armed)


def test_the_armed_note_is_noticed_once_and_passed_on():
    note = "qzn: watch 1: reads and writes of 1 byte at 0x10 (0x10) in process 4242"
    out, armed = filtered([note, "qzn: watch 1 ended: SIGTERM received"])
    assert out == [note + "\n", "qzn: watch 1 ended: SIGTERM received\n"]
    assert armed == 1


def test_gdbs_charset_warnings_do_not_split_the_error():
    out, _ = filtered(
        [
            "warning: charset conversion failure for '\u2603'.",
            "You may have the wrong value for 'set ada source-charset'.",
            "cannot evaluate '\u2603': No symbol \"\u2603\" in current context.",
        ]
    )
    assert out == ["cannot evaluate '\u2603': No symbol \"\u2603\" in current context.\n"]


def free_pid() -> int:
    pid = 4 * 1024 * 1024 - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_a_failed_attach_of_a_vanished_process_says_it_exited():
    pid = free_pid()
    target = preflight.Target(pid, preflight.ProcessStatus(), start_time="1")
    marker = preflight.ATTACH_FAILED_MARKER
    out, _ = filtered([f"{marker} ptrace: No such process.", "anything after"], target)
    assert out == [
        f"qznusnih: gdb cannot attach to process {pid} (ptrace: No such process): it exited "
        "before gdb could attach; start it again and give the new PID\n"
    ]


def test_a_failed_attach_of_a_live_process_gives_gdbs_reason_and_the_fix():
    me = preflight.read_target(os.getpid())
    message = cli.explain_attach_failure(me.pid, "ptrace: Operation not permitted.", me.start_time)
    assert message.startswith(
        f"gdb cannot attach to process {me.pid} (ptrace: Operation not permitted); run as root"
    )
    assert "non-dumpable" in message


# ---- what the launcher says became of the target after gdb died


@pytest.mark.parametrize(
    "fate, text",
    [
        (
            Fate(alive=False, exit_status=signal.SIGTRAP),
            "process 7 died of SIGTRAP: its watchpoint",
        ),
        (Fate(alive=False, exit_status=signal.SIGKILL), "process 7 was killed by SIGKILL"),
        (Fate(alive=False, exit_status=3 << 8), "process 7 exited with status 3"),
        (Fate(alive=False), "process 7 is gone before its debug registers could be cleared"),
        (Fate(alive=False, reused=True), "its PID now belongs to another process"),
    ],
)
def test_a_dead_targets_fate_is_said_as_it_is(fate, text):
    report = CleanupReport(7, threads=1, cleared=1, fate=fate)
    assert report.summary().startswith("process 7 ") and text in report.summary()
    assert "cleared its" not in report.summary()


def test_a_live_targets_report_says_when_it_was_cleared():
    report = CleanupReport(7, threads=2, cleared=1, fate=Fate(alive=True), elapsed_ms=0.25)
    assert report.summary() == (
        "process 7 is alive: cleared its hardware watchpoints 0.25 ms after gdb died "
        "(1 of 2 threads were armed)"
    )


def test_process_fate_of_a_zombie_reads_its_exit_signal():
    child = subprocess.Popen(["sleep", "60"])
    child.send_signal(signal.SIGTRAP)
    while procfs.state(child.pid) != "Z":
        time.sleep(0.005)
    try:
        fate = process_fate(child.pid)
        assert (fate.alive, fate.exit_status & 0x7F) == (False, signal.SIGTRAP)
    finally:
        child.wait()
    assert process_fate(child.pid) == Fate(alive=False)
