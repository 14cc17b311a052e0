"""/proc/PID/stat, status, maps, task and auxv: pure parsers over the text, and thin
readers that answer None (or nothing) once the process is gone.

Standard library only, and nothing else from the package: the perf engine uses it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Indexes into stat_fields(), which start after the name: field N of proc(5) is N - 3.
STATE = 0  # field 3
FLAGS = 6  # field 9
START_TIME = 19  # field 22, in clock ticks since boot: tells a reused PID apart
EXIT_CODE = 49  # field 52 (Linux 3.5+), in waitpid format; shown to a tracer-capable reader
DELETED = " (deleted)"  # /proc/PID/maps: after the path of a file unlinked since


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


AT_ENTRY = 9  # auxv tag: the program's entry point, as loaded (PIE relocated)


def parse_auxv_entry(data: bytes, word: int) -> int | None:
    """AT_ENTRY from the bytes of /proc/PID/auxv (pairs of `word`-byte native integers)."""
    pair = 2 * word
    for start in range(0, len(data) - pair + 1, pair):
        tag = int.from_bytes(data[start : start + word], "little")
        if tag == AT_ENTRY:
            return int.from_bytes(data[start + word : start + pair], "little")
        if tag == 0:  # AT_NULL ends the vector
            break
    return None


def auxv_entry(pid: int, word: int) -> int | None:
    """The entry point of a live process's program; None when unreadable."""
    try:
        with open(f"/proc/{pid}/auxv", "rb") as auxv:
            return parse_auxv_entry(auxv.read(), word)
    except OSError:
        return None


@dataclass(frozen=True)
class MapsLine:
    """One line of /proc/PID/maps, with what locating the file needs."""

    start: int
    end: int
    perms: str
    offset: int
    device: tuple[int, int]
    inode: int
    path: str  # without the " (deleted)" suffix
    deleted: bool = False

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def describe(self) -> str:
        where = f" {self.path}{DELETED if self.deleted else ''}" if self.path else " (anonymous)"
        return f"{self.start:#x}-{self.end:#x} {self.perms}{where}"


def parse_maps_line(line: str) -> MapsLine | None:
    """One /proc/PID/maps line, or None for a line that is not one."""
    parts = line.rstrip("\n").split(None, 5)
    if len(parts) < 5:
        return None
    try:
        start, end = (int(part, 16) for part in parts[0].split("-"))
        major, minor = (int(part, 16) for part in parts[3].split(":"))
        offset, inode = int(parts[2], 16), int(parts[4])
    except ValueError:
        return None
    path = parts[5] if len(parts) > 5 else ""
    deleted = path.endswith(DELETED)
    if deleted:
        path = path[: -len(DELETED)]
    return MapsLine(start, end, parts[1], offset, (major, minor), inode, path, deleted)


def parse_maps(text: str) -> list[MapsLine]:
    """/proc/PID/maps: one MapsLine a line, lines that are not one left out."""
    return [m for m in map(parse_maps_line, text.splitlines()) if m is not None]
