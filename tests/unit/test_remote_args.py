"""The launcher's --remote values and gdb's Python version, checked before gdb starts."""

from __future__ import annotations

import pytest

from gdb_qznusnih.launcher import preflight, remote
from gdb_qznusnih.launcher.cli import gdb_quote, parse_request
from gdb_qznusnih.options import OptionError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("board:2345", ("board", 2345)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("my-board.local:65535", ("my-board.local", 65535)),
        ("[::1]:2345", ("::1", 2345)),
    ],
)
def test_host_port_accepted(text, expected):
    assert remote.parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text",
    ["board", ":2345", "board:0", "board:65536", "board:x", "bo ard:1", "::1:2345",
     "[board]:1", "b;d:1", "board:1\nshell id", "board:1\x7f"],
)  # fmt: skip
def test_host_port_refused(text):
    with pytest.raises(OptionError):
        remote.parse_host_port(text)


def test_ipv6_is_bracketed_for_gdb():
    assert remote.gdb_address("::1", 2345) == "[::1]:2345"
    assert remote.gdb_address("board", 2345) == "board:2345"


TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0929 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1 1
   1: 0100007F:0929 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 2 1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1
"""


def test_listeners_are_the_listening_sockets_of_the_port():
    assert remote.parse_listeners(TCP_TABLE, 0x929) == {65534}  # not the connected one
    assert remote.parse_listeners(TCP_TABLE, 22) == {0}
    assert remote.parse_listeners(TCP_TABLE, 80) == set()


def test_connect_commands_take_the_quoted_program_and_attach_through_multi():
    commands = remote.connect_commands("board:2345", 42, gdb_quote("/opt/it's"), "/srv/root")
    assert commands[-3:-1] == ["set sysroot /srv/root", "file '/opt/it\\'s'"]
    assert commands[-1].endswith(
        "attach.connect('extended-remote', 'board:2345'); attach.attach(42)"
    )
    assert remote.connect_commands("board:2345", None, None, None)[-1].endswith(
        "attach.connect('remote', 'board:2345')"
    )


def test_python_version_of_gdb():
    out = f"{preflight.PROBE_MARKER} ['/usr/lib/python3']\n{preflight.PROBE_MARKER}-version 3 8\n"
    assert preflight.gdb_python_version(out) == (3, 8)
    assert preflight.gdb_python_version("nothing") is None
    problem = remote.python_version_problem("/sdk/gdb", (3, 8))
    assert problem.startswith("/sdk/gdb embeds Python 3.8; gdb-qznusnih needs Python 3.10")
    assert remote.python_version_problem("gdb", (3, 10)) is None
    assert remote.python_version_problem("gdb", (2, 7)) is not None


@pytest.mark.parametrize(
    "argv, words",
    [
        (["watch", "0x10"], "needs ADDR PID, or ADDR --remote HOST:PORT"),
        (["watch", "0x10", "1", "--file", "/bin/sh"], "--file is for --remote"),
        (["watch", "0x10", "1", "--sysroot", "/"], "--sysroot is for --remote"),
        (["watch", "0x10", "--remote", "b:1", "--file", "/no/such"], "--file /no/such: not a"),
        (["watch", "0x10", "--remote", "b:1", "--sysroot", "/bin/sh"], "not a directory"),
        (["watch", "0x10", "--remote", "b:1", "--system"], "--system are for QEMU mode"),
    ],
)
def test_remote_request_errors(argv, words):
    with pytest.raises(OptionError, match=words.replace("(", r"\(")):
        parse_request(argv)


def test_remote_request_picks_the_gdb_engine():
    request = parse_request(["watch", "0x10", "7", "--remote", "board:2345", "--sysroot", "/"])
    assert (request.pid, request.remote, request.sysroot) == (7, ("board", 2345), "/")
    assert request.options.engine == "gdb"
