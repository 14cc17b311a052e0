"""`qznusnih report LOG.jsonl` and `qzn-report`: options, output files, the end-of-run HTML.

Pure: no gdb.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from gdb_qznusnih.options import raising_parser
from gdb_qznusnih.record.access import (
    READ,
    WRITE,
)
from gdb_qznusnih.record.condition import ConditionError, compile_condition
from gdb_qznusnih.record.summary import TOP_SITES
from gdb_qznusnih.report.build import (
    Filters,
    Report,
    ReportError,
    UsageError,
    _check_time_text,
    build_report,
)
from gdb_qznusnih.report.exports import chrome_chunks, folded_chunks
from gdb_qznusnih.report.text import format_text, report_to_json
from gdb_qznusnih.sinks.colour import Colorizer, check_style, resolve_color
from gdb_qznusnih.sinks.private_files import one_line_error, replace_private

PROG = "qznusnih report"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "html", "folded", "chrome")
EXPORTS = {"folded": folded_chunks, "chrome": chrome_chunks}  # streamed, no Report

EPILOG = """\
times (--since, --until; both inclusive):
  2026-11-26T03:13:20.5Z   an ISO time as in the log ("time"), UTC; Z and fraction optional
  03:13:20.5               a time of day (UTC, as in the terminal stream), on the day of the
                           log's first record
  +1.5                     seconds after the log's first record (before any filter)

--func REGEX keeps a record when any function of its backtrace matches (re.search).
--if COND keeps a record when COND holds: names kind, value, old, tid, func, file, line
(those of frame 0), pc, mode, changed_unseen; numbers (decimal, 0x hex), 'strings', true,
false, null; == != < <= > >= in (tuple or substring), not in, ~ (regex search), and or not:
  --if "kind == 'write' and value != 0"     --if "func ~ 'parse_.*' and tid in (41, 42)"
A call site is the innermost frame with source (function, file:line); a write "changes the
value" when its old value differs from the new one.  A malformed line stops the report with
its line number (exit 1).  Exit status: 0 done, 1 unreadable or malformed log, 2 bad options.

formats: text and json (the report), html (one self-contained page), folded (one line per
unique stack, "KIND;outer;...;inner COUNT", for flamegraph.pl, inferno or speedscope), chrome
(Trace Event JSON, one instant event per access, for Perfetto or chrome://tracing).

examples:
  qznusnih report /tmp/w.jsonl
  qznusnih report /tmp/w.jsonl --kind write --func 'parse_.*' --since +2
  qznusnih report /tmp/w.jsonl --format html --output /tmp/w.html
  qznusnih report /tmp/w.jsonl --format folded | flamegraph.pl > /tmp/w.svg"""


def write_html_report(jsonl_path: str, html_path: str, style: str | None = None) -> Report:
    """Write the HTML report of a whole log (the end of a run with --log); ReportError if not.

    The report replaces `html_path` whole or not at all (see `_write_file`).
    """
    from gdb_qznusnih.report.html import html_chunks

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


class _Parser(raising_parser(UsageError)):
    """argparse with one-line errors (UsageError) and help written to `out`."""

    out = None

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
    parser.add_argument(
        "--if", dest="condition", metavar="COND", help="only records where COND holds (see below)"
    )
    parser.add_argument(
        "--tz",
        choices=("utc", "local"),
        default="utc",
        help="times of day in UTC (default, as in the logs) or the local zone (TZ)",
    )
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
    if args.condition is not None:
        try:
            args.condition = compile_condition(args.condition)
        except ConditionError as error:
            raise UsageError(f"--if: {error}") from None
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
    filters = Filters(args.kind, tuple(args.tid), args.since, args.until, args.func, args.condition)
    if args.format in EXPORTS:
        chunks = EXPORTS[args.format](args.log, filters)
    else:
        chunks = _report_chunks(args, filters, out_is_tty, environ)
    if args.output is not None:
        _write_file(args.output, chunks)
    else:
        for chunk in chunks:
            out.write(chunk)


def _report_chunks(args, filters: Filters, out_is_tty: bool, environ) -> list[str]:
    report = build_report(args.log, filters, args.top)
    report.local_time = args.tz == "local"
    if args.format == "json":
        chunks = [json.dumps(report_to_json(report), indent=1) + "\n"]
    elif args.format == "html":
        from gdb_qznusnih.report.html import html_chunks

        chunks = html_chunks(report, args.style)
    else:
        tty = out_is_tty and args.output is None
        colour = resolve_color(args.color, tty, os.environ if environ is None else environ)
        chunks = [format_text(report, Colorizer(args.style) if colour else None)]
    return chunks


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
