"""The launcher's own surface: --help, --version, gdbinit, and gdb's quoting of its line."""

from __future__ import annotations

import subprocess

import pytest
from launcher_helpers import LOADER, quiet_env, run_launcher

from gdb_qznusnih import __version__
from gdb_qznusnih.launcher import cli

pytestmark = pytest.mark.gdb


def test_help_has_description_and_examples():
    done = run_launcher("--help")
    assert done.returncode == 0
    assert "hardware watchpoint" in done.stdout
    assert "qznusnih watch 0x55d0c3a0b04b 4242" in done.stdout
    assert "watch" in done.stdout and "run" in done.stdout and "gdbinit" in done.stdout


@pytest.mark.parametrize("command", ["watch", "run"])
def test_subcommand_help_lists_the_watch_options(command):
    done = run_launcher(command, "--help")
    assert done.returncode == 0
    for option in ("--access", "--len", "--log", "--count", "--duration", "--color"):
        assert option in done.stdout


def test_version():
    done = run_launcher("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"qznusnih {__version__}"


def test_no_command_is_a_one_line_usage_error():
    done = run_launcher()
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "give a command" in done.stderr


def test_gdbinit_prints_the_loader_line():
    done = run_launcher("gdbinit")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == f"source {LOADER}"
    for line in lines[:-1]:
        assert line.startswith(("#", "python import sys; sys.path.append("))


def test_gdbinit_lines_load_in_gdb(tmp_path):
    gdbinit = tmp_path / "gdbinit"
    gdbinit.write_text(run_launcher("gdbinit").stdout)
    done = subprocess.run(
        ["gdb", "-nx", "-batch", "-x", str(gdbinit), "-ex", "help qzn-watch"],
        capture_output=True,
        text=True,
        timeout=60,
        env=quiet_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: qzn-watch" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "expr", ["x; shell touch /tmp/pwned", "a' ; shell id '", 'say "hi" \\ there', "&buf[3]"]
)
def test_gdb_string_to_argv_sees_one_argument(expr):
    """The real gdb.string_to_argv splits our qzn-watch line back into exactly our argv."""
    options = cli.parse_request(["watch", expr, "1", "--log", "/tmp/a b"]).options
    line = cli.qzn_watch_command(options)
    probe = f"python print(repr(gdb.string_to_argv({line!r})))"
    done = subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", probe], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    argv = eval(done.stdout.strip())  # a list literal printed by repr()
    assert argv == ["qzn-watch", "--log", "/tmp/a b", "--engine", "auto", expr]
