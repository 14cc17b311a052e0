"""The gdb commands: thin wrappers that parse, call the watch registry, and turn
errors into one-line gdb.GdbError messages.  Needs gdb."""

from __future__ import annotations

import gdb

from .options import OptionError, parse_watch_args, watch_help, watch_option_names
from .settings import Settings
from .target import WatchError
from .watches import WatchRegistry

_USER_ERRORS = (OptionError, WatchError, gdb.error, gdb.MemoryError)


def _one_line(error: Exception) -> gdb.GdbError:
    return gdb.GdbError(" ".join(str(error).split()))


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
            self.registry.monitor(session)
            if session.sink_error:
                raise gdb.GdbError(session.sink_error)


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
                f"{session.length} byte(s), access {session.opts.access}: "
                f"{reads} reads, {writes} writes; logs: {logs}\n"
            )


def register_commands() -> WatchRegistry:
    """Register the qzn-* commands (called by the loader, once per source)."""
    registry = WatchRegistry()
    WatchCommand(registry, Settings())
    UnwatchCommand(registry)
    StatusCommand(registry)
    return registry
