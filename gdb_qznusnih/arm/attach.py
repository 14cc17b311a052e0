"""The launcher's `attach PID` inside gdb: quiet when it works, one marked line when not.

The launcher sends gdb's stdout to /dev/null around the attach (its chatter would land in the
record stream), which swallows gdb's error too.  So the reason goes straight to fd 2 behind
preflight.ATTACH_FAILED_MARKER, for the launcher to explain, and gdb quits before `qzn-watch`
can add a misleading "no process to watch".  Needs gdb.
"""

from __future__ import annotations

import os

import gdb

from gdb_qznusnih.launcher.preflight import ATTACH_FAILED_MARKER
from gdb_qznusnih.options import one_line


def attach(pid: int) -> None:
    try:
        gdb.execute(f"attach {int(pid)}", to_string=True)
    except gdb.error as error:
        reason = one_line(error)  # "warning: ... \nptrace: ..." -> one line
        os.write(2, f"{ATTACH_FAILED_MARKER} {reason}\n".encode("utf-8", "replace"))
        gdb.execute("quit 1")
