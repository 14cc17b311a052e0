"""The loss line: its JSON shape, its text marker in every sink, and the report reading it back
(text, JSON, HTML) where it was logged among the records."""

from __future__ import annotations

import json

from gdb_qznusnih.record.access import RING_OVERFLOW, THROTTLED, LostAccesses
from gdb_qznusnih.report import cli as report
from gdb_qznusnih.report.build import build_report, read_log
from gdb_qznusnih.sinks.formats import (
    LOST_FIELDS,
    BlockRenderer,
    JsonLine,
    LogDecoder,
    lost_line,
    lost_text,
    record_from_json,
)
from gdb_qznusnih.sinks.logs import LogSinks
from tests.records import T, make_record

OVERFLOW = LostAccesses(1, 212, T + 1.25, RING_OVERFLOW)
THROTTLE = LostAccesses(1, None, T + 2.5, THROTTLED)
# value 0 -> 1, 212 accesses lost, 1 -> 2, a throttle, 2 -> 3
STREAM = [
    make_record(seq=1, value=1, old=0, time=T + 1.0),
    OVERFLOW,
    make_record(seq=2, value=2, old=1, time=T + 2.0),
    THROTTLE,
    make_record(seq=3, value=3, old=2, time=T + 3.0),
]


def write_stream(path) -> str:
    encoder = JsonLine()
    lines = [
        lost_line(item) if isinstance(item, LostAccesses) else encoder.encode(item)
        for item in STREAM
    ]
    path.write_text("".join(lines))
    return str(path)


def test_the_loss_line_has_its_keys_in_order_and_reads_back_both_ways():
    line = lost_line(OVERFLOW)
    assert line == (
        '{"lost": 212, "watch": 1, "time": "2026-11-26T03:13:21.373456Z", '
        '"reason": "ring overflow"}\n'
    )
    assert tuple(json.loads(line)) == LOST_FIELDS
    assert LogDecoder().decode(line) == record_from_json(json.loads(line)) == OVERFLOW
    unknown = lost_line(THROTTLE)
    assert json.loads(unknown)["lost"] is None
    assert LogDecoder().decode(unknown) == THROTTLE


def test_the_text_marker_is_one_line_with_the_count_or_that_it_is_unknown():
    assert lost_text(OVERFLOW) == (
        "[1] LOST  212 accesses not logged here (ring overflow)  03:13:21.373456\n"
    )
    assert lost_text(LostAccesses(2, 1, T, RING_OVERFLOW)).startswith("[2] LOST  1 access not")
    assert lost_text(THROTTLE) == (
        "[1] LOST  accesses not logged here (throttled, how many is not known)  03:13:22.623456\n"
    )


def test_log_sinks_put_the_line_in_the_jsonl_and_the_marker_in_both_text_logs(tmp_path):
    prefix = str(tmp_path / "w")
    shown = []
    sinks = LogSinks(prefix=prefix, writer=shown.append)
    sinks.open()
    sinks.emit(STREAM[0])
    sinks.lost(OVERFLOW)
    sinks.close()
    jsonl = (tmp_path / "w.jsonl").read_text().splitlines(keepends=True)
    assert jsonl[1] == lost_line(OVERFLOW) and len(jsonl) == 2
    assert (tmp_path / "w.reads.log").read_text() == lost_text(OVERFLOW)
    block = BlockRenderer().render(STREAM[0])
    assert (tmp_path / "w.writes.log").read_text() == block + lost_text(OVERFLOW)
    assert shown[-1] == lost_text(OVERFLOW)
    quiet = LogSinks(quiet=True, writer=shown.append)
    quiet.lost(OVERFLOW)
    assert len(shown) == 2


def test_the_report_counts_the_losses_and_shows_them_where_they_were(tmp_path, capsys):
    path = write_stream(tmp_path / "w.jsonl")
    built = build_report(path)
    assert built.records == 3 and built.summary.writes == 3
    assert built.lost == 212
    assert built.describe_losses() == (
        "lost: 212 accesses not logged, at 2 places "
        "(1 throttled: how many accesses then is not known)"
    )
    assert report.main([path, "--color", "never"]) == 0
    out = capsys.readouterr().out
    timeline = [line.strip() for line in out.splitlines() if line.startswith("  [")]
    assert [line.split()[1] for line in timeline] == [
        "03:13:21.123456", "LOST", "03:13:22.123456", "LOST", "03:13:23.123456",
    ]  # fmt: skip
    assert built.describe_losses() + "\n" in out
    assert report.main([path, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lost"] == 212 and [m["lost"] for m in doc["losses"]] == [212, None]
    html = tmp_path / "w.html"
    assert report.main([path, "--format", "html", "--output", str(html)]) == 0
    page = html.read_text()
    assert page.count('<tr class="lost">') == 2
    assert "<b>212 accesses lost here</b>" in page
    assert page.index("212 accesses lost here") < page.index("<b>0x02</b>")
    assert 'id="total-lost">212<' in page


def test_a_log_of_loss_lines_only_reports_without_failing(tmp_path, capsys):
    path = tmp_path / "w.jsonl"
    path.write_text(lost_line(OVERFLOW))
    assert report.main([str(path), "--color", "never"]) == 0
    assert "lost: 212 accesses not logged, at 1 place" in capsys.readouterr().out
    assert report.main([str(path), "--format", "html", "--output", str(tmp_path / "w.html")]) == 0


def test_read_log_gives_only_records_and_the_losses_to_whoever_asks(tmp_path):
    path = write_stream(tmp_path / "w.jsonl")
    assert [number for number, _ in read_log(path)] == [1, 3, 5]  # every reader of records
    losses = []
    assert [record.seq for _, record in read_log(path, losses.append)] == [1, 2, 3]
    assert losses == [OVERFLOW, THROTTLE]
