"""One-line errors: the whitespace tidy and the raising argparse."""

from __future__ import annotations

import argparse

import pytest

from gdb_qznusnih.options import one_line, raising_parser


class Refused(ValueError):
    pass


def test_one_line_joins_lines_and_squeezes_runs_of_whitespace():
    assert one_line("warning: x\n\tptrace:   Operation  not permitted.\n") == (
        "warning: x ptrace: Operation not permitted."
    )
    assert one_line(OSError(2, "No such file")) == "[Errno 2] No such file"
    assert one_line("movb   $0x1,(%rax)") == "movb $0x1,(%rax)"
    assert one_line(" \n ") == ""


def test_a_parse_error_raises_one_line_naming_the_help():
    parser = raising_parser(Refused)(prog="tool")
    parser.add_argument("--len", type=int)
    with pytest.raises(Refused) as caught:
        parser.parse_args(["--len", "x"])
    assert str(caught.value) == "argument --len: invalid int value: 'x' (see 'tool --help')"


def test_the_help_hint_is_the_callers():
    parser = raising_parser(Refused, "see 'help {prog}'")(prog="qzn-x", add_help=False)
    with pytest.raises(Refused, match=r"^unrecognized arguments: -z \(see 'help qzn-x'\)$"):
        parser.parse_args(["-z"])


def test_exit_raises_only_when_asked():
    version = ["--version"]
    raising = raising_parser(Refused, exit_raises=True)(prog="tool")
    raising.add_argument("--version", action="version", version="tool 1")
    with pytest.raises(Refused, match="^tool: exit 0$"):
        raising.parse_args(version)
    plain = raising_parser(Refused)(prog="tool")
    plain.add_argument("--version", action="version", version="tool 1")
    with pytest.raises(SystemExit) as caught:
        plain.parse_args(version)
    assert caught.value.code == 0


def test_subparsers_of_the_class_raise_too():
    parser_class = raising_parser(Refused)
    parser = parser_class(prog="tool")
    commands = parser.add_subparsers(dest="command", parser_class=parser_class)
    commands.add_parser("watch").add_argument("pid", type=int)
    with pytest.raises(Refused, match=r"^argument pid: .* \(see 'tool watch --help'\)$"):
        parser.parse_args(["watch", "abc"])
    assert issubclass(parser_class, argparse.ArgumentParser)
