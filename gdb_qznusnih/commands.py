"""The gdb commands: thin wrappers that parse, call the watch registry, and turn
errors into one-line gdb.GdbError messages.  Needs gdb."""

from __future__ import annotations

import os

import gdb

from gdb_qznusnih.arm.describe import debug_registers_text
from gdb_qznusnih.arm.registry import WatchRegistry, debug_registers_used
from gdb_qznusnih.arm.target import WatchError
from gdb_qznusnih.counted import counted
from gdb_qznusnih.launcher.perf_watch import EXIT_LOST
from gdb_qznusnih.options import (
    OptionError,
    one_line,
    parse_watch_args,
    watch_help,
    watch_option_names,
)
from gdb_qznusnih.report import build, cli
from gdb_qznusnih.settings import Settings

_USER_ERRORS = (OptionError, WatchError, gdb.error, gdb.MemoryError)


def _one_line(error: Exception) -> gdb.GdbError:
    return gdb.GdbError(one_line(error))


class WatchCommand(gdb.Command):
    __doc__ = watch_help()

    def __init__(self, registry: WatchRegistry, settings: Settings) -> None:
        super().__init__("qzn-watch", gdb.COMMAND_BREAKPOINTS)
        self.registry = registry
        self.settings = settings

    def complete(self, text: str, word: str):
        typed = text.rsplit(" ", 1)[-1]
        if not typed.startswith("-"):
            return gdb.COMPLETE_EXPRESSION
        # gdb breaks words at '-': hand back only the part that replaces `word`.
        cut = len(typed) - len(word or "")
        return [name[cut:] for name in watch_option_names() if name.startswith(typed)]

    def invoke(self, argument: str, from_tty: bool) -> None:
        try:
            argv = gdb.string_to_argv(argument)
            opts = parse_watch_args(argv, defaults=self.settings.watch_defaults())
            session = self.registry.arm(opts)
        except _USER_ERRORS as error:
            raise _one_line(error) from None
        if self.registry.wants_monitoring():
            killed_status = self.registry.monitor(session)
            if session.sink_error:
                raise gdb.GdbError(session.sink_error)
            if killed_status is not None:  # the target died of a signal: gdb -batch says so too
                gdb.execute(f"quit {killed_status}")
            if session.accesses_lost:
                gdb.execute(f"quit {EXIT_LOST}")  # as `qznusnih watch` says it: accesses lost


class UnwatchCommand(gdb.Command):
    """Remove watches and print their summaries.

    Usage: qzn-unwatch [N|all]

    Without an argument, or with `all`, every watch is removed."""

    def __init__(self, registry: WatchRegistry) -> None:
        super().__init__("qzn-unwatch", gdb.COMMAND_BREAKPOINTS)
        self.registry = registry

    def complete(self, text: str, word: str):
        choices = [str(number) for number in self.registry.sessions] + ["all"]
        return [choice for choice in choices if choice.startswith(word or "")]

    def invoke(self, argument: str, from_tty: bool) -> None:
        argv = gdb.string_to_argv(argument)
        if not argv or argv == ["all"]:
            self.registry.end_all("removed by qzn-unwatch")
            return
        for text in argv:
            try:
                session = self.registry.sessions[int(text)]
            except (ValueError, KeyError):
                raise gdb.GdbError(f"no watch {text}; 'qzn-status' lists the armed ones") from None
            self.registry.end(session, "removed by qzn-unwatch")


class StatusCommand(gdb.Command):
    """Show the armed watches, their read and write counts, and their logs.

    Usage: qzn-status"""

    def __init__(self, registry: WatchRegistry) -> None:
        super().__init__("qzn-status", gdb.COMMAND_STATUS)
        self.registry = registry

    def invoke(self, argument: str, from_tty: bool) -> None:
        if argument.strip():
            raise gdb.GdbError("qzn-status takes no arguments")
        if not self.registry.sessions:
            gdb.write("No watches armed.\n")
            return
        for session in self.registry.sessions.values():
            reads, writes = session.counts()
            logs = ", ".join(session.sinks.paths) or "terminal only"
            gdb.write(
                f"watch {session.number}: {session.address:#x} ({session.opts.address}), "
                f"{counted(session.length, 'byte')}, access {session.opts.access}: "
                f"{counted(reads, 'read')}, {counted(writes, 'write')}; "
                f"{_registers_taken(session)}logs: {logs}\n"
            )


def _registers_taken(session) -> str:
    """`takes N debug registers; ` of a watch of a process (a whole-system watch takes none of
    the process's)."""
    if session.kernel is not None:
        return ""
    return debug_registers_text(debug_registers_used(session)) + "; "


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
        # Colour only what a person reads: gdb's own styling is on and its stdout a terminal.
        coloured_terminal = bool(from_tty) and bool(gdb.parameter("style enabled")) and os.isatty(1)
        try:
            cli.run(argv, _GdbOutput(), coloured_terminal, prog="qzn-report")
        except build.ReportError as error:
            raise gdb.GdbError(str(error)) from None


def register_commands() -> WatchRegistry:
    """Register the qzn-* commands (called by the loader, once per source)."""
    registry = WatchRegistry()
    WatchCommand(registry, Settings())
    UnwatchCommand(registry)
    StatusCommand(registry)
    ReportCommand()
    return registry
