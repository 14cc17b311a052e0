"""Where a watch is armed: the launcher's `run` stops the program at `--at LOCATION`, at
main, or at the ELF entry point of a program without main; `--at-every` stops there again.
Needs gdb.

LOCATION has passed options.check_location (a place, nothing gdb would evaluate), and gdb
must find it in the program before it runs, so a typo never lets it run unwatched.
"""

from __future__ import annotations

import os

import gdb

from gdb_qznusnih.arm.target import WatchError, word_size
from gdb_qznusnih.launcher.procfs import auxv_entry
from gdb_qznusnih.options import one_line

RUN_FAILED_PREFIX = "qznusnih: "


class _LocationBreakpoint(gdb.Breakpoint):
    """An internal breakpoint that stops silently: the watch says what happens there."""

    def __init__(self, spec: str, temporary: bool) -> None:
        super().__init__(spec, internal=True, temporary=temporary)
        self.silent = True


def check_found(location: str) -> None:
    """Raise WatchError unless gdb finds LOCATION in the program as it is loaded now."""
    try:
        remaining, places = gdb.decode_line(location)
    except gdb.error as error:
        raise WatchError(f"{location}: {one_line(error).rstrip('.')}; {_GIVE}") from None
    if remaining or not places:
        raise WatchError(f"{location} is not a location; {_GIVE}")


_GIVE = "give a function or FILE:LINE of the program, or *ADDRESS"


def break_at(location: str, temporary: bool = False) -> gdb.Breakpoint:
    check_found(location)
    return _LocationBreakpoint(location, temporary)


def run_to(location: str | None) -> None:
    """Start the program and stop where the watch is armed; on failure, one line and quit 1
    (before `qzn-watch` could add a misleading "no process to watch")."""
    try:
        _run_to(location)
    except (WatchError, gdb.error) as error:
        message = str(error) if isinstance(error, WatchError) else _cannot_stop(location, error)
        os.write(2, f"{RUN_FAILED_PREFIX}{one_line(message)}\n".encode("utf-8", "replace"))
        if gdb.selected_inferior().pid != 0:
            # Never past the dynamic loader: end it now, as quit would, without its question.
            gdb.execute("kill", to_string=True)
        gdb.execute("quit 1")


def _cannot_stop(location: str | None, error: gdb.error) -> str:
    return f"cannot stop the program at {location or 'main'}: {one_line(error)}"


def _run_to(location: str | None) -> None:
    if location is None and not _has_main():
        return _run_to_entry_point()
    where = location or "main"
    break_at(where, temporary=True)
    gdb.execute("run", to_string=True)
    _check_stopped(where)


def _has_main() -> bool:
    try:
        check_found("main")
        return True
    except WatchError:
        return False


def _run_to_entry_point() -> None:
    """A program without main (stripped): its first instruction, after the dynamic loader."""
    gdb.execute("starti", to_string=True)
    entry = auxv_entry(gdb.selected_inferior().pid, word_size())
    if entry is None:
        raise WatchError("cannot read the program's entry point; give --at *ADDRESS")
    _LocationBreakpoint(f"*{entry:#x}", temporary=True)
    gdb.execute("continue", to_string=True)
    _check_stopped(f"the entry point {entry:#x}")
    os.write(
        2, f"qzn: no main (a stripped program?): arming at its entry point {entry:#x}\n".encode()
    )


def _check_stopped(where: str) -> None:
    if gdb.selected_inferior().pid == 0:
        raise WatchError(f"the program ended before reaching {where}; nothing was watched")
