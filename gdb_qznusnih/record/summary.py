"""Counts of a watch's accesses, printed when it ends.  Pure: no gdb.

`Summary.add` is O(1) and keeps counts only (never the records), so memory stays flat however
long the watch runs.  A call site is the innermost frame with source, as in
`round_once at mix.c:40`; frames without source (libc's memcpy) defer to their caller, but code
without any symbol (a stripped program) is a site of its own, by pc, named module+offset
(`prog+0x1234`) when the engine can say which module holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from gdb_qznusnih.counted import counted, plural
from gdb_qznusnih.record.access import READ, WRITE, Record

TOP_SITES = 5


class Site(NamedTuple):
    """A call site and how many accesses of one kind it made."""

    func: str | None
    file: str | None
    line: int | None
    pc: int | None  # only when no frame has source: sites are then told apart by pc
    count: int
    module: str | None = None  # "prog+0x1234": code without symbols, in that module

    def describe(self) -> str:
        if self.func is None and self.module is not None:
            return self.module
        where = f"{self.func or '??'}"
        if self.file is not None:
            where += f" at {self.file}" if self.line is None else f" at {self.file}:{self.line}"
        elif self.pc is not None:
            where += f" at 0x{self.pc:x}"
        return where

    def to_json(self) -> dict:
        return {
            "func": self.func,
            "file": self.file,
            "line": self.line,
            "pc": None if self.pc is None else hex(self.pc),
            "count": self.count,
            "module": self.module,
        }


def _site_key(record: Record) -> tuple:
    frames = record.frames
    for frame in frames:
        if frame.file is not None:
            return (frame.func, frame.file, frame.line, None)
        if frame.func is None:
            # No symbol at all: its caller's source would be another module's (libc's
            # __libc_start_call_main for a stripped program's code).
            return (None, None, None, frame.pc)
    if frames:
        return (frames[0].func, None, None, frames[0].pc)
    return (None, None, None, record.pc)


class AccessCounts:
    """Reads and writes counted: the summary's totals and the status line's live counts."""

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes

    def count(self, kind: str) -> bool:
        """Count one access of `kind`; True when it was a write."""
        if kind == WRITE:
            self.writes += 1
            return True
        self.reads += 1
        return False


class Summary(AccessCounts):
    """Totals by kind, thread and mode, and call sites per kind.

    `start` and `end` (seconds since the epoch) give the duration and the rate; when unset,
    the times of the first and last record stand in.  `running` (seconds), when a watch
    tracks it, is the time the program ran, without the time it sat stopped at gdb's prompt.
    """

    def __init__(
        self,
        start: float | None = None,
        end: float | None = None,
        name_code: Callable[[int], str | None] | None = None,
    ) -> None:
        super().__init__()
        # pc -> "prog+0x1234" for a site in code without symbols, asked once per such site
        # (while the target lives: the summary is printed after it has gone).
        self.name_code = name_code
        self._code_names: dict[int, str | None] = {}
        self.start = start
        self.end = end
        self.running: float | None = None
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._threads: dict[int, list[int]] = {}  # tid -> [reads, writes]
        self._modes: dict[str, int] = {}
        self._without_mode = 0  # the perf engine's user-mode records beside kernel ones
        self._sites: dict[str, dict[tuple, int]] = {READ: {}, WRITE: {}}

    def add(self, record: Record) -> None:
        """Count one record."""
        is_write = self.count(record.kind)
        counts = self._threads.get(record.tid)
        if counts is None:
            counts = self._threads[record.tid] = [0, 0]
        counts[is_write] += 1
        if record.mode is not None:
            self._modes[record.mode] = self._modes.get(record.mode, 0) + 1
        else:
            self._without_mode += 1
        sites = self._sites[WRITE if is_write else READ]
        key = _site_key(record)
        if key not in sites and key[0] is None and key[1] is None:
            self._name_code(key[3])
        sites[key] = sites.get(key, 0) + 1
        if self.first_time is None:
            self.first_time = record.time
        self.last_time = record.time

    def _name_code(self, pc: int | None) -> None:
        if pc is not None and self.name_code is not None and pc not in self._code_names:
            self._code_names[pc] = self.name_code(pc)

    @property
    def duration(self) -> float | None:
        if self.running is not None:
            return self.running
        start = self.start if self.start is not None else self.first_time
        end = self.end if self.end is not None else self.last_time
        if start is None or end is None:
            return None
        return max(0.0, end - start)

    @property
    def rate(self) -> float | None:
        """Accesses per second, when there is a duration."""
        duration = self.duration
        if not duration:
            return None
        return self.total / duration

    def threads(self) -> list[tuple[int, int, int]]:
        """(tid, reads, writes), by tid."""
        return [(tid, r, w) for tid, (r, w) in sorted(self._threads.items())]

    def modes(self) -> dict[str, int]:
        """Accesses by mode ("user", "kernel") in whole-system mode, or by the perf engine
        watching kernel mode too (its user-mode records carry no mode); {} otherwise."""
        if not self._modes:
            return {}
        modes = dict(self._modes)
        if self._without_mode:
            modes["user"] = modes.get("user", 0) + self._without_mode
        return dict(sorted(modes.items()))

    def top_sites(self, kind: str, limit: int = TOP_SITES) -> list[Site]:
        """The busiest call sites for `kind`, most accesses first."""
        ranked = sorted(
            self._sites[kind].items(),
            key=lambda item: (-item[1], str(item[0][0]), str(item[0][1]), item[0][2] or 0),
        )
        return [
            Site(*key, count, self._code_names.get(key[3]) if key[0] is None else None)
            for key, count in ranked[:limit]
        ]

    def to_json(self) -> dict:
        duration, rate = self.duration, self.rate
        return {
            "reads": self.reads,
            "writes": self.writes,
            "total": self.total,
            "threads": [{"tid": t, "reads": r, "writes": w} for t, r, w in self.threads()],
            "modes": self.modes(),
            "top_sites": {
                kind: [site.to_json() for site in self.top_sites(kind)] for kind in (READ, WRITE)
            },
            "duration": None if duration is None else round(duration, 6),
            "hits_per_second": None if rate is None else round(rate, 1),
        }

    def format(self, colorizer=None) -> str:
        """The summary as text, ending with a newline; colour via a colour.Colorizer."""

        def kind_word(kind: str, word: str) -> str:
            return word if colorizer is None else colorizer.kind(kind, word)

        def counts(reads: int, writes: int) -> str:
            read_noun, write_noun = plural(reads, "read"), plural(writes, "write")
            return (
                f"{reads:,} {kind_word(READ, read_noun)}, {writes:,} {kind_word(WRITE, write_noun)}"
            )

        line = f"summary: {counted(self.total, 'access')}: {counts(self.reads, self.writes)}"
        duration, rate = self.duration, self.rate
        if duration is not None and self.total:
            line += f" in {duration:.3f} s"
            if rate is not None:
                line += f" ({rate:,.0f} hits/s)"
        lines = [line]
        if self._modes:
            lines.append("  by mode: " + ", ".join(f"{m} {n:,}" for m, n in self.modes().items()))
        for tid, r, w in self.threads():
            lines.append(f"  tid {tid}: {counts(r, w)}")
        for kind, word in ((READ, "read"), (WRITE, "write")):
            sites = self.top_sites(kind)
            if not sites:
                continue
            lines.append(f"top {kind_word(kind, word)} sites:")
            width = len(f"{sites[0].count:,}")
            lines += [f"  {site.count:>{width},}  {site.describe()}" for site in sites]
        return "\n".join(lines) + "\n"


class RunningTime:
    """For a watch with a `summary`: the time the program ran, without the time it sat at
    gdb's prompt (`resumed()` on gdb's cont event, `paused()` on a stop) in summary.running."""

    _resumed_at: float | None = None  # the program runs since (monotonic)

    def resumed(self) -> None:
        """The program runs again (gdb's cont event)."""
        if self._resumed_at is None:
            self._resumed_at = time.monotonic()

    def paused(self) -> None:
        """The program stopped (at gdb's prompt, or for good): its running time so far."""
        if self._resumed_at is not None:
            ran = time.monotonic() - self._resumed_at
            self.summary.running = (self.summary.running or 0.0) + ran
            self._resumed_at = None
