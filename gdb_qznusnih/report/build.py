"""`qznusnih report LOG.jsonl`: who touched the byte, and when.  Pure: no gdb.

The log is read one line at a time and never held whole: the report keeps counts (a
`summary.Summary`), one sample record per call site, the first and last writer, and the value
timeline (one small tuple per write that changed the value).  Decoding is the hot path on
large logs, so `LogDecoder` parses each distinct call path and each second's time stamp once.

A malformed line is an error naming its line number (exit 1), never skipped: a log written by
qzn-watch has only whole lines, so a bad one means the wrong file or a damaged one.
"""

from __future__ import annotations

import json
import re
import time
from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

from gdb_qznusnih.counted import counted
from gdb_qznusnih.options import one_line
from gdb_qznusnih.record.access import (
    READ,
    WRITE,
    LostAccesses,
    Record,
    format_time,
    parse_time,
)
from gdb_qznusnih.record.condition import Condition
from gdb_qznusnih.record.summary import TOP_SITES, Site, Summary, _site_key
from gdb_qznusnih.report.figures import Figures
from gdb_qznusnih.sinks.formats import LogDecoder


class ReportError(Exception):
    """The log cannot be read or the report written; the message is one line."""


class UsageError(ReportError):
    """A bad option; the message is one line that says what to do."""


# ---------------------------------------------------------------- decoding


def _malformed(path: str, number: int, error: Exception) -> ReportError:
    if isinstance(error, KeyError):
        why = f"missing key {error}"
    elif isinstance(error, json.JSONDecodeError):
        why = f"not JSON ({error.msg})"
    else:
        why = one_line(error) or type(error).__name__
    return ReportError(f"{path}:{number}: malformed record: {why}")


def read_log(path: str, on_loss=None):
    """Yield (line number, Record) for each non-blank line; ReportError (one line) on failure.
    A loss line (the perf engine's `{"lost": N, ...}`) goes to `on_loss(LostAccesses)` when
    given, else it is skipped: it is no access."""
    decoder = LogDecoder()
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as log:
            for number, line in enumerate(log, 1):
                if not line.strip():
                    continue
                try:
                    record = decoder.decode(line)
                except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
                    raise _malformed(path, number, error) from None
                if isinstance(record, LostAccesses):
                    if on_loss is not None:
                        on_loss(record)
                    continue
                yield number, record
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror or error}") from None


# ---------------------------------------------------------------- filters and times

_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z?")
_TIME_OF_DAY = re.compile(r"(\d\d):(\d\d):(\d\d)(\.\d{1,6})?")
_RELATIVE = re.compile(r"\+(\d+(\.\d*)?|\.\d+)")


def parse_time_bound(text: str, first_time: float) -> float:
    """--since/--until as seconds since the epoch; `first_time` is the log's first record's."""
    text = text.strip()
    if _RELATIVE.fullmatch(text):
        return first_time + float(text[1:])
    if _ISO.fullmatch(text):
        return parse_time(text)
    match = _TIME_OF_DAY.fullmatch(text)
    if match:
        day = int(first_time) - int(first_time) % 86400  # UTC midnight of the first record
        hours, minutes, seconds = (int(g) for g in match.groups()[:3])
        return day + hours * 3600 + minutes * 60 + seconds + float(match.group(4) or 0)
    raise UsageError(
        f"bad time '{text}': give an ISO time (2026-11-26T03:13:20.5Z), a time of day "
        "(03:13:20.5) or seconds after the first record (+1.5)"
    )


def _check_time_text(flag: str, text: str | None) -> None:
    if text is not None:
        try:
            parse_time_bound(text, 0.0)  # the syntax, before reading any of the log
        except UsageError as error:
            raise UsageError(f"{flag}: {error}") from None


@dataclass
class Filters:
    """Which records a report counts; the bounds are texts until the first record is seen."""

    kind: str | None = None
    tids: tuple[int, ...] = ()
    since: str | None = None
    until: str | None = None
    func: re.Pattern | None = None
    condition: Condition | None = None  # --if COND

    def describe(self) -> str:
        """The filters as options, "" when there are none."""
        words = []
        if self.kind:
            words.append(f"--kind {self.kind}")
        words += [f"--tid {tid}" for tid in self.tids]
        if self.since is not None:
            words.append(f"--since {self.since}")
        if self.until is not None:
            words.append(f"--until {self.until}")
        if self.func is not None:
            words.append(f"--func {self.func.pattern}")
        if self.condition is not None:
            words.append(f"--if {self.condition.text!r}")
        return " ".join(words)

    def matcher(self, first_time: float):
        """A predicate on records, with the time bounds resolved against `first_time`."""
        kind, tids, func, condition = self.kind, frozenset(self.tids), self.func, self.condition
        since = -float("inf") if self.since is None else parse_time_bound(self.since, first_time)
        until = float("inf") if self.until is None else parse_time_bound(self.until, first_time)

        def matches(record: Record) -> bool:
            if kind is not None and record.kind != kind:
                return False
            if tids and record.tid not in tids:
                return False
            if not since <= record.time <= until:
                return False
            if func is not None and not any(f.func and func.search(f.func) for f in record.frames):
                return False
            return condition is None or condition(record)

        return matches


# ---------------------------------------------------------------- the report


class Change(NamedTuple):
    """A write that changed the value; `old` is None when neither it nor a prior value is known.

    `unseen`: a change no record made, found by the access `seq` (changed_unseen): from the
    value the previous record left (`old`) to the one it found (`value`)."""

    seq: int
    time: float
    tid: int
    old: int | None
    value: int
    length: int
    where: str
    unseen: bool = False


# Change fields as packed arrays: (name, array type code).
_CHANGE_ARRAYS = (
    ("seq", "q"), ("time", "d"), ("tid", "q"), ("old", "Q"), ("value", "Q"),
    ("length", "B"), ("where", "I"),
)  # fmt: skip


class ChangeLog:
    """The value changes of a log, packed in arrays: a long log holds one per write, so each
    costs ~40 bytes here instead of a few hundred as objects.  Reads back as Changes."""

    def __init__(self) -> None:
        self._numbers = {name: array(code) for name, code in _CHANGE_ARRAYS}
        self._old_known = bytearray()
        self._unseen = bytearray()
        self._wheres: list[str] = []
        self._where_index: dict[str, int] = {}
        self._unpacked: dict[int, Change] = {}  # numbers no array type holds (a foreign log)

    def append(self, change: Change) -> None:
        index = self._where_index.get(change.where)
        if index is None:
            index = self._where_index[change.where] = len(self._wheres)
            self._wheres.append(change.where)
        fields = (change.seq, change.time, change.tid, change.old or 0, change.value,
                  change.length, index)  # fmt: skip
        count, numbers = len(self), self._numbers
        try:
            for (name, _), value in zip(_CHANGE_ARRAYS, fields):
                numbers[name].append(value)
        except (OverflowError, TypeError):
            self._unpacked[count] = change
            for name, _ in _CHANGE_ARRAYS:
                del numbers[name][count:]
                numbers[name].append(0)
        self._old_known.append(change.old is not None)
        self._unseen.append(change.unseen)

    def __len__(self) -> int:
        return len(self._old_known)

    @property
    def unseen(self) -> int:
        """How many of the changes no record made (changed_unseen)."""
        return self._unseen.count(1)

    def describe(self, writes: int) -> str:
        """'2 of 3 writes', and ', 1 unseen' when there are changes no record made."""
        unseen = self.unseen
        text = f"{len(self) - unseen:,} of {counted(writes, 'write')}"
        return text + (f", {unseen:,} unseen" if unseen else "")

    def __getitem__(self, index: slice) -> list[Change]:
        return [self._change(i) for i in range(*index.indices(len(self)))]

    def __iter__(self):
        return (self._change(i) for i in range(len(self)))

    def _change(self, i: int) -> Change:
        odd = self._unpacked.get(i)
        if odd is not None:
            return odd
        n = self._numbers
        return Change(
            n["seq"][i], n["time"][i], n["tid"][i], n["old"][i] if self._old_known[i] else None,
            n["value"][i], n["length"][i], self._wheres[n["where"][i]], bool(self._unseen[i]),
        )  # fmt: skip


class SiteSummary(Summary):
    """A Summary that ranks `top` sites (0: all) and keeps the first record of each site."""

    def __init__(self, top: int = TOP_SITES) -> None:
        super().__init__()
        self.top = top
        self._samples: dict[str, dict[tuple, Record]] = {READ: {}, WRITE: {}}

    def add(self, record: Record) -> None:
        super().add(record)
        samples = self._samples[WRITE if record.kind == WRITE else READ]
        key = _site_key(record)
        if key not in samples:
            samples[key] = record

    def top_sites(self, kind: str, limit: int | None = None) -> list[Site]:
        if limit is None:
            limit = self.top or len(self._samples[kind])
        return super().top_sites(kind, limit)

    def sample(self, kind: str, site: Site) -> Record:
        """The first record of `site`: its full backtrace stands for the site's."""
        return self._samples[kind][site[:4]]


@dataclass
class Report:
    """Everything a report shows, built by `build_report` in one pass over the log."""

    path: str
    filters: Filters = field(default_factory=Filters)
    summary: SiteSummary = field(default_factory=SiteSummary)
    records: int = 0  # in the log, before filters
    log_start: float | None = None  # time of the log's first record
    first_writer: Record | None = None
    last_writer: Record | None = None
    changes: ChangeLog = field(default_factory=ChangeLog)
    figures: Figures = field(default_factory=Figures)
    local_time: bool = False  # --tz local: show times of day in the local zone, not UTC
    # where accesses were not logged: (how many value changes came before, the mark)
    losses: list[tuple[int, LostAccesses]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Accesses not logged, as far as counted (a throttled event does not count)."""
        return sum(mark.count or 0 for _, mark in self.losses)

    def describe_losses(self) -> str:
        """One line for the loss marks, "" when there are none."""
        if not self.losses:
            return ""
        places = counted(len(self.losses), "place")
        line = f"lost: {counted(self.lost, 'access')} not logged, at {places}"
        throttled = sum(mark.count is None for _, mark in self.losses)
        if throttled:
            line += f" ({throttled:,} throttled: how many accesses then is not known)"
        return line

    def sites(self, kind: str) -> list[tuple[Site, Record]]:
        """The top sites of `kind` with their sample records."""
        return [(s, self.summary.sample(kind, s)) for s in self.summary.top_sites(kind)]


def build_report(path: str, filters: Filters | None = None, top: int = TOP_SITES) -> Report:
    """Read the log at `path` once and build its Report; ReportError (one line) on failure."""
    report = Report(path, filters or Filters(), SiteSummary(top))
    summary, changes, where_by_site = report.summary, report.changes, {}
    matches = None
    value = None  # the watched bytes' value after the previous record, any filter aside

    def on_loss(mark: LostAccesses) -> None:
        report.losses.append((len(changes), mark))

    for _, record in read_log(path, on_loss):
        if matches is None:
            report.log_start = record.time
            matches = report.filters.matcher(record.time)
        report.records += 1
        before, value = value, record.value
        if not matches(record):
            continue
        summary.add(record)
        if record.changed_unseen:
            where = _where(record, where_by_site)
            unseen_before = record.value if record.kind != WRITE else record.old
            changes.append(
                Change(
                    record.seq,
                    record.time,
                    record.tid,
                    before,
                    unseen_before,
                    record.length,
                    where,
                    unseen=True,
                )  # fmt: skip
            )
        if record.kind != WRITE:
            report.figures.add(record, changed_value=False)
            continue
        if report.first_writer is None:
            report.first_writer = record
        report.last_writer = record
        old = before if record.old is None else record.old
        changed = record.value is not None and old != record.value  # unknown: no change
        report.figures.add(record, changed_value=changed)
        if changed:
            where = _where(record, where_by_site)
            changes.append(
                Change(record.seq, record.time, record.tid, old, record.value, record.length, where)
            )
    return report


def _where(record: Record, where_by_site: dict) -> str:
    """The record's call site as the timeline names it, described once per site."""
    key = _site_key(record)
    where = where_by_site.get(key)
    if where is None:
        where = where_by_site[key] = Site(*key, 0).describe()
    return where


# ---------------------------------------------------------------- text and JSON


def timeline(report: Report, changes=None):
    """The value changes (all, or the Changes given, a slice from index `changes[0]`) with
    the loss marks among them where they were logged: Change and LostAccesses items."""
    start, picked = changes if changes is not None else (0, report.changes)
    losses = report.losses
    at = next((i for i, (before, _) in enumerate(losses) if before >= start), len(losses))
    for index, change in enumerate(picked, start):
        while at < len(losses) and losses[at][0] <= index:
            yield losses[at][1]
            at += 1
        yield change
    if changes is None or start + len(picked) == len(report.changes):
        for _, mark in losses[at:]:
            yield mark


def writers(report: Report) -> list[tuple[str, Record]]:
    """[(title, record)] for the first and the last writer, once when they are the same."""
    first, last = report.first_writer, report.last_writer
    if first is None:
        return []
    if first is last:
        return [("first and last writer", first)]
    return [("first writer", first), ("last writer", last)]


def hex_value(value: int | None, length: int) -> str:
    """0x2a padded to the watched width; "?" when unknown."""
    return "?" if value is None else f"0x{value:0{2 * length}x}"


def clock(seconds: float, local: bool = False) -> str:
    """03:13:20.123456: UTC as in the stream's headers, or in the local zone."""
    if not local:
        return format_time(seconds)[11:-1]
    return _local_time(seconds)[11:]


def zone_name(local: bool) -> str:
    """What clock() shows: "UTC", or the local zone's name (TZ, /etc/localtime)."""
    return time.strftime("%Z") if local else "UTC"


def _local_time(seconds: float) -> str:
    """2026-11-26 04:13:20.123456 in the local zone, rounded to the µs as format_time does."""
    micros = round(seconds * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)) + f".{fraction:06d}"


def describe_log(report: Report) -> str:
    """One line: the log, how many records match, and the time span."""
    summary = report.summary
    line = f"{report.path}: {summary.total:,} of {counted(report.records, 'record')}"
    if summary.first_time is not None:
        local = report.local_time
        if local:
            start = _local_time(summary.first_time)
        else:
            start = format_time(summary.first_time).replace("T", " ")[:-1]
        line += f", {start} to {clock(summary.last_time, local)} {zone_name(local)}"
    return line
