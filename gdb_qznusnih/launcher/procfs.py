"""/proc/PID/stat, /proc/PID/status and /proc/PID/task: pure parsers over the text, and thin
readers that answer None (or nothing) once the process is gone.

Standard library only, and nothing else from the package: the perf engine uses it too.
"""

from __future__ import annotations

import os

# Indexes into stat_fields(), which start after the name: field N of proc(5) is N - 3.
STATE = 0  # field 3
FLAGS = 6  # field 9
START_TIME = 19  # field 22, in clock ticks since boot: tells a reused PID apart
EXIT_CODE = 49  # field 52 (Linux 3.5+), in waitpid format; shown to a tracer-capable reader


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def stat_fields(text: str) -> list[str]:
    """The fields of /proc/PID/stat after the name (state first); the name may hold ')'."""
    return text.rpartition(")")[2].split()


def read_stat_fields(pid: int) -> list[str] | None:
    """stat_fields of a live or zombie process; None once it is gone."""
    try:
        return stat_fields(read_text(f"/proc/{pid}/stat"))
    except OSError:
        return None


def state(pid: int) -> str:
    """The one-letter state (R, S, T, t, Z, ...); "" once the process is gone."""
    fields = read_stat_fields(pid)
    return fields[STATE] if fields else ""


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat; None once the process is gone."""
    fields = read_stat_fields(pid)
    return fields[START_TIME] if fields and len(fields) > START_TIME else None


def status_fields(text: str) -> dict[str, str]:
    """/proc/PID/status as {key: value}, both stripped: {"Name": "mix", "TracerPid": "0"}."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def read_status_fields(pid: int | str) -> dict[str, str] | None:
    """status_fields of a process (pid may be "self"); None once it is gone."""
    try:
        return status_fields(read_text(f"/proc/{pid}/status"))
    except OSError:
        return None


def tracer_pid(pid: int) -> int:
    """The PID of the process tracing `pid`; 0 for none, or once it is gone."""
    fields = read_status_fields(pid) or {}
    return int(fields.get("TracerPid", "0") or 0)


def signal_pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits to be delivered to `pid`, to its thread or to the process."""
    return signal_pending_in(read_status_fields(pid) or {}, signum)


def signal_pending_in(fields: dict[str, str], signum: int) -> bool:
    """signal_pending for status_fields already read (e.g. a remote target's, through gdb)."""
    bit = 1 << (signum - 1)
    try:
        return any(int(fields.get(mask, "0"), 16) & bit for mask in ("ShdPnd", "SigPnd"))
    except ValueError:
        return False


def thread_ids(pid: int) -> list[int]:
    """The process's thread ids, sorted; [] once it is gone."""
    try:
        return sorted(int(name) for name in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []
