"""Options of `qzn-watch`, shared by the gdb command and the launcher.  Pure: no gdb."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields

ACCESS_CHOICES = ("rw", "r", "w")
LENGTHS = (1, 2, 4, 8)
COLOR_CHOICES = ("auto", "always", "never")
DEFAULT_BT_DEPTH = 16
MAX_DURATION_S = 365 * 24 * 3600


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
    follow_exec: str | None = None

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


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of `qzn-watch` (without ADDR) to a parser."""
    add = parser.add_argument
    add(
        "--access",
        choices=ACCESS_CHOICES,
        default="rw",
        help="log reads and writes (rw, the default), reads only (r) or writes only (w)",
    )
    add(
        "--len",
        dest="length",
        type=_length,
        default=1,
        metavar="{1,2,4,8}",
        help="bytes to watch, default 1; ADDR must be aligned to it",
    )
    add(
        "--log",
        type=_log_prefix,
        metavar="PREFIX",
        help="write PREFIX.jsonl, PREFIX.reads.log and PREFIX.writes.log",
    )
    add(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        help="colour the terminal stream: auto (a terminal and NO_COLOR unset), always, never",
    )
    add("--count", type=_positive_int, metavar="N", help="stop after N logged accesses")
    add(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop after SECONDS of watching",
    )
    add(
        "--bt-depth",
        type=_positive_int,
        default=DEFAULT_BT_DEPTH,
        metavar="N",
        help=f"frames per backtrace, default {DEFAULT_BT_DEPTH}",
    )
    add(
        "--stop",
        action="store_true",
        help="stop the program after logging a hit, like a plain watchpoint",
    )
    add("--args", action="store_true", help="show function arguments in backtraces (slower)")
    add("--quiet", action="store_true", help="no per-access stream on the terminal")
    add(
        "--no-html",
        action="store_true",
        help="with --log, skip PREFIX.html at the end (it re-reads the whole log)",
    )
    add("--style", metavar="NAME", help="pygments style for colours")
    add(
        "--pid",
        type=_positive_int,
        metavar="PID",
        help="whole-system (QEMU) mode: keep only hits made by or for PID",
    )
    add(
        "--cr3",
        type=_hex_or_int,
        metavar="CR3",
        help="whole-system mode without kernel symbols: the address space to keep",
    )
    add(
        "--follow-exec",
        metavar="EXPR",
        help="after the target calls exec, watch EXPR in the new program",
    )


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises OptionError instead of printing and exiting."""

    def error(self, message: str):
        raise OptionError(f"{message} (see 'help {self.prog}')")

    def exit(self, status: int = 0, message: str | None = None):
        raise OptionError(message.strip() if message else f"{self.prog}: exit {status}")


def build_watch_parser(prog: str = "qzn-watch") -> argparse.ArgumentParser:
    parser = _RaisingParser(prog=prog, add_help=False, allow_abbrev=False)
    add_watch_options(parser)
    parser.add_argument("address", nargs="+", metavar="ADDR")
    return parser


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


def watch_options_to_argv(opts: WatchOptions) -> list[str]:
    """The argv that parse_watch_args turns back into `opts` (for the launcher)."""
    argv: list[str] = []
    defaults = WatchOptions()
    flag_names = {"length": "--len"}
    for f in fields(WatchOptions):
        if f.name == "address":
            continue
        value = getattr(opts, f.name)
        if value == getattr(defaults, f.name):
            continue
        flag = flag_names.get(f.name, "--" + f.name.replace("_", "-"))
        if isinstance(value, bool):
            argv.append(flag)
        else:
            argv += [flag, hex(value) if f.name == "cr3" else str(value)]
    argv.append(opts.address)
    return argv
