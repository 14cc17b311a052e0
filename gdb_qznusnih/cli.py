"""`qznusnih`: the launcher that runs gdb with the extension loaded.

    qznusnih watch ADDR PID [OPTIONS]          attach to PID and watch ADDR
    qznusnih run [OPTIONS] --watch EXPR -- PROG [ARGS...]
    qznusnih gdbinit                           the ~/.gdbinit lines for this copy

It checks its input before starting gdb (see preflight.py), builds gdb's command line only from
validated values (never through a shell), supervises gdb, and if gdb dies with the watch armed
clears the target's debug registers itself (see ptrace_cleanup.py).  Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from gdb_qznusnih import __version__, preflight
from gdb_qznusnih.options import (
    OptionError,
    WatchOptions,
    add_watch_options,
    check_expression,
    options_from_namespace,
    watch_options_to_argv,
)
from gdb_qznusnih.ptrace_cleanup import CleanupError, clear_debug_registers
from gdb_qznusnih.status_line import STATUS_FD_ENV

PROG = "qznusnih"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
LOADER = os.path.join(PACKAGE_DIR, "loader.py")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_S = 10  # after our SIGINT, how long gdb gets to detach and print the summary
TERM_GRACE_S = 5  # after SIGTERM, before SIGKILL
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
  qznusnih run --watch '&counter' -- ./myprog arg1 arg2
  qznusnih report /tmp/w.jsonl --format html --output /tmp/w.html
  echo "$(qznusnih gdbinit)" >> ~/.gdbinit     then 'qzn-watch ADDR' inside gdb

ADDR is a hex address (0x optional, as in the original) or any gdb expression giving an
address, such as '&buf[3]' or '$rsp+8'.  A bare word of hex digits with at least one digit is
taken as hex; put a variable with such a name in parentheses.

Ctrl-C, SIGTERM or SIGHUP: the watch is removed, the target detached and left running, the
summary printed, exit status 0.  Exit status 1: an error (one line on stderr); 2: bad options."""


class LauncherError(Exception):
    """A user-facing failure; the message is one line."""


# ---------------------------------------------------------------- parsing


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (raised as OptionError) instead of usage + exit."""

    def error(self, message: str):
        raise OptionError(f"{message} (see '{self.prog} --help')")


@dataclass
class Request:
    """What the user asked for, validated."""

    command: str  # watch, run or gdbinit
    options: WatchOptions = field(default_factory=WatchOptions)
    pid: int | None = None
    program: list[str] = field(default_factory=list)


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
    watch.add_argument("target_pid", metavar="PID", help="decimal process id")
    add_watch_options(watch, whole_system=False)
    run = commands.add_parser(
        "run",
        help="start PROG under gdb and watch EXPR from main",
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
        help="what to watch once main is reached, e.g. '&counter'",
    )
    add_watch_options(run, whole_system=False)
    commands.add_parser(
        "gdbinit", help="print the lines for ~/.gdbinit for this installed copy", allow_abbrev=False
    )
    # Listed for --help only: main() hands `report` to report.main with its own parser.
    commands.add_parser("report", help="summarise a PREFIX.jsonl log (text, JSON or HTML)")
    return parser


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
    if value is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
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
    if options.pid is not None or options.cr3 is not None:
        raise OptionError(
            "--pid and --cr3 are for QEMU mode inside gdb; "
            f"'{PROG} {namespace.command}' attaches to one process"
        )
    options.address = normalize_address(options.address)
    if options.follow_exec is not None:
        options.follow_exec = check_expression(options.follow_exec)
    _check_text("--log", options.log)
    _check_text("--style", options.style)
    if namespace.command == "watch":
        return Request("watch", options, pid=parse_pid(namespace.target_pid))
    if not program:
        raise OptionError(
            f"'{PROG} run' needs the program after '--', e.g. "
            f"'{PROG} run --watch &counter -- ./prog'"
        )
    return Request("run", options, program=program)


# ---------------------------------------------------------------- gdb command line


def gdb_quote(arg: str) -> str:
    """Quote one argument for gdb.string_to_argv (libiberty buildargv)."""
    if arg and re.fullmatch(r"[A-Za-z0-9_.,:/@%+=&*$\[\]()<>-]+", arg):
        return arg
    return "'" + arg.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qzn_watch_command(options: WatchOptions) -> str:
    """The `qzn-watch ...` line: every element quoted, ADDR last (after `--` if it looks
    like an option)."""
    argv = watch_options_to_argv(options)
    if argv[-1].startswith("-"):
        argv.insert(-1, "--")
    return " ".join(["qzn-watch"] + [gdb_quote(arg) for arg in argv])


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


def gdb_watch_argv(gdb: str, pid: int, options: WatchOptions, paths: list[str]) -> list[str]:
    # Attach with gdb's stdout sent to /dev/null: its chatter (libthread_db, the frame the
    # target stopped in) would land in the record stream.  Errors still reach stderr.
    return [
        gdb,
        "-nx",
        "-batch",
        "-ex",
        python_path_command(paths),
        "-x",
        LOADER,
        "-ex",
        "set logging file /dev/null",
        "-ex",
        "set logging redirect on",
        "-ex",
        "set logging enabled on",
        "-ex",
        f"attach {int(pid)}",
        "-ex",
        "set logging enabled off",
        "-ex",
        qzn_watch_command(options),
    ]


def gdb_run_argv(
    gdb: str, program: list[str], options: WatchOptions, paths: list[str]
) -> list[str]:
    # `start` (tbreak main + run) with pending breakpoints off: no main, no run.
    return [
        gdb,
        "-nx",
        "-batch",
        "-ex",
        python_path_command(paths),
        "-x",
        LOADER,
        "-ex",
        "set breakpoint pending off",
        "-ex",
        "start",
        "-ex",
        qzn_watch_command(options),
        "--args",
        *program,
    ]


def find_gdb() -> str:
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
    return preflight.parse_gdb_probe(gdb, done.returncode, done.stdout, done.stderr)


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
_ATTACH_FAILED = re.compile(r"^ptrace: (.*?)\.?$")


class StderrFilter:
    """Turns gdb's multi-line errors into one line; forwards everything else as it comes."""

    def __init__(self, pid: int | None, write) -> None:
        self.pid = pid
        self.write = write
        self.traceback: list[str] | None = None
        self.silenced = False  # after a fatal error, the rest is its consequences

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if self.silenced or _NOISE.match(line):
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
        attach = _ATTACH_FAILED.match(line)
        if attach and self.pid is not None:
            reason = attach.group(1)
            fix = preflight.SCOPE_FIX if "not permitted" in reason else "check the PID"
            self._fatal(f"gdb cannot attach to process {self.pid}: {reason}; {fix}")
            return
        if line.startswith("Python Exception <"):
            self._fatal("gdb: " + line.split(">: ", 1)[-1])
            return
        self.write(line + "\n")

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


def _write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # our stderr is gone; gdb's output is not worth dying for


# ---------------------------------------------------------------- supervision


def _status_terminal(pipe_stderr: bool) -> tuple[tuple[int, ...], dict | None]:
    """Hand gdb our terminal for the live status line, since its stderr is a pipe."""
    if not pipe_stderr or not sys.stderr.isatty():
        return (), None
    fd = os.dup(sys.stderr.fileno())
    return (fd,), dict(os.environ, **{STATUS_FD_ENV: str(fd)})


class Supervisor:
    """Runs gdb in its own session and turns our stop signals into one SIGINT for it."""

    def __init__(
        self, argv: list[str], target: preflight.Target | None, pipe_stderr: bool, stdin
    ) -> None:
        self.argv = argv
        self.target = target
        self.pipe_stderr = pipe_stderr
        self.stdin = stdin
        self.proc: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        self.forwarded = False  # gdb got its one SIGINT
        self.escalated = False

    def _on_stop_signal(self, signum, _frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        self._forward_stop()

    def _forward_stop(self) -> None:
        if self.forwarded or self.proc is None or self.proc.returncode is not None:
            return
        self.forwarded = True
        self._send(signal.SIGINT)
        signal.alarm(STOP_GRACE_S)

    def _on_alarm(self, _signum, _frame) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        if not self.escalated:
            self.escalated = True
            _write_stderr(f"{PROG}: gdb did not stop within {STOP_GRACE_S} s; sending SIGTERM\n")
            self._send(signal.SIGTERM)
            signal.alarm(TERM_GRACE_S)
        else:
            self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        try:
            os.kill(self.proc.pid, signum)  # still our unreaped child: the pid is its own
        except ProcessLookupError:
            pass

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in STOP_SIGNALS}
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_alarm)
        pump = None
        try:
            if self.stop_signal is not None:
                return EXIT_OK  # stopped before gdb started: nothing was touched
            status_fds, env = _status_terminal(self.pipe_stderr)
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=self.stdin,
                    start_new_session=True,
                    stderr=subprocess.PIPE if self.pipe_stderr else None,
                    pass_fds=status_fds,
                    env=env,
                )
            except OSError as error:
                raise LauncherError(f"cannot start {self.argv[0]}: {error.strerror}") from None
            if self.pipe_stderr:
                line_filter = StderrFilter(self.target.pid if self.target else None, _write_stderr)
                pump = threading.Thread(
                    target=_pump_stderr, daemon=True, args=(self.proc.stderr, line_filter)
                )
                pump.start()
            if self.stop_signal is not None:  # arrived while gdb was starting
                self._forward_stop()
            returncode = self.proc.wait()
            signal.alarm(0)
            if returncode < 0 or self.escalated:
                return self._after_gdb_died(returncode, pump)
            if pump is not None:
                pump.join(timeout=2)
            return EXIT_OK if returncode == 0 else EXIT_ERROR
        finally:
            signal.alarm(0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _after_gdb_died(self, returncode: int, pump: threading.Thread | None) -> int:
        how = (
            f"killed by {signal.Signals(-returncode).name}"
            if returncode < 0
            else f"exited with status {returncode} after SIGTERM"
        )
        # gdb dies of our SIGINT only before it has set up its handler: before attaching.
        requested = self.forwarded and returncode == -signal.SIGINT
        if self.target is None:  # `run`: gdb started the program and took it along
            _write_stderr(f"{PROG}: gdb was {how}\n")
            return EXIT_ERROR
        try:  # at once: the target traps at its next access of the byte
            report = clear_debug_registers(
                self.target.pid,
                resume_if_stopped=self.target.status.state not in ("T", "t"),
                expected_start_time=self.target.start_time,
            )
            result = report.summary()
        except CleanupError as error:
            result = f"could not clear its debug registers: {error}"
        if pump is not None:
            pump.join(timeout=2)
        if requested:
            _write_stderr(f"{PROG}: stopped before gdb attached; {result}\n")
            return EXIT_OK
        _write_stderr(f"{PROG}: gdb was {how} while watching; {result}\n")
        return EXIT_ERROR


# ---------------------------------------------------------------- commands


def _watch(request: Request) -> int:
    target = preflight.read_target(request.pid)
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
    if request.options.log:
        preflight.check_log_prefix(request.options.log)
    gdb = find_gdb()
    probe_gdb(gdb)
    argv = gdb_watch_argv(gdb, request.pid, request.options, extension_paths())
    return Supervisor(argv, target, pipe_stderr=True, stdin=subprocess.DEVNULL).run()


def _run(request: Request) -> int:
    program = request.program[0]
    resolved = shutil.which(program) if "/" not in program else program
    if resolved is None or not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise LauncherError(f"program '{program}' not found or not executable; give its path")
    if request.options.log:
        preflight.check_log_prefix(request.options.log)
    gdb = find_gdb()
    probe_gdb(gdb)
    argv = gdb_run_argv(gdb, [resolved, *request.program[1:]], request.options, extension_paths())
    # A terminal stays out of gdb's new session; piped input reaches the program.
    stdin = subprocess.DEVNULL if sys.stdin is None or sys.stdin.isatty() else None
    return Supervisor(argv, None, pipe_stderr=False, stdin=stdin).run()


def _gdbinit() -> int:
    gdb_sys_path = probe_gdb(find_gdb())
    print("\n".join(gdbinit_lines(gdb_sys_path)))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        from gdb_qznusnih import report  # only this subcommand needs it

        return report.main(argv[1:])
    try:
        request = parse_request(argv)
    except OptionError as error:
        _write_stderr(f"{PROG}: {error}\n")
        return EXIT_USAGE
    try:
        if request.command == "watch":
            return _watch(request)
        if request.command == "run":
            return _run(request)
        return _gdbinit()
    except (LauncherError, preflight.PreflightError, OptionError) as error:
        _write_stderr(f"{PROG}: {error}\n")
        return EXIT_USAGE if isinstance(error, OptionError) else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C before gdb started: nothing was touched


if __name__ == "__main__":
    sys.exit(main())
