"""The HTML report: one self-contained page, inline CSS, no script, no external URL.  Pure.

Backtraces are coloured as on the terminal (colour.py), through pygments' HtmlFormatter (its
CSS inlined from `get_style_defs`); without pygments they are plain.  Everything taken from
the log is escaped: C++ function names hold `<`, `>` and `&`.
"""

from __future__ import annotations

from html import escape

from gdb_qznusnih.counted import counted
from gdb_qznusnih.record.access import READ, WRITE, LostAccesses, Record
from gdb_qznusnih.report import figures
from gdb_qznusnih.report.build import (
    Change,
    Report,
    clock,
    describe_log,
    hex_value,
    timeline,
    writers,
    zone_name,
)
from gdb_qznusnih.sinks.colour import html_painter
from gdb_qznusnih.sinks.formats import format_header
from gdb_qznusnih.sinks.render import ARROW, format_insn

UNSEEN_MARK = "\u26a1"  # ⚡: a change no record made (the record's changed_unseen)
PAGE_CSS = """
:root { --read: #0e7490; --write: #b91c1c; --line: #d4d4d8; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #18181b; background: #fafafa; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 0 0 .5em; }
section { margin: 1.2em 0; padding: .8em 1em; background: #fff; border: 1px solid var(--line);
          border-left: 6px solid #71717a; border-radius: 4px; }
section.read { border-left-color: var(--read); }
section.write { border-left-color: var(--write); }
.read h2, span.read, td.read { color: var(--read); }
.write h2, span.write, td.write { color: var(--write); }
span.read, span.write, td.read, td.write { font-weight: 600; }
table { border-collapse: collapse; margin: .3em 0 .8em; }
th, td { text-align: left; padding: .2em .7em; border-bottom: 1px solid var(--line);
         vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 13px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; }
pre.hl { margin: 0; padding: .4em .6em; border-radius: 3px; overflow-x: auto; }
.muted { color: #52525b; font-weight: normal; }
tr.unseen td { background: #fef3c7; }
"""


class _Highlighter:
    """Record blocks as HTML, in a pygments style, escaped."""

    def __init__(self, style: str | None) -> None:
        self.painter, self.css = html_painter(style)

    def block(self, record: Record) -> str:
        """A record as in the stream: header, backtrace and instruction, in one <pre>."""
        insn = format_insn(record.insn)
        body = self.painter.backtrace(record.frames)
        if insn:
            body += "    " + self.painter.insn(insn[4:])
        header = (
            f'<span class="{escape(record.kind)}">{escape(format_header(record).rstrip())}</span>'
        )
        return f'<pre class="hl">{header}\n{body}</pre>'


def _kind_span(kind: str, text: str) -> str:
    return f'<span class="{escape(kind)}">{escape(text)}</span>'


def _summary_section(report: Report) -> str:
    summary = report.summary
    rate, duration = summary.rate, summary.duration
    rows = [
        f'<tr><th>reads</th><td class="num read" id="total-reads">{summary.reads:,}</td></tr>',
        f'<tr><th>writes</th><td class="num write" id="total-writes">{summary.writes:,}</td></tr>',
        f'<tr><th>total</th><td class="num" id="total-all">{summary.total:,}</td></tr>',
    ]
    if report.losses:
        rows.append(
            f'<tr><th>lost</th><td class="num lost" id="total-lost">{report.lost:,}</td></tr>'
        )
    if duration is not None and summary.total:
        rows.append(f'<tr><th>span</th><td class="num">{duration:.6f} s</td></tr>')
    if rate is not None:
        rows.append(f'<tr><th>rate</th><td class="num">{rate:,.0f} hits/s</td></tr>')
    threads = "".join(
        f'<tr><td class="num">{tid}</td><td class="num read">{r:,}</td>'
        f'<td class="num write">{w:,}</td></tr>'
        for tid, r, w in summary.threads()
    )
    parts = [
        '<section id="summary"><h2>Summary</h2>',
        f'<table id="totals">{"".join(rows)}</table>',
        '<table id="threads"><tr><th class="num">thread</th><th class="num">reads</th>'
        f'<th class="num">writes</th></tr>{threads}</table>',
    ]
    modes = summary.modes()
    if modes:
        cells = "".join(
            f"<tr><th>{escape(m)}</th><td class='num'>{n:,}</td></tr>" for m, n in modes.items()
        )
        parts.append(f'<table id="modes">{cells}</table>')
    return "".join(parts) + "</section>"


def _sites_section(report: Report, kind: str, highlighter: _Highlighter) -> str:
    summary = report.summary
    count = summary.reads if kind == READ else summary.writes
    noun = "Reads" if kind == READ else "Writes"
    section_id = "reads" if kind == READ else "writes"
    rows = []
    for rank, (site, sample) in enumerate(report.sites(kind), 1):
        where = "" if site.file is None else f"{site.file}:{site.line}"
        if site.file is None and site.pc is not None:
            where = f"0x{site.pc:x}"
        rows.append(
            f'<tr class="site"><td class="num">{rank}</td>'
            f'<td class="num count">{site.count:,}</td>'
            f'<td class="num">{100 * site.count / count:.1f}%</td>'
            f"<td><code>{escape(site.func or '??')}</code><br>"
            f'<span class="muted">{escape(where)}</span></td>'
            f"<td>{highlighter.block(sample)}</td></tr>"
        )
    table = (
        '<table class="sites"><tr><th class="num">#</th><th class="num">count</th>'
        '<th class="num">share</th><th>call site</th><th>sample backtrace</th></tr>'
        + "".join(rows)
        + "</table>"
        if rows
        else '<p class="muted">none</p>'
    )
    return (
        f'<section id="{section_id}" class="{kind}">'
        f'<h2>{noun}: <span class="total">{count:,}</span> '
        f'<span class="muted">(top call sites, innermost frame with source)</span></h2>'
        f"{table}</section>"
    )


def _figures_section(report: Report) -> str:
    """The flame graphs of the read and the write stacks, the value and the access rate."""
    pictures = report.figures
    start = report.log_start if report.log_start is not None else 0.0
    initial = report.changes[0:1][0].old if len(report.changes) else None
    length = report.first_writer.length if report.first_writer is not None else 1
    return (
        '<section id="figures"><h2>Pictures</h2>'
        '<h3 class="read">Read stacks <span class="muted">(callers below; hover a box for '
        "its function, file:line and count; kernel frames in blue)</span></h3>"
        + figures.flame_graph(pictures.stacks(READ), "flame-reads")
        + '<h3 class="write">Write stacks</h3>'
        + figures.flame_graph(pictures.stacks(WRITE), "flame-writes")
        + "<h3>The value over time <span class='muted'>(each mark a write that changed it, "
        "coloured by call site)</span></h3>"
        + figures.value_plot(pictures, start, initial, length)
        + "<h3>Accesses over time</h3>"
        + figures.rate_plot(pictures)
        + "</section>"
    )


def _writers_section(report: Report, highlighter: _Highlighter) -> str:
    parts = ['<section id="writers" class="write"><h2>First and last writer</h2>']
    for title, record in writers(report):
        parts.append(f"<h3>{title}</h3>{highlighter.block(record)}")
    if report.first_writer is None:
        parts.append('<p class="muted">no writes</p>')
    return "".join(parts) + "</section>"


_ROWS_PER_CHUNK = 1000


def _timeline_chunks(report: Report):
    """The value timeline in pieces of rows: a long log's timeline is never one string."""
    start, local = report.log_start or 0.0, report.local_time
    unseen = report.changes.unseen
    written = len(report.changes) - unseen
    unseen_note = f', <span class="unseen">{unseen:,} {UNSEEN_MARK} unseen</span>' if unseen else ""
    yield (
        '<section id="timeline" class="write"><h2>Value changes: '
        f'<span class="total">{written:,}</span> of {report.summary.writes:,} '
        f"writes{unseen_note}</h2><table><tr><th class='num'>seq</th>"
        f"<th>time ({zone_name(local)})</th>"
        "<th class='num'>since first record</th><th class='num'>thread</th>"
        f"<th>old {ARROW} new</th><th>where</th></tr>"
    )
    changes = report.changes
    for first in range(0, max(len(changes), 1), _ROWS_PER_CHUNK):
        picked = changes[first : first + _ROWS_PER_CHUNK]
        yield "".join(_timeline_row(c, start, local) for c in timeline(report, (first, picked)))
    yield "</table></section>"


def _timeline_row(item, start: float, local: bool) -> str:
    if isinstance(item, LostAccesses):
        how_many = "accesses" if item.count is None else counted(item.count, "access")
        return (
            f'<tr class="lost"><td></td><td>{clock(item.time, local)}</td>'
            f'<td class="num">+{item.time - start:.6f} s</td><td></td>'
            f'<td colspan="2"><b>{how_many} lost here</b> '
            f'<span class="muted">({escape(item.reason)})</span></td></tr>'
        )
    return _change_row(item, start, local)


def _change_row(c: Change, start: float, local: bool) -> str:
    """One timeline row; a change no record made is marked, and named by the access that
    found it."""
    row_class, where = "change", escape(c.where)
    if c.unseen:
        row_class = "change unseen"
        where = f"{UNSEEN_MARK} changed unseen, found by <code>{where}</code>"
    else:
        where = f"<code>{where}</code>"
    return (
        f'<tr class="{row_class}"><td class="num">{c.seq}</td><td>{clock(c.time, local)}</td>'
        f'<td class="num">+{c.time - start:.6f} s</td><td class="num">{c.tid}</td>'
        f"<td><code>{hex_value(c.old, c.length)} {ARROW} "
        f"<b>{hex_value(c.value, c.length)}</b></code></td><td>{where}</td></tr>"
    )


def html_chunks(report: Report, style: str | None = None):
    """The whole page for `report`, in pieces to write as they come (a long timeline is never
    one string); `style` is a pygments style name (default: light)."""
    highlighter = _Highlighter(style)
    filters = report.filters.describe()
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>qznusnih report: {escape(report.path)}</title>"
        f"<style>{PAGE_CSS}{figures.FIGURES_CSS}{highlighter.css}</style></head>\n<body>"
    )
    header = (
        f'<header><h1>qznusnih report</h1><p id="log">{escape(describe_log(report))}</p>'
        + (f'<p id="filters">filters: <code>{escape(filters)}</code></p>' if filters else "")
        + f"<p>{_kind_span(READ, 'reads')} and {_kind_span(WRITE, 'writes')} of the watched "
        "bytes, each call site with the first backtrace that reached it.</p></header>"
    )
    yield head + header
    yield _summary_section(report)
    yield "\n" + _figures_section(report)
    yield "\n" + _sites_section(report, READ, highlighter)
    yield "\n" + _sites_section(report, WRITE, highlighter)
    yield "\n" + _writers_section(report, highlighter)
    yield "\n"
    yield from _timeline_chunks(report)
    yield "\n</body></html>\n"
