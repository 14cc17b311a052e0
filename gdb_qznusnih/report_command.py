"""`qzn-report` inside gdb: `qznusnih report` on a log, as a gdb command.  Needs gdb."""

from __future__ import annotations

import gdb

from . import report


class _GdbOutput:
    """A text stream that writes through gdb (pagination and logging apply)."""

    def write(self, text: str) -> None:
        gdb.write(text)


class ReportCommand(gdb.Command):
    """Summarise a qzn-watch JSON Lines log: who read and wrote the byte, and when.

    Usage: qzn-report LOG.jsonl [--kind read|write] [--tid N] [--since T] [--until T]
                     [--func REGEX] [--format text|json|html] [--output FILE]
                     [--color auto|always|never] [--style NAME] [--top N]

    Totals by kind, thread and mode; the top call sites per kind with a sample
    backtrace; the first and last writer; every write that changed the value.
    T is an ISO time as in the log, a time of day (03:13:20.5, UTC) or seconds
    after the first record (+1.5).  `qzn-report --help` lists every option."""

    def __init__(self) -> None:
        super().__init__("qzn-report", gdb.COMMAND_STATUS, gdb.COMPLETE_FILENAME)

    def invoke(self, argument: str, from_tty: bool) -> None:
        argv = gdb.string_to_argv(argument)
        coloured_terminal = bool(from_tty) and bool(gdb.parameter("style enabled"))
        try:
            report.run(argv, _GdbOutput(), coloured_terminal, prog="qzn-report")
        except report.ReportError as error:
            raise gdb.GdbError(str(error)) from None


def register_report_command() -> ReportCommand:
    """Register `qzn-report` (called by the loader)."""
    return ReportCommand()
