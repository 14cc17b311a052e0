"""The gdb commands: thin wrappers that parse, call the watch registry, and turn
errors into one-line gdb.GdbError messages.  Needs gdb."""

from __future__ import annotations

import gdb

from .options import OptionError, parse_watch_args
from .settings import Settings
from .target import WatchError
from .watches import WatchRegistry

_USER_ERRORS = (OptionError, WatchError, gdb.error, gdb.MemoryError)


def _one_line(error: Exception) -> gdb.GdbError:
    return gdb.GdbError(" ".join(str(error).split()))


class WatchCommand(gdb.Command):
    """Log every read and write of memory at ADDR, with backtraces.

          Usage: qzn-watch [OPTIONS] ADDR

          ADDR is any expression giving an address: 0x7ffd1234, &buf[3], $rsp+8.
          It may only read: assignments and function calls are refused.
          One hardware debug register is used per watch; a hit never stops the
          program unless --stop is given.  In `gdb -batch` the command keeps the
          target running under the watch until it exits, a stop condition is met, or
          gdb gets SIGINT/SIGTERM/SIGHUP; then it detaches and prints a summary.
          A stopped target is refused; a SIGSTOP or Ctrl-Z during the watch ends
          it and leaves the target stopped.

          Options:
            --access rw|r|w        log reads and writes (default), reads, or writes
            --len 1|2|4|8          bytes to watch (default 1); ADDR aligned to it
            --log PREFIX           write PREFIX.jsonl, PREFIX.reads.log, PREFIX.writes.log
            --color auto|always|never
            --count N              end the watch after N logged accesses
            --duration SECONDS     end the watch after SECONDS
            --bt-depth N           frames per backtrace (default 16; whole-system mode:
                           N kernel frames, then N user frames)
            --args                 show function arguments in backtraces (slower)
            --stop                 stop the program after logging each hit

      Defaults for --color, --bt-depth, --style, --args and --log can be set with
      `set qzn color|bt-depth|style|args|log VALUE`.
            --quiet                no per-access stream on the terminal
    --no-html              with --log, skip PREFIX.html at the end
            --style NAME           pygments style for colours
            --pid PID, --cr3 CR3   whole-system (QEMU) mode: keep one process's hits
            --follow-exec EXPR     after exec, watch EXPR in the new program"""

    def __init__(self, registry: WatchRegistry, settings: Settings) -> None:
        super().__init__("qzn-watch", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_EXPRESSION)
        self.registry = registry
        self.settings = settings

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
