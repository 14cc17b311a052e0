"""The launcher's argument parsing and gdb command line, without gdb."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_qznusnih import cli
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
        (["watch", "a\nshell id", "1"], "control characters"),
        (["watch", "0x10", "1", "--follow-exec", "x\x1b"], "control characters"),
        (["watch", "0x10"], "required"),
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
    # gdb's attach chatter goes to /dev/null (launcher_attach reports a failure), then the watch.
    assert commands == [
        "set logging file /dev/null",
        "set logging redirect on",
        "set logging enabled on",
        "python from gdb_qznusnih import launcher_attach; launcher_attach.attach(4242)",
        "set logging enabled off",
        "qzn-watch --len 8 --log '/tmp/x y' 0x7ffd0010",
    ]


def test_run_argv_shape():
    request = cli.parse_request(["run", "--watch", "&c", "--", "/bin/prog", "a;b"])
    argv = cli.gdb_run_argv("gdb", ["/bin/prog", "a;b"], request.options, ["/pkg"])
    assert argv[-3:] == ["--args", "/bin/prog", "a;b"]
    assert "start" in argv and "qzn-watch &c" in argv


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
