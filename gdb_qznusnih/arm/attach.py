"""The launcher's `attach PID` and `target remote HOST:PORT` inside gdb: quiet when they work,
one marked line when not.

The launcher sends gdb's stdout to /dev/null around the attach (its chatter would land in the
record stream), which swallows gdb's error too.  So the reason goes straight to fd 2 behind
preflight.ATTACH_FAILED_MARKER (CONNECT_FAILED_MARKER for the connection), for the launcher to
explain, and gdb quits before `qzn-watch` can add a misleading "no process to watch".
Needs gdb.
"""

from __future__ import annotations

import os

import gdb

from gdb_qznusnih.launcher.preflight import ATTACH_FAILED_MARKER, CONNECT_FAILED_MARKER
from gdb_qznusnih.options import one_line

# While connecting only: a TCP server that is not a stub answers nothing gdb can parse, and
# gdb waits this long for each packet it tries again (the default 2 s makes it half a minute).
_CONNECT_REMOTE_TIMEOUT_S = 1


def attach(pid: int) -> None:
    try:
        gdb.execute(f"attach {int(pid)}", to_string=True)
    except gdb.error as error:
        _fail(ATTACH_FAILED_MARKER, error)


def connect(kind: str, address: str) -> None:
    """`target remote|extended-remote ADDRESS`; the launcher checked ADDRESS."""
    if kind not in ("remote", "extended-remote"):
        raise ValueError(kind)
    saved = gdb.parameter("remotetimeout")
    gdb.execute(f"set remotetimeout {_CONNECT_REMOTE_TIMEOUT_S}", to_string=True)
    try:
        gdb.execute(f"target {kind} {address}", to_string=True)
    except gdb.error as error:
        _fail(CONNECT_FAILED_MARKER, error)
    finally:
        gdb.execute(f"set remotetimeout {saved}", to_string=True)


def _fail(marker: str, error: gdb.error) -> None:
    reason = one_line(error)  # "warning: ... \nptrace: ..." -> one line
    os.write(2, f"{marker} {reason}\n".encode("utf-8", "replace"))
    gdb.execute("quit 1")
