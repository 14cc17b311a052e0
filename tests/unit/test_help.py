"""The launcher's --help: the watch options from the one parser, without the QEMU-only ones."""

from __future__ import annotations

import pytest

from gdb_qznusnih.launcher import cli


@pytest.mark.parametrize("command", ["watch", "run"])
def test_launcher_help_lists_no_whole_system_options(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args([command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--access {rw,r,w}" in text
    assert "--follow-exec EXPR" in text
    assert "--pid" not in text
    assert "--cr3" not in text
    assert "whole-system" not in text


@pytest.mark.parametrize("flag", ["--pid", "--cr3"])
def test_launcher_says_why_whole_system_options_do_not_apply(flag):
    with pytest.raises(cli.OptionError, match="for QEMU mode inside gdb"):
        cli.parse_request(["watch", flag, "1", "0x1000", "42"])
