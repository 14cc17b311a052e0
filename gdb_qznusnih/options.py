"""Options of `qzn-watch`, shared by the gdb command and the launcher.  Pure: no gdb."""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, fields

from gdb_qznusnih.perf.events import DEFAULT_STACK_BYTES, MAX_STACK_BYTES
from gdb_qznusnih.record.condition import ConditionError, compile_condition

ACCESS_CHOICES = ("rw", "r", "w")
LENGTHS = (1, 2, 4, 8)
COLOR_CHOICES = ("auto", "always", "never")
ENGINE_CHOICES = ("auto", "perf", "gdb")
DEFAULT_BT_DEPTH = 16
MAX_DURATION_S = 365 * 24 * 3600


# One line for bad input: gdb prints a multi-line message as several lines, and argparse
# prints its usage and exits; both would break the rule of one line that says what to do.


def one_line(text: object) -> str:
    """`text` (an exception, or gdb's multi-line message) with each run of whitespace one space."""
    return " ".join(str(text).split())


def raising_parser(
    error_class: type[Exception], help_hint: str = "see '{prog} --help'", exit_raises: bool = False
) -> type[argparse.ArgumentParser]:
    """An ArgumentParser class whose errors raise `error_class` with one line.

    The line is argparse's message, then `help_hint` in brackets ({prog} is the parser's prog).
    With `exit_raises`, an exit (e.g. from an action) raises too, instead of SystemExit.
    """

    class RaisingParser(argparse.ArgumentParser):
        def error(self, message: str):
            raise error_class(f"{message} ({help_hint.format(prog=self.prog)})")

        def exit(self, status: int = 0, message: str | None = None):
            if not exit_raises:
                super().exit(status, message)
            raise error_class(message.strip() if message else f"{self.prog}: exit {status}")

    RaisingParser.__doc__ = f"argparse that raises {error_class.__name__} with one line."
    return RaisingParser


class OptionError(ValueError):
    """A user's mistake in the options; its message is one line that says what to do."""


@dataclass
class WatchOptions:
    """Everything `qzn-watch` needs to arm one watch."""

    address: str = ""  # a gdb expression giving the address
    access: str = "rw"
    length: int = 1
    log: str | None = None
    color: str = "auto"
    count: int | None = None
    duration: float | None = None
    bt_depth: int = DEFAULT_BT_DEPTH
    stop: bool = False
    args: bool = False
    quiet: bool = False
    no_html: bool = False
    style: str | None = None
    pid: int | None = None
    cr3: int | None = None
    system: bool = False  # a remote stub that drives a whole machine, though not QEMU's
    follow_exec: str | None = None
    engine: str = "auto"
    stack_bytes: int = DEFAULT_STACK_BYTES
    at_every: str | None = None  # a gdb location: re-arm each time it is reached (-batch)
    if_cond: str | None = None  # --if COND: log only the accesses where it holds
    stop_if: str | None = None  # --stop-if COND: end the watch at the first such access

    @property
    def logs_reads(self) -> bool:
        return "r" in self.access

    @property
    def logs_writes(self) -> bool:
        return "w" in self.access


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than zero")
    return value


def _condition(text: str) -> str:
    """COND checked now (one line with its column if bad); compiled again when armed."""
    try:
        compile_condition(text)
    except ConditionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    if value > MAX_DURATION_S:
        # threading.Timer and time arithmetic overflow long before 1e308.
        raise argparse.ArgumentTypeError(
            f"{text} is more than a year ({MAX_DURATION_S:,} s); leave --duration out to "
            "watch until the target exits"
        )
    return value


def _log_prefix(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("is empty; give a file prefix, e.g. --log /tmp/watch")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise argparse.ArgumentTypeError("contains control characters; give a plain file prefix")
    if text.endswith("/"):
        raise argparse.ArgumentTypeError(
            f"{text} names a directory; give a file prefix, e.g. --log {text}watch"
        )
    return text


def _length(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = None
    if value not in LENGTHS:
        raise argparse.ArgumentTypeError(f"'{text}' is not one of 1, 2, 4 or 8 bytes")
    return value


def _hex_or_int(text: str) -> int:
    try:
        return int(text, 16 if text.lower().startswith("0x") else 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def _stack_bytes(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of bytes") from None
    if value % 8 or not 0 <= value <= MAX_STACK_BYTES:
        raise argparse.ArgumentTypeError(
            f"{value} must be a multiple of 8 from 0 to {MAX_STACK_BYTES} "
            f"(default {DEFAULT_STACK_BYTES})"
        )
    return value


def add_watch_options(parser: argparse.ArgumentParser, whole_system: bool = True) -> None:
    """Add the options of `qzn-watch` (without ADDR) to a parser, in groups.

    `whole_system=False` hides --pid and --cr3, which only a gdb on QEMU's gdbstub uses.
    """
    what = parser.add_argument_group("what to log").add_argument
    what(
        "--access",
        choices=ACCESS_CHOICES,
        default="rw",
        help="log reads and writes (rw, the default), reads only (r) or writes only (w)",
    )
    what(
        "--len",
        dest="length",
        type=_length,
        default=1,
        metavar="{1,2,4,8}",
        help="bytes to watch, default 1; ADDR must be aligned to it",
    )
    what(
        "--bt-depth",
        type=_positive_int,
        default=DEFAULT_BT_DEPTH,
        metavar="N",
        help=f"frames per backtrace, default {DEFAULT_BT_DEPTH}"
        + (" (whole-system mode: N kernel frames, then N user frames)" if whole_system else ""),
    )
    what("--args", action="store_true", help="show function arguments in backtraces (slower)")
    what(
        "--follow-exec",
        metavar="EXPR",
        help="after the target calls exec, watch EXPR in the new program",
    )
    how = parser.add_argument_group("engine").add_argument
    how(
        "--engine",
        choices=ENGINE_CHOICES,
        default="auto",
        help="perf: hardware breakpoints by perf_event_open, the target never stopped nor "
        "ptrace-attached; gdb: gdb's watchpoints; auto: perf when permitted (the "
        "launcher's default; inside gdb, `set qzn engine`, gdb at first)",
    )
    how(
        "--stack-bytes",
        type=_stack_bytes,
        default=DEFAULT_STACK_BYTES,
        metavar="N",
        help=f"perf: user stack copied per access for the backtrace, default {DEFAULT_STACK_BYTES}",
    )
    output = parser.add_argument_group("output").add_argument
    output(
        "--log",
        type=_log_prefix,
        metavar="PREFIX",
        help="write PREFIX.jsonl, PREFIX.reads.log and PREFIX.writes.log",
    )
    output(
        "--no-html",
        action="store_true",
        help="with --log, skip PREFIX.html at the end (it re-reads the whole log)",
    )
    output(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        help="colour the terminal stream: auto (a terminal and NO_COLOR unset), always, never",
    )
    output("--style", metavar="NAME", help="pygments style for colours")
    output("--quiet", action="store_true", help="no per-access stream on the terminal")
    output(
        "--if",
        dest="if_cond",
        type=_condition,
        metavar="COND",
        help="log only the accesses where COND holds, e.g. \"kind == 'write' and value != 0\" "
        "(names: kind value old tid func file line pc mode changed_unseen; == != < <= > >= "
        "in, not in, ~ regex, and or not)",
    )
    until = parser.add_argument_group("when to stop").add_argument
    until("--count", type=_positive_int, metavar="N", help="end the watch after N logged accesses")
    until(
        "--stop-if",
        type=_condition,
        metavar="COND",
        help="end the watch at the first access where COND holds, logged last (inside gdb "
        "the program stops at it); COND as for --if",
    )
    until(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="end the watch after SECONDS of watching",
    )
    until(
        "--stop",
        action="store_true",
        help="stop the program after logging a hit, like a plain watchpoint",
    )
    # The launcher hides them but still parses them, to say why they do not apply.
    if whole_system:
        machine = parser.add_argument_group("whole-system (QEMU gdbstub) mode").add_argument
    else:
        machine = parser.add_argument

    def shown(text: str) -> str:
        return text if whole_system else argparse.SUPPRESS

    machine(
        "--pid", type=_positive_int, metavar="PID", help=shown("keep only hits made by or for PID")
    )
    machine(
        "--cr3",
        type=_hex_or_int,
        metavar="CR3",
        help=shown("without kernel symbols: the address space to keep"),
    )
    machine(
        "--system",
        action="store_true",
        help=shown(
            "the remote stub drives a whole machine (QEMU's gdbstub is found by itself; "
            "gdbserver's process is watched as a process)"
        ),
    )


_RaisingParser = raising_parser(OptionError, "see 'help {prog}'", exit_raises=True)


WATCH_SUMMARY = "Log every read and write of memory at ADDR, with backtraces."
WATCH_DESCRIPTION = """\
ADDR is an expression giving an address: 0x7ffd1234, &buf[3], $rsp+8.  It may
only read: assignments and function calls are refused.  One hardware debug
register is used per watch; a hit never stops the program unless --stop is
given.  In `gdb -batch` the command keeps the target running under the watch
until it exits, a stop condition is met, or gdb gets SIGINT, SIGTERM or SIGHUP;
then it detaches and prints a summary.  A stopped target is refused; a SIGSTOP
or Ctrl-Z during the watch ends it and leaves the target stopped."""
WATCH_EPILOG = """\
`set qzn NAME VALUE` sets the defaults of --args, --bt-depth, --color,
--engine, --log and --style; `show qzn` lists them."""


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    # A fixed width: gdb's help is read in terminals of any size and compared in tests.
    return argparse.RawDescriptionHelpFormatter(prog, width=80, max_help_position=26)


def build_watch_parser(prog: str = "qzn-watch") -> argparse.ArgumentParser:
    parser = _RaisingParser(
        prog=prog,
        usage="%(prog)s [OPTIONS] ADDR",
        description=WATCH_DESCRIPTION,
        epilog=WATCH_EPILOG,
        formatter_class=_help_formatter,
        add_help=False,
        allow_abbrev=False,
    )
    add_watch_options(parser)
    add_at_every_option(parser.add_argument)
    parser.add_argument("address", nargs="+", metavar="ADDR", help=argparse.SUPPRESS)
    return parser


def add_at_every_option(add_argument) -> None:
    """--at-every LOCATION, for qzn-watch and the launcher's `run`."""
    add_argument(
        "--at-every",
        type=_location,
        metavar="LOCATION",
        help="in -batch: each time LOCATION is reached, end the watch and arm a new one on "
        "ADDR there (logs PREFIX.at2, PREFIX.at3, ...)",
    )


def watch_help(prog: str = "qzn-watch") -> str:
    """`help qzn-watch`: a summary line, a blank line, `Usage:`, then the parser's help."""
    text = build_watch_parser(prog).format_help().rstrip()
    usage, rest = text.split("\n", 1)
    return f"{WATCH_SUMMARY}\n\nU{usage[1:]}\n{rest}"


def watch_option_names() -> list[str]:
    """Every option qzn-watch takes, for completion."""
    return sorted(
        flag for action in build_watch_parser()._actions for flag in action.option_strings
    )


def parse_watch_args(
    argv: list[str], prog: str = "qzn-watch", defaults: dict | None = None
) -> WatchOptions:
    """Parse `qzn-watch` arguments; raise OptionError with a one-line message.

    `defaults` (WatchOptions field names) replace the built-in defaults, e.g.
    from `set qzn ...` settings.
    """
    if not argv:
        raise OptionError(f"{prog} needs an address, e.g. '{prog} &counter' or '{prog} 0x7ffd1234'")
    parser = build_watch_parser(prog)
    if defaults:
        parser.set_defaults(**defaults)
    namespace = parser.parse_args(argv)
    opts = options_from_namespace(namespace)
    opts.address = check_expression(" ".join(namespace.address))
    return opts


def options_from_namespace(namespace: argparse.Namespace) -> WatchOptions:
    """Take the WatchOptions fields out of an argparse namespace."""
    names = {f.name for f in fields(WatchOptions)}
    return WatchOptions(**{k: v for k, v in vars(namespace).items() if k in names})


def check_expression(text: str) -> str:
    """Refuse text that could smuggle a second gdb command into a command line."""
    text = text.strip()
    if not text:
        raise OptionError("the address expression is empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise OptionError("the address expression contains control characters")
    return text


# A gdb location: a function, FILE:LINE, FILE:FUNCTION or *ADDRESS.  Never a space (a
# condition `if ...`, `thread N` or `-force-condition` needs one) nor a `$` (a convenience
# variable or function), so gdb only looks a place up and evaluates nothing.
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|[0-9]+)"
_SYMBOL = r"[A-Za-z_][A-Za-z0-9_.]*"
_LOCATION = re.compile(
    rf"\*(?:{_NUMBER}|{_SYMBOL}(?:[+-]{_NUMBER})?)"  # *0x401234, *parse_header+4
    r"|[A-Za-z0-9_./~][A-Za-z0-9_./~:+-]*"  # func, file.c:120, file.c:func, ns::func
)


def check_location(text: str) -> str:
    """A gdb location that names a place and runs nothing, or OptionError with one line."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise OptionError(
            "the location contains control characters; give a function, FILE:LINE or *ADDRESS"
        )
    if not _LOCATION.fullmatch(text):
        raise OptionError(
            f"'{text}' is not a location this takes: give a function (parse_header), "
            "FILE:LINE (file.c:120) or *ADDRESS (*0x401234), without spaces"
        )
    return text


def _location(text: str) -> str:
    try:
        return check_location(text)
    except OptionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def watch_options_to_argv(opts: WatchOptions) -> list[str]:
    """The argv that parse_watch_args turns back into `opts` (for the launcher).

    --engine is always there: inside gdb its default is `set qzn engine`, not the launcher's.
    """
    argv: list[str] = []
    defaults = WatchOptions()
    flag_names = {"length": "--len", "if_cond": "--if"}
    for f in fields(WatchOptions):
        if f.name == "address":
            continue
        value = getattr(opts, f.name)
        if value == getattr(defaults, f.name) and f.name != "engine":
            continue
        flag = flag_names.get(f.name, "--" + f.name.replace("_", "-"))
        if isinstance(value, bool):
            argv.append(flag)
        else:
            argv += [flag, hex(value) if f.name == "cr3" else str(value)]
    argv.append(opts.address)
    return argv


def gdb_quote(arg: str) -> str:
    """Quote one argument for gdb.string_to_argv (libiberty buildargv), not for a shell:
    buildargv takes a backslash as an escape even inside single quotes."""
    if arg and re.fullmatch(r"[A-Za-z0-9_.,:/@%+=&*$\[\]()<>-]+", arg):
        return arg
    return "'" + arg.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qzn_watch_line(argv: list[str]) -> str:
    """The `qzn-watch ARGV` command line: every word quoted for gdb, ADDR (the last word)
    after `--` when it looks like an option."""
    if argv[-1].startswith("-"):
        argv = [*argv[:-1], "--", argv[-1]]
    return " ".join(["qzn-watch"] + [gdb_quote(arg) for arg in argv])
