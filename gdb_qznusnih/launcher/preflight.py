"""Checks the launcher makes before it starts gdb, so bad input gets one clear line.

The checks are pure functions over the text of /proc files, so tests can feed them samples;
`read_target` is the thin part that reads /proc.  Every failure raises PreflightError, whose
message is one line that says what to do.  Nothing here touches the target.
"""

from __future__ import annotations

import ast
import os
import platform
import tempfile
from dataclasses import dataclass, field

from gdb_qznusnih.classify import kernel_layout
from gdb_qznusnih.launcher import procfs
from gdb_qznusnih.sinks import private_files

PF_KTHREAD = 0x00200000  # include/linux/sched.h
CAP_SYS_PTRACE = 19
PID_MAX_LIMIT = 4 * 1024 * 1024
PROBE_MARKER = "qzn-gdb-python-ok"
# gdb -nx -batch -ex PROBE_COMMAND prints the marker and gdb's Python sys.path.
PROBE_COMMAND = (
    f"python import sys; print({PROBE_MARKER!r}, repr(sys.path)); "
    f"print({PROBE_MARKER + '-version'!r}, *sys.version_info[:2])"
)
# The launcher's attach step (arm/attach.py) prints this, then gdb's reason, on failure.
ATTACH_FAILED_MARKER = "qzn-attach-failed:"
# And its `target remote HOST:PORT` step (--remote) this one.
CONNECT_FAILED_MARKER = "qzn-connect-failed:"
SCOPE_FIX = "run as root, or allow it with 'sudo sysctl kernel.yama.ptrace_scope=0'"


class PreflightError(Exception):
    """A problem found before starting gdb; the message is one line that says what to do."""


@dataclass
class ProcessStatus:
    """The fields of /proc/PID/status that the checks use."""

    name: str = "?"
    state: str = "?"
    tracer_pid: int = 0
    uids: tuple[int, ...] = ()
    gids: tuple[int, ...] = ()
    cap_eff: int = 0


@dataclass
class Target:
    """What the checks know about a process, read from /proc."""

    pid: int
    status: ProcessStatus
    flags: int = 0
    start_time: str | None = None
    maps: list[procfs.MapsLine] | None = field(default_factory=list)  # None: unreadable
    exe_readable: bool = True
    tracer_name: str | None = None


def parse_status(text: str) -> ProcessStatus:
    """Parse /proc/PID/status."""
    values = procfs.status_fields(text)

    def numbers(key: str) -> tuple[int, ...]:
        return tuple(int(part) for part in values.get(key, "").split())

    return ProcessStatus(
        name=values.get("Name", "?"),
        state=(values.get("State", "?") or "?")[0],
        tracer_pid=int(values.get("TracerPid", "0") or 0),
        uids=numbers("Uid"),
        gids=numbers("Gid"),
        cap_eff=int(values.get("CapEff", "0") or "0", 16),
    )


def parse_stat(text: str) -> tuple[str, int, str]:
    """(state, flags, start time) from /proc/PID/stat; the name may hold spaces and ')'."""
    rest = procfs.stat_fields(text)
    if len(rest) <= procfs.START_TIME:
        raise ValueError("short /proc/PID/stat")
    return rest[procfs.STATE], int(rest[procfs.FLAGS]), rest[procfs.START_TIME]


def module_offset(maps: list[procfs.MapsLine], pc: int) -> str | None:
    """`prog+0x1234`: the file mapped at pc and pc's offset from the file's first mapping
    (its load address: for a PIE or a library, the address objdump shows)."""
    holder = next((m for m in maps if m.contains(pc)), None)
    if holder is None or not holder.path.startswith("/"):
        return None
    base = min(m.start for m in maps if m.path == holder.path)
    return module_offset_text(holder.path, pc - base)


def module_offset_text(path: str, offset: int) -> str:
    return f"{os.path.basename(path)}+{offset:#x}"


def code_namer(pid: int):
    """module_offset for a live process, reading its maps at each call (once per site)."""

    def name(pc: int) -> str | None:
        try:
            return module_offset(procfs.parse_maps(procfs.read_text(f"/proc/{pid}/maps")), pc)
        except OSError:
            return None

    return name


def address_bits(machine: str | None = None) -> int:
    """The width of a user address on this machine."""
    machine = machine or platform.machine()
    return 64 if machine in ("x86_64", "amd64") else 32


def check_target(target: Target, allow_tracer: bool = False) -> None:
    """Refuse a zombie, a kernel thread or (unless `allow_tracer`: the perf engine never
    attaches) a process another debugger holds."""
    pid, status = target.pid, target.status
    label = f"process {pid} ({status.name})"
    if status.state in ("Z", "X"):
        raise PreflightError(
            f"{label} is a zombie: it has exited and has no memory left to watch; "
            "start the program again and give the new PID"
        )
    if target.flags & PF_KTHREAD or (target.maps == [] and not target.exe_readable):
        raise PreflightError(
            f"{label} is a kernel thread with no user memory; give the PID of a user-space "
            "process, or watch the kernel through QEMU (scripts/run_qemu_gdb.sh)"
        )
    if status.tracer_pid and not allow_tracer:
        tracer = f"process {status.tracer_pid} ({target.tracer_name or '?'})"
        raise PreflightError(
            f"{label} is already traced by {tracer}; detach that debugger first "
            f"(or kill {status.tracer_pid}), then try again"
        )


def check_ptrace_permission(
    target: Target, my_status: ProcessStatus, ptrace_scope: int | None
) -> None:
    """Refuse when the kernel would refuse gdb's PTRACE_ATTACH (uids, Yama ptrace_scope)."""
    label = f"process {target.pid} ({target.status.name})"
    privileged = bool(my_status.cap_eff & (1 << CAP_SYS_PTRACE))
    if ptrace_scope is not None and ptrace_scope >= 3:
        raise PreflightError(
            f"cannot trace {label}: kernel.yama.ptrace_scope is 3, which forbids ptrace to "
            "everyone until reboot; set kernel.yama.ptrace_scope=0 in /etc/sysctl.d and reboot"
        )
    if privileged:
        return
    if ptrace_scope == 2:
        raise PreflightError(
            f"cannot trace {label}: kernel.yama.ptrace_scope is 2 (admin only); " + SCOPE_FIX
        )
    my_uid = my_status.uids[0] if my_status.uids else os.getuid()
    my_gid = my_status.gids[0] if my_status.gids else os.getgid()
    theirs_uid = set(target.status.uids[:3])
    theirs_gid = set(target.status.gids[:3])
    if theirs_uid - {my_uid} or theirs_gid - {my_gid}:
        owner = target.status.uids[0] if target.status.uids else "?"
        raise PreflightError(
            f"cannot trace {label}: it belongs to uid {owner} and you are uid {my_uid}; "
            "run qznusnih as root (sudo) or as that user"
        )


def literal_address(text: str) -> int | None:
    """The value of ADDR when it is a plain hex number (`0x7ffd1234` or `7ffd1234`)."""
    body = text[2:] if text[:2].lower() == "0x" else text
    if body and all(ch in "0123456789abcdefABCDEF" for ch in body):
        if text[:2].lower() == "0x" or any(ch.isdigit() for ch in body):
            return int(body, 16)
    return None


def check_address(
    address: int, length: int, target: Target, access: str = "rw", machine: str | None = None
) -> str | None:
    """Refuse a kernel, unmapped or misaligned address; return a warning for a read-only one."""
    label = f"process {target.pid} ({target.status.name})"
    bits = address_bits(machine)
    if address >= 1 << bits:
        shown = f"{address:#x}"
        shown = shown if len(shown) <= 24 else shown[:21] + "..."
        raise PreflightError(
            f"{shown} does not fit in {bits} bits; give an address from /proc/{target.pid}/maps"
        )
    if address >= kernel_layout.user_limit(bits // 8):
        raise PreflightError(
            f"{address:#x} is a kernel address; 'qznusnih watch' watches user memory only "
            "(watch the kernel through QEMU: scripts/run_qemu_gdb.sh)"
        )
    if address % length:
        raise PreflightError(
            f"{address:#x} is not aligned to --len {length}; give an address that is a "
            f"multiple of {length}"
        )
    if target.maps is None:
        return None  # unreadable maps: gdb will tell
    mapping = next((m for m in target.maps if m.contains(address)), None)
    if mapping is None:
        raise PreflightError(f"{address:#x} is not mapped in {label}; " + _nearby(address, target))
    if "w" not in mapping.perms:
        what = "reads will be logged, but" if "r" in mapping.perms else "any access faults and"
        return (
            f"warning: {address:#x} is in a read-only mapping ({mapping.describe()}): "
            f"{what} a write there faults anyway"
            + (" (--access w will log nothing)" if access == "w" else "")
        )
    return None


def _nearby(address: int, target: Target) -> str:
    maps = target.maps or []
    below = [m for m in maps if m.end <= address]
    above = [m for m in maps if m.start > address]
    parts = []
    if below:
        parts.append(f"after {below[-1].describe()}")
    if above:
        parts.append(f"before {above[0].describe()}")
    gap = f"it falls {' and '.join(parts)}; " if parts else ""
    return f"{gap}use an address inside a mapping of /proc/{target.pid}/maps"


def check_log_prefix(prefix: str) -> None:
    """Refuse a --log PREFIX whose files could not be created."""
    directory = os.path.dirname(prefix) or "."
    if not os.path.basename(prefix):
        raise PreflightError(
            f"--log {prefix} names a directory; give a file prefix, e.g. "
            f"{os.path.join(prefix, 'watch')}"
        )
    if not os.path.isdir(directory):
        raise PreflightError(
            f"--log {prefix}: directory {directory} does not exist; create it "
            "first or choose another prefix"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".qzn-probe-", dir=directory)
    except OSError as error:
        raise PreflightError(
            f"--log {prefix}: cannot create files in {directory} "
            f"({error.strerror}); choose a writable directory"
        ) from None
    os.close(fd)
    os.unlink(probe)
    for suffix in (".jsonl", ".reads.log", ".writes.log", ".html"):
        path = prefix + suffix
        try:
            private_files.check_existing(path)  # checked again, on the open file, in gdb
        except private_files.UnsafeFileError as error:
            raise PreflightError(
                f"--log {prefix}: " + private_files.one_line_error(path, error, "prefix")
            ) from None
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise PreflightError(
                f"--log {prefix}: {path} exists and is not writable; remove it "
                "or choose another prefix"
            )


def parse_gdb_probe(gdb: str, returncode: int, stdout: str, stderr: str) -> list[str]:
    """gdb's Python sys.path from the probe's output; refuse a gdb without Python."""
    for line in stdout.splitlines():
        if line.startswith(PROBE_MARKER + " "):
            try:
                return [str(p) for p in ast.literal_eval(line[len(PROBE_MARKER) + 1 :])]
            except (ValueError, SyntaxError):
                return []
    reason = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
    reason = f" ({reason})" if reason else f" (exit status {returncode})"
    raise PreflightError(
        f"{gdb} cannot run Python{reason}; install a gdb built with Python, "
        "e.g. 'apt-get install gdb'"
    )


def gdb_python_version(stdout: str) -> tuple[int, int] | None:
    """major.minor of gdb's Python from the probe's output; None if it did not say."""
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == [PROBE_MARKER + "-version"] and all(w.isdigit() for w in words[1:3]):
            return int(words[1]), int(words[2])
    return None


def read_my_status() -> ProcessStatus:
    return parse_status(procfs.read_text("/proc/self/status"))


def read_ptrace_scope() -> int | None:
    try:
        return int(procfs.read_text("/proc/sys/kernel/yama/ptrace_scope").strip())
    except (OSError, ValueError):
        return None  # no Yama: classic ptrace rules


def read_target(pid: int) -> Target:
    """Read what the checks need from /proc; refuse a PID that does not exist."""
    if not 0 < pid < PID_MAX_LIMIT:
        raise PreflightError(
            f"{pid} is not a valid PID; give the decimal process id, e.g. from 'pgrep NAME'"
        )
    base = f"/proc/{pid}"
    try:
        status = parse_status(procfs.read_text(f"{base}/status"))
        state, flags, start_time = parse_stat(procfs.read_text(f"{base}/stat"))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        raise PreflightError(
            f"no process with PID {pid}; check it with 'ps -p {pid}' or find it with 'pgrep NAME'"
        ) from None
    if status.state == "?":
        status.state = state
    target = Target(pid, status, flags, start_time)
    try:
        target.maps = procfs.parse_maps(procfs.read_text(f"{base}/maps"))
    except OSError:
        target.maps = None  # not ours to read: check_ptrace_permission says why
    try:
        target.exe_readable = bool(os.readlink(f"{base}/exe"))
    except OSError:
        target.exe_readable = False
    if status.tracer_pid:
        try:
            target.tracer_name = procfs.read_text(f"/proc/{status.tracer_pid}/comm").strip()
        except OSError:
            target.tracer_name = None
    return target
