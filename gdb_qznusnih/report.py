"""`qznusnih report LOG.jsonl`: who touched the byte, and when.  Pure: no gdb.

The log is read one line at a time and never held whole: the report keeps counts (a
`summary.Summary`), one sample record per call site, the first and last writer, and the value
timeline (one small tuple per write that changed the value).  Decoding is the hot path on
large logs, so `LogDecoder` parses each distinct call path and each second's time stamp once.

A malformed line is an error naming its line number (exit 1), never skipped: a log written by
qzn-watch has only whole lines, so a bad one means the wrong file or a damaged one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

from .colour import Colorizer, check_style, resolve_color
from .private_files import one_line_error, replace_private
from .record import READ, WRITE, Frame, Record, format_time, parse_time, record_from_json
from .render import ARROW, BlockRenderer
from .summary import TOP_SITES, Site, Summary, _site_key

PROG = "qznusnih report"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "html")

EPILOG = """\
times (--since, --until; both inclusive):
  2026-11-26T03:13:20.5Z   an ISO time as in the log ("time"), UTC; Z and fraction optional
  03:13:20.5               a time of day (UTC, as in the terminal stream), on the day of the
                           log's first record
  +1.5                     seconds after the log's first record (before any filter)

--func REGEX keeps a record when any function of its backtrace matches (re.search).
A call site is the innermost frame with source (function, file:line); a write "changes the
value" when its old value differs from the new one.  A malformed line stops the report with
its line number (exit 1).  Exit status: 0 done, 1 unreadable or malformed log, 2 bad options.

examples:
  qznusnih report /tmp/w.jsonl
  qznusnih report /tmp/w.jsonl --kind write --func 'parse_.*' --since +2
  qznusnih report /tmp/w.jsonl --format html --output /tmp/w.html"""


class ReportError(Exception):
    """The log cannot be read or the report written; the message is one line."""


class UsageError(ReportError):
    """A bad option; the message is one line that says what to do."""


# ---------------------------------------------------------------- decoding

_FRAMES_KEY = ', "frames": '
_FRAMES_END = '], "kind_from": '  # quotes inside JSON strings are escaped: no false match
_KNOWN_KEYS = frozenset(
    "seq kind addr len old value pid tid pc insn time frames kind_from mode comm".split()
)


_scan = json.JSONDecoder().scan_once  # the C scanner, without json.loads' wrappers


def _object(text: str) -> dict:
    """The JSON object `text` holds, with nothing after it; ValueError if not."""
    try:
        doc, end = _scan(text, 0)
    except StopIteration:  # the scanner's "no value here"
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or text[end:].strip():
        raise ValueError("not one JSON object")
    return doc


class LogDecoder:
    """JSON lines to Records, equal to `record_from_json(json.loads(line))`, but faster.

    Lines in qzn-watch's own key order are split around "frames": the frames fragment, the
    same for every hit of a call path, is decoded once per distinct text, and the time stamp's
    seconds once per second.  Other layouts take the plain path.
    """

    _CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self._frames: dict[str, tuple[Frame, ...]] = {}
        self._seconds: dict[str, int] = {}

    def decode(self, line: str) -> Record:
        """One line as a Record; raises ValueError, KeyError or TypeError when malformed."""
        head, found, rest = line.partition(_FRAMES_KEY)
        end = rest.find(_FRAMES_END) if found else -1
        if end < 0:
            return record_from_json(json.loads(line))
        doc = _object(head + rest[end + 1 :])
        frames = self._frames.get(rest[: end + 1])
        if frames is None:
            frames = self._decode_frames(rest[: end + 1])
        extra = {k: v for k, v in doc.items() if k not in _KNOWN_KEYS} if len(doc) > 12 else {}
        get = doc.get
        return Record(
            doc["seq"], doc["kind"], int(doc["addr"], 16), doc["len"], doc["old"], doc["value"],
            doc["pid"], doc["tid"], int(doc["pc"], 16), doc["insn"], self._time(doc["time"]),
            frames, get("kind_from", "insn"), get("mode"), get("comm"), extra,
        )  # fmt: skip

    def _decode_frames(self, text: str) -> tuple[Frame, ...]:
        docs = json.loads(text)
        frames = tuple(
            Frame(f["level"], int(f["pc"], 16), f.get("func"), f.get("file"), f.get("line"))
            for f in docs
        )
        if len(self._frames) >= self._CACHE_LIMIT:
            self._frames.clear()
        self._frames[text] = frames
        return frames

    def _time(self, text: str) -> float:
        if len(text) != 27 or text[19] != "." or text[26] != "Z":
            return parse_time(text)
        whole = self._seconds.get(text[:19])
        if whole is None:
            if len(self._seconds) >= self._CACHE_LIMIT:
                self._seconds.clear()
            whole = self._seconds[text[:19]] = int(parse_time(text[:19]))
        return whole + int(text[20:26]) / 1_000_000  # as parse_time computes it


def _malformed(path: str, number: int, error: Exception) -> ReportError:
    if isinstance(error, KeyError):
        why = f"missing key {error}"
    elif isinstance(error, json.JSONDecodeError):
        why = f"not JSON ({error.msg})"
    else:
        why = " ".join(str(error).split()) or type(error).__name__
    return ReportError(f"{path}:{number}: malformed record: {why}")


def read_log(path: str):
    """Yield (line number, Record) for each non-blank line; ReportError (one line) on failure."""
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
        return " ".join(words)

    def matcher(self, first_time: float):
        """A predicate on records, with the time bounds resolved against `first_time`."""
        kind, tids, func = self.kind, frozenset(self.tids), self.func
        since = -float("inf") if self.since is None else parse_time_bound(self.since, first_time)
        until = float("inf") if self.until is None else parse_time_bound(self.until, first_time)

        def matches(record: Record) -> bool:
            if kind is not None and record.kind != kind:
                return False
            if tids and record.tid not in tids:
                return False
            if not since <= record.time <= until:
                return False
            return func is None or any(f.func and func.search(f.func) for f in record.frames)

        return matches


# ---------------------------------------------------------------- the report


class Change(NamedTuple):
    """A write that changed the value; `old` is None when neither it nor a prior value is known."""

    seq: int
    time: float
    tid: int
    old: int | None
    value: int
    length: int
    where: str


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

    def __len__(self) -> int:
        return len(self._old_known)

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
            n["value"][i], n["length"][i], self._wheres[n["where"][i]],
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

    def sites(self, kind: str) -> list[tuple[Site, Record]]:
        """The top sites of `kind` with their sample records."""
        return [(s, self.summary.sample(kind, s)) for s in self.summary.top_sites(kind)]


def build_report(path: str, filters: Filters | None = None, top: int = TOP_SITES) -> Report:
    """Read the log at `path` once and build its Report; ReportError (one line) on failure."""
    report = Report(path, filters or Filters(), SiteSummary(top))
    summary, changes, where_by_site = report.summary, report.changes, {}
    matches = None
    value = None  # the watched bytes' value after the previous record, any filter aside
    for _, record in read_log(path):
        if matches is None:
            report.log_start = record.time
            matches = report.filters.matcher(record.time)
        report.records += 1
        before, value = value, record.value
        if not matches(record):
            continue
        summary.add(record)
        if record.kind != WRITE:
            continue
        if report.first_writer is None:
            report.first_writer = record
        report.last_writer = record
        old = before if record.old is None else record.old
        if old != record.value:
            key = _site_key(record)
            where = where_by_site.get(key)
            if where is None:
                where = where_by_site[key] = Site(*key, 0).describe()
            changes.append(
                Change(record.seq, record.time, record.tid, old, record.value, record.length, where)
            )
    return report


# ---------------------------------------------------------------- text and JSON


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


def clock(seconds: float) -> str:
    """03:13:20.123456, UTC, as in the stream's headers."""
    return format_time(seconds)[11:-1]


def describe_log(report: Report) -> str:
    """One line: the log, how many records match, and the time span."""
    summary = report.summary
    line = f"{report.path}: {summary.total:,} of {report.records:,} records"
    if summary.first_time is not None:
        start = format_time(summary.first_time).replace("T", " ")[:-1]
        line += f", {start} to {clock(summary.last_time)} UTC"
    return line


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line for line in text.splitlines(keepends=True))


def format_text(report: Report, colorizer: Colorizer | None = None) -> str:
    """The report for the terminal: coloured like the live stream when `colorizer` is given."""

    def bold(text: str) -> str:
        return text if colorizer is None else colorizer.bold(text)

    def kind_word(kind: str, text: str) -> str:
        return text if colorizer is None else colorizer.kind(kind, text)

    blocks = BlockRenderer(colorizer)
    summary = report.summary
    out = [bold("qznusnih report: ") + describe_log(report) + "\n"]
    if report.filters.describe():
        out.append(f"filters: {report.filters.describe()}\n")
    out.append(summary.format(colorizer))
    for kind, noun in ((READ, "reads"), (WRITE, "writes")):
        count = summary.reads if kind == READ else summary.writes
        if not count:
            continue
        noun = noun if count != 1 else kind
        out.append(f"\n{kind_word(kind, kind.upper())} call sites ({count:,} {noun}):\n")
        for rank, (site, sample) in enumerate(report.sites(kind), 1):
            share = 100 * site.count / count
            out.append(f"{rank:>3}. {bold(site.describe())}  {site.count:,} ({share:.1f}%)\n")
            out.append(_indent(blocks.render(sample)))
    for title, record in writers(report):
        out.append(f"\n{bold(title)}:\n" + _indent(blocks.render(record)))
    changed = len(report.changes)
    out.append(f"\n{bold('value changes')}: {changed:,} of {summary.writes:,} writes\n")
    start = report.log_start or 0.0
    for change in report.changes:
        old = hex_value(change.old, change.length)
        new = bold(hex_value(change.value, change.length))
        out.append(
            f"  [{change.seq}] {clock(change.time)}  +{change.time - start:.6f} s  "
            f"tid {change.tid}  {old} {ARROW} {new}  {change.where}\n"
        )
    return "".join(out)


def report_to_json(report: Report) -> dict:
    """The report as one JSON document (`--format json`)."""
    summary = report.summary
    sites = {
        kind: [dict(site.to_json(), sample=sample.to_json()) for site, sample in report.sites(kind)]
        for kind in (READ, WRITE)
    }
    return {
        "log": report.path,
        "records": report.records,
        "matched": summary.total,
        "filters": report.filters.describe(),
        "summary": summary.to_json(),
        "sites": sites,
        "first_writer": report.first_writer and report.first_writer.to_json(),
        "last_writer": report.last_writer and report.last_writer.to_json(),
        "changes": [
            {
                "seq": c.seq,
                "time": format_time(c.time),
                "tid": c.tid,
                "old": c.old,
                "value": c.value,
                "where": c.where,
            }
            for c in report.changes
        ],
    }


# ---------------------------------------------------------------- entry points


def write_html_report(jsonl_path: str, html_path: str, style: str | None = None) -> Report:
    """Write the HTML report of a whole log (the end of a run with --log); ReportError if not.

    The report replaces `html_path` whole or not at all (see `_write_file`).
    """
    from .report_html import html_chunks

    report = build_report(jsonl_path)
    _write_file(html_path, html_chunks(report, style), "--log prefix")
    return report


def _write_file(path: str, chunks, option: str = "--output FILE") -> None:
    """Write the strings of `chunks` to `path`, 0600, by a rename; ReportError if not.

    A signal, a full disk or an error part way leaves the old file; `option` is what the
    user changes to write elsewhere.
    """
    try:
        replace_private(path, chunks)
    except OSError as error:
        raise ReportError(one_line_error(path, error, option)) from None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError) and help written to `out`."""

    out = None

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def _print_message(self, message: str, file=None) -> None:
        if message:
            (self.out or sys.stdout).write(message)


def _top(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a count (0 for all)")
    return int(text)


def _tid(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a thread id")
    return int(text)


def build_parser(prog: str = PROG) -> _Parser:
    parser = _Parser(
        prog=prog,
        description="Summarise a qzn-watch JSON Lines log: totals by kind, thread and mode, the "
        "top call sites per kind with a sample backtrace, the first and last writer, and every "
        "write that changed the value.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("log", metavar="LOG.jsonl", help="the PREFIX.jsonl of a qzn-watch --log")
    parser.add_argument("--kind", choices=(READ, WRITE), help="only reads or only writes")
    parser.add_argument(
        "--tid", type=_tid, action="append", default=[], metavar="N", help="only thread N (repeat)"
    )
    parser.add_argument("--since", metavar="T", help="only records at or after T (see below)")
    parser.add_argument("--until", metavar="T", help="only records at or before T")
    parser.add_argument("--func", metavar="REGEX", help="only backtraces with a matching function")
    parser.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument("--output", metavar="FILE", help="write there instead of stdout")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="text colour; auto: stdout is a terminal and NO_COLOR is unset",
    )
    parser.add_argument("--style", metavar="NAME", help="pygments style (text and HTML)")
    parser.add_argument(
        "--top",
        type=_top,
        default=TOP_SITES,
        metavar="N",
        help=f"sites per kind, 0: all (default {TOP_SITES})",
    )
    return parser


def parse_args(argv: list[str], out=None, prog: str = PROG) -> argparse.Namespace | None:
    """The options, checked; None when --help was printed.  UsageError on a bad option."""
    parser = build_parser(prog)
    parser.out = out
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help (errors raise UsageError)
        return None
    pattern = args.func
    if pattern is not None:
        try:
            args.func = re.compile(pattern)
        except re.error as error:
            raise UsageError(f"--func '{pattern}' is not a regular expression: {error}") from None
    _check_time_text("--since", args.since)
    _check_time_text("--until", args.until)
    try:
        check_style(args.style)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return args


def run(
    argv: list[str], out=None, out_is_tty: bool = False, environ=None, prog: str = PROG
) -> None:
    """`qznusnih report ARGS`, writing to `out` (default stdout) unless --output is given.

    `out_is_tty` and `environ` (default os.environ) decide `--color auto`; `prog` names the
    command in help and errors.  Raises UsageError for bad options and ReportError for an
    unreadable log or an unwritable output.
    """
    out = sys.stdout if out is None else out
    args = parse_args(argv, out, prog)
    if args is None:
        return
    filters = Filters(args.kind, tuple(args.tid), args.since, args.until, args.func)
    report = build_report(args.log, filters, args.top)
    if args.format == "json":
        chunks = [json.dumps(report_to_json(report), indent=1) + "\n"]
    elif args.format == "html":
        from .report_html import html_chunks

        chunks = html_chunks(report, args.style)
    else:
        tty = out_is_tty and args.output is None
        colour = resolve_color(args.color, tty, os.environ if environ is None else environ)
        chunks = [format_text(report, Colorizer(args.style) if colour else None)]
    if args.output is not None:
        _write_file(args.output, chunks)
    else:
        for chunk in chunks:
            out.write(chunk)


def main(argv: list[str]) -> int:
    """The launcher's `qznusnih report ...`: exit 0, 1 (log or output) or 2 (options)."""
    try:
        run(argv, sys.stdout, sys.stdout.isatty())
        sys.stdout.flush()
    except UsageError as error:
        sys.stderr.write(f"{PROG}: {error}\n")
        return EXIT_USAGE
    except ReportError as error:
        sys.stderr.write(f"{PROG}: {error}\n")
        return EXIT_ERROR
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
