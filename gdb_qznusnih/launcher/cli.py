"""`qznusnih`: the launcher that runs gdb with the extension loaded.

    qznusnih watch ADDR PID [OPTIONS]          attach to PID and watch ADDR
    qznusnih watch ADDR [PID] --remote HOST:PORT   the same through gdbserver
    qznusnih run [OPTIONS] [--at LOCATION] --watch EXPR -- PROG [ARGS...]
    qznusnih gdbinit                           the ~/.gdbinit lines for this copy

It checks its input before starting gdb (see preflight.py), builds gdb's command line only from
validated values (never through a shell), supervises gdb, and if gdb dies with the watch armed
clears the target's debug registers itself (see ptrace_cleanup.py).  Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from gdb_qznusnih import __version__
from gdb_qznusnih.arm.describe import KILLED_EXIT_BASE
from gdb_qznusnih.launcher import perf_watch, preflight, procfs, remote
from gdb_qznusnih.launcher.ptrace_cleanup import CleanupError, DebugRegisterCleaner
from gdb_qznusnih.options import (
    OptionError,
    WatchOptions,
    add_at_every_option,
    add_watch_options,
    check_expression,
    check_location,
    gdb_quote,
    options_from_namespace,
    qzn_watch_line,
    raising_parser,
    watch_options_to_argv,
)
from gdb_qznusnih.sinks.status_line import STATUS_FD_ENV

PROG = "qznusnih"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # gdb_qznusnih/
LOADER = os.path.join(PACKAGE_DIR, "loader.py")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_S = 10  # after the stop signal, how long gdb gets to detach and print the summary
TERM_GRACE_S = 5  # after SIGTERM, before SIGKILL
READY_POLL_S = 0.002  # while a stop request waits for gdb to be ready for it
FREEZE_TIMEOUT_S = 1.0
SWITCH_INTERVAL_S = 0.0001  # for a SIGSTOPped gdb to be seen stopped
PROBE_TIMEOUT_S = 60
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Watch one byte (or an aligned 2/4/8-byte word) of a Linux process with a hardware watchpoint
and log every read and every write of it, with the backtrace that led there.  It runs gdb
with the gdb-qznusnih extension loaded; the target keeps running and is left running."""

EPILOG = """\
examples:
  qznusnih watch 0x55d0c3a0b04b 4242           like the original "ADDR PID"
  qznusnih watch 55d0c3a0b04b 4242 --log /tmp/w --count 100
  qznusnih watch '&counter' 4242 --access w --len 4
  qznusnih watch '&counter' --remote board:2345 --file ./prog   gdbserver --attach :2345 PID
  qznusnih watch '&counter' 4242 --remote board:2345           gdbserver --multi :2345
  qznusnih run --watch '&counter' -- ./myprog arg1 arg2
  qznusnih run --at-every make_buf --watch 'buf+3' -- ./myprog    each call's buffer
  qznusnih report /tmp/w.jsonl --format html --output /tmp/w.html
  echo "$(qznusnih gdbinit)" >> ~/.gdbinit     then 'qzn-watch ADDR' inside gdb

ADDR is a hex address (0x optional, as in the original) or any gdb expression giving an
address, such as '&buf[3]' or '$rsp+8'.  A bare word of hex digits with at least one digit is
taken as hex; put a variable with such a name in parentheses.

Ctrl-C, SIGTERM or SIGHUP: the watch is removed, the target detached and left running, the
summary printed, exit status 0.  Exit status 1: an error (one line on stderr); 2: bad options;
3: the perf engine could not log every access (the "lost:" line and the log say how many);
128+N: the target was killed by signal N (139: SIGSEGV), as the last line says."""


class LauncherError(Exception):
    """A user-facing failure; the message is one line."""


# ---------------------------------------------------------------- parsing


_Parser = raising_parser(OptionError)


@dataclass
class Request:
    """What the user asked for, validated."""

    command: str  # watch, run or gdbinit
    options: WatchOptions = field(default_factory=WatchOptions)
    pid: int | None = None
    program: list[str] = field(default_factory=list)
    at: str | None = None  # run: the location to arm at (None: main, or the entry point)
    ring_pages: int | None = None  # perf engine only, hidden: tests of the loss accounting
    remote: tuple[str, int] | None = None  # --remote HOST:PORT
    program_file: str | None = None  # --file: the program gdbserver runs, for its symbols
    sysroot: str | None = None
    gdb: str | None = None  # --gdb PATH


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    watch = commands.add_parser(
        "watch",
        help="attach to a running process and watch ADDR",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    watch.add_argument("address", metavar="ADDR", help="hex address or gdb expression")
    watch.add_argument(
        "target_pid", metavar="PID", nargs="?", help="decimal process id (with --remote: optional)"
    )
    add_watch_options(watch, whole_system=False)
    board = watch.add_argument_group("remote target (gdbserver)").add_argument
    board(
        "--remote",
        metavar="HOST:PORT",
        help="watch through gdbserver: the process it has (gdbserver --attach :PORT PID, "
        "or gdbserver :PORT PROG), or PID attached through gdbserver --multi :PORT",
    )
    board("--file", dest="program_file", metavar="PROG", help="the program, for its symbols")
    board("--sysroot", metavar="DIR", help="the board's root file system, for its libraries")
    board("--gdb", metavar="PATH", help="the gdb to run, e.g. x86_64-poky-linux-gdb ($QZN_GDB)")
    # Pages of each perf ring (a power of 2), for tests of the loss accounting.
    watch.add_argument("--ring-pages", type=_ring_pages, help=argparse.SUPPRESS)
    run = commands.add_parser(
        "run",
        help="start PROG under gdb and watch EXPR from main (or --at LOCATION)",
        usage=f"{PROG} run [OPTIONS] --watch EXPR -- PROG [ARGS...]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    run.add_argument(
        "--watch",
        dest="address",
        metavar="EXPR",
        required=True,
        help="what to watch once main (or --at LOCATION) is reached, e.g. '&counter'",
    )
    add_run_location_options(run)
    add_watch_options(run, whole_system=False)
    commands.add_parser(
        "gdbinit", help="print the lines for ~/.gdbinit for this installed copy", allow_abbrev=False
    )
    # Listed for --help only: main() hands `report` to report.main with its own parser.
    commands.add_parser("report", help="summarise a PREFIX.jsonl log (text, JSON or HTML)")
    return parser


def add_run_location_options(run: argparse.ArgumentParser) -> None:
    """--at and --at-every: where `run` arms the watch instead of main."""
    where = run.add_argument_group("where to arm (default: main, or the entry point)")
    where = where.add_mutually_exclusive_group()
    where.add_argument(
        "--at",
        metavar="LOCATION",
        help="arm at LOCATION and evaluate EXPR there: a function, FILE:LINE or *ADDRESS",
    )
    add_at_every_option(where.add_argument)


def _ring_pages(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a power of 2")
    return value


def parse_pid(text: str) -> int:
    """A decimal PID; say which argument is which when the order looks swapped."""
    if re.fullmatch(r"[0-9]+", text) and 0 < int(text) < preflight.PID_MAX_LIMIT:
        return int(text)
    looks_hex = re.fullmatch(r"(0[xX])?[0-9a-fA-F]*[a-fA-FxX][0-9a-fA-F]*", text)
    hint = " (the order is ADDR PID)" if looks_hex else ""
    raise OptionError(
        f"'{text}' is not a PID: give the decimal process id{hint}, e.g. from 'pgrep NAME'"
    )


def normalize_address(text: str) -> str:
    """ADDR as qzn-watch should see it: bare hex gets its 0x, other text must be safe."""
    text = check_expression(text)
    value = preflight.literal_address(text)
    return f"{value:#x}" if value is not None else text


def _check_text(flag: str, value: str | None) -> None:
    if value is not None and remote.has_control_characters(value):
        raise OptionError(f"{flag} contains control characters")


def parse_request(argv: list[str]) -> Request:
    """Parse and validate the command line; raise OptionError with a one-line message."""
    program: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:
        split = argv.index("--")
        argv, program = argv[:split], argv[split + 1 :]
    namespace = build_parser().parse_args(argv)
    if namespace.command is None:
        raise OptionError(f"give a command: watch, run or gdbinit (see '{PROG} --help')")
    if namespace.command == "gdbinit":
        return Request("gdbinit")
    options = options_from_namespace(namespace)
    if options.pid is not None or options.cr3 is not None or options.system:
        raise OptionError(
            "--pid, --cr3 and --system are for QEMU mode inside gdb; "
            f"'{PROG} {namespace.command}' attaches to one process"
        )
    options.address = normalize_address(options.address)
    if options.follow_exec is not None:
        options.follow_exec = check_expression(options.follow_exec)
    _check_text("--style", options.style)
    if namespace.command == "watch":
        return _watch_request(namespace, options)
    if not program:
        raise OptionError(
            f"'{PROG} run' needs the program after '--', e.g. "
            f"'{PROG} run --watch &counter -- ./prog'"
        )
    at = check_location(namespace.at) if namespace.at is not None else options.at_every
    return Request("run", options, program=program, at=at)


def _watch_request(namespace: argparse.Namespace, options: WatchOptions) -> Request:
    _check_text("--gdb", namespace.gdb)
    if namespace.remote is None:
        if namespace.target_pid is None:
            raise OptionError(f"'{PROG} watch' needs ADDR PID, or ADDR --remote HOST:PORT")
        for flag, value in (("--file", namespace.program_file), ("--sysroot", namespace.sysroot)):
            if value is not None:
                raise OptionError(f"{flag} is for --remote; a local process has its own files")
        pid = parse_pid(namespace.target_pid)
        return Request(
            "watch", options, pid=pid, ring_pages=namespace.ring_pages, gdb=namespace.gdb
        )
    if options.engine == "perf":
        raise OptionError(
            "--engine perf watches a process of this machine only; with --remote the engine is gdb"
        )
    pid = parse_pid(namespace.target_pid) if namespace.target_pid is not None else None
    return Request(
        "watch",
        dataclasses.replace(options, engine="gdb"),
        pid=pid,
        remote=remote.parse_host_port(namespace.remote),
        program_file=remote.check_file("--file", namespace.program_file, directory=False),
        sysroot=remote.check_file("--sysroot", namespace.sysroot, directory=True),
        gdb=namespace.gdb,
    )


# ---------------------------------------------------------------- gdb command line


def qzn_watch_command(options: WatchOptions) -> str:
    """The `qzn-watch ...` line for `options`."""
    return qzn_watch_line(watch_options_to_argv(options))


def pygments_home() -> str | None:
    """The directory holding the pygments this Python would import, if any."""
    spec = importlib.util.find_spec("pygments")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))


def extension_paths() -> list[str]:
    """Directories gdb's Python needs: our package's parent and the home of our pygments."""
    paths = [os.path.dirname(PACKAGE_DIR)]
    home = pygments_home()
    if home is not None and home not in paths:
        paths.append(home)
    for path in paths:
        _check_text("a package path", path)
    return paths


def python_path_command(paths: list[str]) -> str:
    appends = "; ".join(f"sys.path.append({path!r})" for path in paths)
    return f"python import sys; {appends}"


# gdb's stdout to /dev/null while it connects: its chatter (libthread_db, the frame the
# target stopped in) would land in the record stream.
_QUIET_ON = ("set logging file /dev/null", "set logging redirect on", "set logging enabled on")
_QUIET_OFF = "set logging enabled off"


def _gdb_argv(gdb: str, paths: list[str], commands: list[str], early=()) -> list[str]:
    """`gdb -nx -batch EARLY` with this package importable and loaded, then each command."""
    argv = [gdb, "-nx", "-batch", *early, "-ex", python_path_command(paths), "-x", LOADER]
    for command in commands:
        argv += ["-ex", command]
    return argv


def gdb_watch_argv(gdb: str, pid: int, options: WatchOptions, paths: list[str]) -> list[str]:
    # Attach quietly; arm/attach.py reports a failure.
    attach = f"python from gdb_qznusnih.arm import attach; attach.attach({int(pid)})"
    return _gdb_argv(gdb, paths, [*_QUIET_ON, attach, _QUIET_OFF, qzn_watch_command(options)])


def run_to_command(location: str | None) -> str:
    """The python line that starts the program and stops it where the watch is armed."""
    if location is not None:
        location = check_location(location)  # a place, nothing gdb would evaluate
    return f"python from gdb_qznusnih.arm import at_location; at_location.run_to({location!r})"


def gdb_remote_argv(request: Request, gdb: str, paths: list[str]) -> list[str]:
    """gdb on a gdbserver: connect (and attach PID through --multi), then watch.

    No auto-loaded scripts: the program and libraries may come from the board (target:).
    """
    host, port = request.remote
    program = gdb_quote(request.program_file) if request.program_file is not None else None
    connect = remote.connect_commands(
        remote.gdb_address(host, port), request.pid, program, request.sysroot
    )
    commands = [*_QUIET_ON, *connect, _QUIET_OFF, qzn_watch_command(request.options)]
    return _gdb_argv(gdb, paths, commands, early=("-iex", "set auto-load off"))


def gdb_run_argv(
    gdb: str,
    program: list[str],
    options: WatchOptions,
    paths: list[str],
    at: str | None = None,
) -> list[str]:
    # The program runs only once gdb has found where to stop it: a typo never runs it unwatched.
    commands = ["set breakpoint pending off", run_to_command(at), qzn_watch_command(options)]
    return [*_gdb_argv(gdb, paths, commands), "--args", *program]


GDB_ENV = "QZN_GDB"


def find_gdb(asked: str | None = None) -> str:
    """The gdb to run: --gdb PATH, else $QZN_GDB, else gdb on PATH."""
    asked = asked or os.environ.get(GDB_ENV) or None
    if asked is not None:
        _check_text("--gdb", asked)
        found = shutil.which(asked)
        if found is None:
            raise LauncherError(
                f"gdb '{asked}' (from --gdb or {GDB_ENV}) is not an executable; give its path, "
                "e.g. the SDK's sysroots/x86_64-pokysdk-linux/usr/bin/x86_64-poky-linux/"
                "x86_64-poky-linux-gdb"
            )
        return os.path.abspath(found)
    gdb = shutil.which("gdb")
    if gdb is None:
        raise LauncherError("gdb not found on PATH; install it with 'apt-get install gdb'")
    return gdb


def probe_gdb(gdb: str) -> list[str]:
    """Check gdb has Python; return its Python's sys.path."""
    try:
        done = subprocess.run(
            [gdb, "-nx", "-batch", "-ex", preflight.PROBE_COMMAND],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LauncherError(
            f"cannot run {gdb} ({error}); reinstall it with 'apt-get install gdb'"
        ) from None
    sys_path = preflight.parse_gdb_probe(gdb, done.returncode, done.stdout, done.stderr)
    problem = remote.python_version_problem(gdb, preflight.gdb_python_version(done.stdout))
    if problem is not None:
        raise LauncherError(problem)
    return sys_path


def gdbinit_lines(gdb_sys_path: list[str]) -> list[str]:
    """The ~/.gdbinit lines for this copy: our pygments when gdb lacks it, then the loader."""
    lines = [f"# gdb-qznusnih {__version__}: qzn-watch, qzn-unwatch, qzn-status"]
    home = pygments_home()  # the loader puts the package itself on sys.path
    if home is not None and home not in gdb_sys_path:
        _check_text("a package path", home)
        lines.append(python_path_command([home]))
    lines.append(f"source {LOADER}")
    return lines


# ---------------------------------------------------------------- gdb's stderr

_NOISE = re.compile(r"^\d+\s.*: No such file or directory\.$")  # source of the attach frame
# gdb's two-line warnings about a non-ASCII expression, before its real error about it.
_CHARSET_WARNINGS = re.compile(r"^warning: (charset conversion failure for|could not convert) '.*'")
_ARMED = re.compile(r"^qzn: watch \d+: ")  # the armed note of session.py's registry


def explain_attach_failure(pid: int, reason: str, start_time: str | None) -> str:
    """One line for a failed attach: gdb's reason, the real cause read from /proc, the fix."""
    head = f"gdb cannot attach to process {pid} ({reason.rstrip('.')})"
    try:
        target = preflight.read_target(pid)
        if start_time is not None and target.start_time != start_time:
            raise preflight.PreflightError(f"no process with PID {pid}")
        preflight.check_target(target)  # a zombie, or another tracer got there first
    except preflight.PreflightError as error:
        if str(error).startswith("no process with PID"):
            return f"{head}: it exited before gdb could attach; start it again and give the new PID"
        return f"{head}: {error}"
    if "not permitted" in reason:
        return f"{head}; {preflight.SCOPE_FIX}, and check the process is not set non-dumpable"
    return f"{head}; check the PID with 'ps -p {pid}' and try again"


_ENDED_BY_LOST_CONNECTION = re.compile(r"qzn: watch \d+ ended: lost the connection")


def explain_connect_failure(address: str, reason: str) -> str:
    """One line for a `target remote` that failed: refused, unreachable, not a stub."""
    head = f"cannot connect to gdbserver at {address} ({reason.rstrip('.')})"
    if "replied unexpectedly" in reason or "timeout" in reason.lower():
        return f"{head}: that port does not answer as gdbserver; check the port on the board"
    return (
        f"{head}; start 'gdbserver --attach :PORT PID' (or 'gdbserver --multi :PORT') "
        "on the board and check HOST:PORT"
    )


class StderrFilter:
    """Turns gdb's multi-line errors into one line; forwards everything else as it comes.

    It also notices the armed note, which tells the supervisor the watch is set up.
    """

    def __init__(
        self, target: preflight.Target | None, write, on_armed=None, armed_suffix: str = ""
    ) -> None:
        self.target = target
        self.write = write
        self.on_armed = on_armed
        self.armed_suffix = armed_suffix  # e.g. which engine and why
        self.traceback: list[str] | None = None
        self.silenced = False  # after a fatal error, the rest is its consequences
        self.skip_next = False  # the second line of a two-line warning
        self.remote: str | None = None  # --remote HOST:PORT, for its failures
        self.remote_pid: int | None = None  # the PID attached through gdbserver --multi
        self.lost_connection = False  # the watch ended on the stub going away

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if self.silenced or _NOISE.match(line):
            return
        if self.skip_next:
            self.skip_next = False
            return
        if _CHARSET_WARNINGS.match(line):
            self.skip_next = True  # "You may have the wrong value ..." or "please file a bug"
            return
        if self.traceback is not None:
            if line.startswith((" ", "\t")) or not line:
                return
            self.traceback = None
            self._fatal(f"gdb could not load the extension: {line}")
            return
        if line.startswith("Traceback (most recent call last):"):
            self.traceback = []
            return
        if self.remote is not None and self._remote_failure(line):
            return
        if line.startswith(preflight.ATTACH_FAILED_MARKER) and self.target is not None:
            reason = line[len(preflight.ATTACH_FAILED_MARKER) :].strip()
            self._fatal(explain_attach_failure(self.target.pid, reason, self.target.start_time))
            return
        if line.startswith("Python Exception <"):
            self._fatal("gdb: " + line.split(">: ", 1)[-1])
            return
        if _ENDED_BY_LOST_CONNECTION.match(line):
            self.lost_connection = True
        if self.on_armed is not None and _ARMED.match(line):
            self.on_armed()
            line += self.armed_suffix
        self.write(line + "\n")

    def _remote_failure(self, line: str) -> bool:
        """The connect or --multi attach step failed: say so in one line."""
        for marker in (preflight.CONNECT_FAILED_MARKER, preflight.ATTACH_FAILED_MARKER):
            if line.startswith(marker):
                reason = line[len(marker) :].strip()
                break
        else:
            return False
        if marker == preflight.CONNECT_FAILED_MARKER:
            self._fatal(explain_connect_failure(self.remote, reason))
        else:
            self._fatal(
                f"gdbserver at {self.remote} cannot attach to process {self.remote_pid} "
                f"({reason.rstrip('.')}); check the PID on the board and that gdbserver runs "
                "as 'gdbserver --multi :PORT'"
            )
        return True

    def close(self) -> None:
        if self.traceback is not None:
            self._fatal("gdb could not load the extension (Python error)")

    def _fatal(self, message: str) -> None:
        self.write(f"{PROG}: {message}\n")
        self.silenced = True


def _pump_stderr(stream, line_filter: StderrFilter) -> None:
    for raw in iter(stream.readline, b""):
        line_filter.feed(raw.decode("utf-8", errors="replace"))
    line_filter.close()


def _pump_stdout(read_fd: int, write_fd: int) -> None:
    """Copy gdb's stdout to ours; once ours is closed (`| head`), drain it to nowhere.

    gdb then never sees EPIPE, so the watch and its --log files go on to the end.
    """
    reader_gone = False
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        if reader_gone:
            continue
        try:
            _write_all(write_fd, chunk)
        except OSError:
            reader_gone = True
            _write_stderr(f"{PROG}: standard output closed; the --log files go on\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # our stderr is gone; gdb's output is not worth dying for


def _stdout_is_a_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


# ---------------------------------------------------------------- supervision


def _status_terminal(pipe_stderr: bool) -> tuple[tuple[int, ...], dict | None]:
    """Hand gdb our terminal for the live status line, since its stderr is a pipe."""
    if not pipe_stderr or not sys.stderr.isatty():
        return (), None
    fd = os.dup(sys.stderr.fileno())
    return (fd,), dict(os.environ, **{STATUS_FD_ENV: str(fd)})


class StopRequests:
    """Remembers the first SIGINT, SIGTERM or SIGHUP, from the launcher's start to its end.

    The handler only records the signal; the signal's byte on the wakeup pipe wakes the
    supervisor's select(), which acts on it as soon as gdb can take it.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at: float | None = None  # time.monotonic() of the first one
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict = {}
        self._previous_wakeup = -1

    def install(self) -> StopRequests:
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self.read_fd)
        os.close(self._write_fd)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "?"

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum, _frame) -> None:
        if self.signum is None:
            self.signum, self.at = signum, time.monotonic()


def _cpu_time_ns(pid: int) -> int | None:
    """Nanoseconds the process's main thread has run (/proc/PID/schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Supervisor:
    """Runs gdb in its own session and ends it cleanly on our stop signals.

    A stop request is acted on when gdb can take it.  Before gdb attaches, gdb is frozen,
    checked and killed: the target was never touched.  Between the attach and the watch
    running, the request waits: gdb would lose a signal while it starts the watch.  Once the
    target runs under `continue`, gdb gets the same signal, which its monitor names and turns
    into remove-the-watch, summarise, detach.  A gdb that does not end is continued (it may
    be stopped) and escalated: SIGTERM, then SIGKILL, then the debug registers are cleared.
    """

    def __init__(
        self,
        argv: list[str],
        target: preflight.Target | None,
        stops: StopRequests,
        pipe_stderr: bool,
        stdin,
        pipe_stdout: bool = False,
    ) -> None:
        self.argv = argv
        self.target = target
        self.stops = stops
        self.pipe_stderr = pipe_stderr
        self.pipe_stdout = pipe_stdout
        self.stdin = stdin
        self.proc: subprocess.Popen | None = None
        self.armed = threading.Event()  # gdb printed the armed note
        self.forwarded_at: float | None = None  # gdb got the stop signal
        self.escalated_at: float | None = None  # gdb got our SIGTERM
        self.killed = False  # we sent SIGKILL
        self.cancelled = False  # killed before it attached: the target was never touched
        self._armed_run_time: int | None = None  # the target's CPU time once gdb armed
        self._pumps: list[threading.Thread] = []
        self.armed_suffix = ""  # added to gdb's armed line
        self.remote: str | None = None  # --remote HOST:PORT
        self.remote_pid: int | None = None
        self.line_filter: StderrFilter | None = None  # gdb's stderr, when piped

    # -- life cycle ---------------------------------------------------------

    def run(self) -> int:
        if self.stops.signum is not None:
            _write_stderr(f"{PROG}: {self.stops.name} received before gdb started; nothing done\n")
            return EXIT_OK
        cleaner = self._prepare_cleanup()
        # The pumps must not hold the GIL for the default 5 ms while the cleanup waits.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._start()
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            died_at = self._supervise(pidfd)
        finally:
            os.close(pidfd)
        returncode = self.proc.wait()  # already a zombie: at once
        if self.cancelled:
            self._join_pumps()
            _write_stderr(
                f"{PROG}: {self.stops.name} received before gdb attached; "
                f"process {self.target.pid} was not touched\n"
            )
            return EXIT_OK
        if returncode < 0 or self.escalated_at is not None:
            return self._after_gdb_died(returncode, cleaner, died_at)
        self._join_pumps()
        if returncode > KILLED_EXIT_BASE:  # qzn-watch: the target died of signal N
            return returncode
        if returncode == perf_watch.EXIT_LOST:  # qzn-watch's perf engine: accesses lost
            return perf_watch.EXIT_LOST
        if self.line_filter is not None and self.line_filter.lost_connection:
            _write_stderr(
                f"{PROG}: lost the connection to {self.line_filter.remote or 'the target'} "
                "mid-watch; the records so far are logged, the program's state on the board "
                "is unknown\n"
            )
            return EXIT_ERROR
        return EXIT_OK if returncode == 0 else EXIT_ERROR

    def _prepare_cleanup(self) -> DebugRegisterCleaner | None:
        if self.target is None:
            return None
        try:
            return DebugRegisterCleaner(
                self.target.pid,
                resume_if_stopped=self.target.status.state not in ("T", "t"),
                expected_start_time=self.target.start_time,
            )
        except CleanupError:
            return None  # not x86: said when it is needed

    def _start(self) -> None:
        status_fds, env = _status_terminal(self.pipe_stderr)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=self.stdin,
                start_new_session=True,
                stdout=subprocess.PIPE if self.pipe_stdout else None,
                stderr=subprocess.PIPE if self.pipe_stderr else None,
                pass_fds=status_fds,
                env=env,
            )
        except OSError as error:
            raise LauncherError(f"cannot start {self.argv[0]}: {error.strerror}") from None
        finally:
            for fd in status_fds:
                os.close(fd)
        if self.pipe_stderr:
            self.line_filter = line_filter = StderrFilter(
                self.target, _write_stderr, on_armed=self.armed.set, armed_suffix=self.armed_suffix
            )
            line_filter.remote, line_filter.remote_pid = self.remote, self.remote_pid
            self._spawn_pump(_pump_stderr, self.proc.stderr, line_filter)
        if self.pipe_stdout:
            self._spawn_pump(_pump_stdout, self.proc.stdout.fileno(), sys.stdout.fileno())

    def _spawn_pump(self, function, *args) -> None:
        pump = threading.Thread(target=function, args=args, daemon=True)
        pump.start()
        self._pumps.append(pump)

    def _join_pumps(self) -> None:
        for pump in self._pumps:
            pump.join(timeout=2)

    def _supervise(self, pidfd: int) -> float:
        """Wait for gdb to end, acting on stop requests; return when it died (monotonic)."""
        while True:
            readable, _, _ = select.select([pidfd, self.stops.read_fd], [], [], self._timeout())
            if pidfd in readable:
                return time.monotonic()
            self.stops.drain()
            if self.stops.signum is not None:
                self._act_on_stop()

    def _timeout(self) -> float | None:
        if self.stops.signum is None:
            return None
        if self.forwarded_at is None:
            return READY_POLL_S
        return max(0.0, self._next_deadline() - time.monotonic())

    def _next_deadline(self) -> float:
        if self.escalated_at is not None:
            return self.escalated_at + TERM_GRACE_S
        return self.forwarded_at + STOP_GRACE_S

    # -- stopping -----------------------------------------------------------

    def _act_on_stop(self) -> None:
        now = time.monotonic()
        if self.killed or self.cancelled:
            return
        if self.forwarded_at is None:
            if self.stops.at + STOP_GRACE_S < now:  # gdb never got ready: as if it ignored it
                self.forwarded_at = self.stops.at
            elif self._ready_for_stop():
                self._send(self.stops.signum)
                self.forwarded_at = now
                return
            else:
                return
        if now < self._next_deadline():
            return
        if self.escalated_at is None:
            _write_stderr(f"{PROG}: gdb did not stop within {STOP_GRACE_S} s; sending SIGTERM\n")
            self._send(signal.SIGTERM)
            self.escalated_at = now
        else:
            self._send(signal.SIGKILL)
            self.killed = True

    def _ready_for_stop(self) -> bool:
        """Whether gdb can take a stop signal now; kills a gdb that has not attached yet."""
        if self.target is None:  # `run`: as before, gdb gets it at once
            return True
        if not self.armed.is_set():
            if not self._attached():
                self._cancel_before_attach()
            return False
        if procfs.state(self.proc.pid) == "T":
            self._signal(signal.SIGCONT)  # someone stopped gdb: it must run to end the watch
        # Armed, and the target has left the stop of the attach: gdb is in `continue`, where
        # its interrupt and its monitor's signal relay work.  A hot target is in a hit's stop
        # most of the time, so CPU time it gained since the armed note counts as well.
        run_time = _cpu_time_ns(self.target.pid)
        if self._armed_run_time is None:
            self._armed_run_time = run_time
        state = procfs.state(self.target.pid)
        return state not in ("t", "") or run_time != self._armed_run_time

    def _attached(self) -> bool:
        return procfs.tracer_pid(self.target.pid) in procfs.thread_ids(self.proc.pid)

    def _cancel_before_attach(self) -> None:
        """Freeze gdb, and if it has not attached (it cannot now), kill it."""
        self._signal(signal.SIGSTOP)
        deadline = time.monotonic() + FREEZE_TIMEOUT_S
        while procfs.state(self.proc.pid) not in ("T", "Z", "") and time.monotonic() < deadline:
            time.sleep(0.0005)
        if self._attached():  # it got there first: wait for the watch, then stop it
            self._signal(signal.SIGCONT)
            return
        self._signal(signal.SIGKILL)
        self.cancelled = True

    def _send(self, signum: int) -> None:
        """Signal gdb; a stopped gdb is continued, or it could not act on it."""
        self._signal(signum)
        if signum != signal.SIGKILL and procfs.state(self.proc.pid) == "T":
            self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.proc.pid, signum)  # still our unreaped child: the pid is its own
        except ProcessLookupError:
            pass

    # -- gdb died -----------------------------------------------------------

    def _after_gdb_died(self, returncode: int, cleaner, died_at: float) -> int:
        how = (
            f"killed by {signal.Signals(-returncode).name}"
            if returncode < 0
            else f"exited with status {returncode} after SIGTERM"
        )
        if self.target is None:  # `run`: gdb started the program and took it along
            self._join_pumps()
            _write_stderr(f"{PROG}: gdb was {how}\n")
            return EXIT_ERROR
        try:  # at once: the target traps at its next access of the byte
            if cleaner is None:
                raise CleanupError(f"clearing debug registers is not supported here ({how})")
            result = cleaner.clear(since=died_at).summary()
        except CleanupError as error:
            result = f"could not clear its debug registers: {error}"
        self._join_pumps()
        _write_stderr(f"{PROG}: gdb was {how} while watching; {result}\n")
        return EXIT_ERROR


# ---------------------------------------------------------------- commands


def _watch(request: Request, stops: StopRequests) -> int:
    if request.remote is not None:
        return _watch_remote(request, stops)
    target = preflight.read_target(request.pid)
    preflight.check_target(target, allow_tracer=True)
    try:
        engine, why = perf_watch.choose_engine(request.options, request.pid)
    except perf_watch.EngineError as error:
        raise LauncherError(str(error)) from None
    if engine == "perf":
        if request.options.log:
            preflight.check_log_prefix(request.options.log)
        try:
            return perf_watch.watch_with_perf(
                request.options, target, stops, why, request.ring_pages
            )
        except perf_watch.EngineError as error:
            raise LauncherError(str(error)) from None
    preflight.check_target(target)
    preflight.check_ptrace_permission(
        target, preflight.read_my_status(), preflight.read_ptrace_scope()
    )
    address = preflight.literal_address(request.options.address)
    if address is not None:
        warning = preflight.check_address(
            address, request.options.length, target, request.options.access
        )
        if warning:
            _write_stderr(f"{PROG}: {warning}\n")
    gdb = _checked_gdb(request)
    # The gdb engine chosen here: qzn-watch's armed line stays as it was.
    options = _for_qzn_watch(request.options, "gdb")
    argv = gdb_watch_argv(gdb, request.pid, options, extension_paths())
    # With --log behind a pipe, our pump keeps the files going when the reader leaves.
    pipe_stdout = request.options.log is not None and _stdout_is_a_pipe()
    supervisor = Supervisor(
        argv, target, stops, pipe_stderr=True, stdin=subprocess.DEVNULL, pipe_stdout=pipe_stdout
    )
    supervisor.armed_suffix = f"; engine gdb ({why})"
    return supervisor.run()


def _checked_gdb(request: Request) -> str:
    """Before gdb starts: the log prefix checked, then the gdb to run, found and probed."""
    if request.options.log:
        preflight.check_log_prefix(request.options.log)
    gdb = find_gdb(request.gdb)
    probe_gdb(gdb)
    return gdb


def _for_qzn_watch(options: WatchOptions, engine: str) -> WatchOptions:
    """The options for the qzn-watch line gdb runs: `engine`, and --stack-bytes (a perf
    engine setting) left at its default, so the line carries no perf-only option."""
    return dataclasses.replace(options, engine=engine, stack_bytes=WatchOptions().stack_bytes)


def _watch_remote(request: Request, stops: StopRequests) -> int:
    """Through gdbserver: nothing here reads the local /proc, the process is the board's."""
    host, port = request.remote
    remote.check_loopback_listener(host, port)
    gdb = _checked_gdb(request)
    request = dataclasses.replace(request, options=_for_qzn_watch(request.options, "auto"))
    argv = gdb_remote_argv(request, gdb, extension_paths())
    pipe_stdout = request.options.log is not None and _stdout_is_a_pipe()
    supervisor = Supervisor(
        argv, None, stops, pipe_stderr=True, stdin=subprocess.DEVNULL, pipe_stdout=pipe_stdout
    )
    supervisor.remote = remote.gdb_address(host, port)
    supervisor.remote_pid = request.pid
    supervisor.armed_suffix = f"; engine gdb (through gdbserver at {supervisor.remote})"
    return supervisor.run()


def _run(request: Request, stops: StopRequests) -> int:
    program = request.program[0]
    resolved = shutil.which(program) if "/" not in program else program
    if resolved is None or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise LauncherError(f"program '{program}' not found or not executable; give its path")
    gdb = _checked_gdb(request)
    program_argv = [resolved, *request.program[1:]]
    argv = gdb_run_argv(gdb, program_argv, request.options, extension_paths(), request.at)
    # A terminal stays out of gdb's new session; piped input reaches the program.
    stdin = subprocess.DEVNULL if sys.stdin is None or sys.stdin.isatty() else None
    return Supervisor(argv, None, stops, pipe_stderr=False, stdin=stdin).run()


def _gdbinit() -> int:
    gdb_sys_path = probe_gdb(find_gdb())
    print("\n".join(gdbinit_lines(gdb_sys_path)))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        from gdb_qznusnih.report import cli as report  # only this subcommand needs it

        return report.main(argv[1:])
    try:
        request = parse_request(argv)
    except OptionError as error:
        _write_stderr(f"{PROG}: {error}\n")
        return EXIT_USAGE
    try:
        if request.command == "gdbinit":
            return _gdbinit()
        # From here on a stop signal is never lost: it is remembered until gdb can take it.
        stops = StopRequests().install()
        try:
            return (_watch if request.command == "watch" else _run)(request, stops)
        finally:
            stops.uninstall()
    except (LauncherError, preflight.PreflightError, OptionError) as error:
        _write_stderr(f"{PROG}: {error}\n")
        return EXIT_USAGE if isinstance(error, OptionError) else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C during `gdbinit`: nothing was touched


if __name__ == "__main__":
    sys.exit(main())
