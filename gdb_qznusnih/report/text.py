"""The report as text for the terminal (coloured like the live stream) and as JSON.  Pure."""

from __future__ import annotations

from gdb_qznusnih.counted import counted
from gdb_qznusnih.record.access import (
    READ,
    WRITE,
    LostAccesses,
    format_time,
)
from gdb_qznusnih.report.build import (
    Report,
    clock,
    describe_log,
    hex_value,
    timeline,
    writers,
)
from gdb_qznusnih.sinks.colour import Colorizer
from gdb_qznusnih.sinks.formats import (
    CHANGED_UNSEEN_NOTE,
    BlockRenderer,
    lost_text,
    lost_to_json,
    to_json,
)
from gdb_qznusnih.sinks.render import ARROW


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
    if report.losses:
        out.append(report.describe_losses() + "\n")
    for kind in (READ, WRITE):
        count = summary.reads if kind == READ else summary.writes
        if not count:
            continue
        out.append(f"\n{kind_word(kind, kind.upper())} call sites ({counted(count, kind)}):\n")
        for rank, (site, sample) in enumerate(report.sites(kind), 1):
            share = 100 * site.count / count
            out.append(f"{rank:>3}. {bold(site.describe())}  {site.count:,} ({share:.1f}%)\n")
            out.append(_indent(blocks.render(sample)))
    for title, record in writers(report):
        out.append(f"\n{bold(title)}:\n" + _indent(blocks.render(record)))
    out.append(f"\n{bold('value changes')}: {report.changes.describe(summary.writes)}\n")
    start = report.log_start or 0.0
    for change in timeline(report):
        if isinstance(change, LostAccesses):
            out.append("  " + lost_text(change))
            continue
        old = hex_value(change.old, change.length)
        new = bold(hex_value(change.value, change.length))
        where = f"{CHANGED_UNSEEN_NOTE} found by {change.where}" if change.unseen else change.where
        when = clock(change.time, report.local_time)
        out.append(
            f"  [{change.seq}] {when}  +{change.time - start:.6f} s  "
            f"tid {change.tid}  {old} {ARROW} {new}  {where}\n"
        )
    return "".join(out)


def report_to_json(report: Report) -> dict:
    """The report as one JSON document (`--format json`)."""
    summary = report.summary
    sites = {
        kind: [dict(site.to_json(), sample=to_json(sample)) for site, sample in report.sites(kind)]
        for kind in (READ, WRITE)
    }
    return {
        "log": report.path,
        "records": report.records,
        "matched": summary.total,
        "filters": report.filters.describe(),
        "lost": report.lost,
        "losses": [lost_to_json(mark) for _, mark in report.losses],
        "summary": summary.to_json(),
        "sites": sites,
        "first_writer": report.first_writer and to_json(report.first_writer),
        "last_writer": report.last_writer and to_json(report.last_writer),
        "changes": [
            {
                "seq": c.seq,
                "time": format_time(c.time),
                "tid": c.tid,
                "old": c.old,
                "value": c.value,
                "where": c.where,
                **({"unseen": True} if c.unseen else {}),
            }
            for c in report.changes
        ],
    }


# ---------------------------------------------------------------- entry points
