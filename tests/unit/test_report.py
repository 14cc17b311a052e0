"""`qznusnih report`: decoding, filters, times, the timeline, text/JSON/HTML, errors."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_qznusnih.record.access import Frame, Record
from gdb_qznusnih.report import cli as report
from gdb_qznusnih.report.build import (
    Change,
    ChangeLog,
    Filters,
    UsageError,
    build_report,
    parse_time_bound,
)
from gdb_qznusnih.sinks.formats import JsonLine, LogDecoder, record_from_json, to_json
from tests.records import T, frame_tuples, make_record, optional_names

ANSI = re.compile(r"\x1b\[")

MAIN = Frame(2, 0x5555555552A0, "main", "prog.c", 61)
VIA_A = Frame(1, 0x555555555180, "via_a", "prog.c", 8)
VIA_B = Frame(1, 0x555555555190, "via_b", "prog.c", 9)
CPP = Frame(0, 0x555555555100, "ns::f<int, std::less<int>>&", "prog.cc", 7)
MEMCPY = Frame(0, 0x7FFFF7F2A100, "__memmove_avx_unaligned_erms", None, None)


CALL = (CPP, VIA_A, MAIN)


# Written the way qzn-watch writes them; values 0 -> 1 -> 1 -> 2, one read, two threads.
RECORDS = [
    make_record(seq=1, value=1, old=0, tid=100, frames=CALL),
    make_record(seq=2, kind="read", value=1, tid=100, time=T + 0.5, frames=(MEMCPY, VIA_B, MAIN)),
    make_record(seq=3, value=1, old=1, tid=100, time=T + 1.0, frames=(CPP, VIA_B, MAIN)),
    make_record(seq=4, value=2, old=1, tid=101, time=T + 2.0, frames=(VIA_B, MAIN)),
    make_record(seq=5, kind="read", value=2, tid=101, time=T + 3.0, frames=CALL),
]


def write_log(path, records=RECORDS):
    encoder = JsonLine()
    path.write_text("".join(encoder.encode(r) for r in records))
    return str(path)


@pytest.fixture
def log(tmp_path):
    return write_log(tmp_path / "w.jsonl")


def run_main(capsys, *argv):
    status = report.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------- decoding

records = st.builds(
    Record,
    seq=st.integers(1, 10**9),
    kind=st.sampled_from(["read", "write"]),
    addr=st.integers(0, 2**64 - 1),
    length=st.sampled_from([1, 2, 4, 8]),
    old=st.one_of(st.none(), st.integers(0, 255)),
    value=st.integers(0, 2**64 - 1),
    pid=st.integers(1, 2**22),
    tid=st.integers(1, 2**22),
    pc=st.integers(0, 2**64 - 1),
    insn=optional_names,
    time=st.floats(0, 4e9),
    frames=frame_tuples,
    kind_from=st.sampled_from(["insn", "value"]),
    mode=st.sampled_from([None, "user", "kernel"]),
    comm=optional_names,
    extra=st.dictionaries(st.sampled_from(["cr3", "cpu"]), st.integers(0, 99), max_size=2),
    more_frames=st.booleans(),
    changed_unseen=st.booleans(),
)


@settings(deadline=None)  # a loaded machine must not fail a correct decoder
@given(records)
def test_decoder_agrees_with_record_from_json(record):
    line = JsonLine().encode(record)
    assert LogDecoder().decode(line) == record_from_json(json.loads(line))


def test_decoder_takes_other_key_orders_and_reuses_frames():
    doc = to_json(RECORDS[0])
    shuffled = json.dumps(dict(reversed(list(doc.items()))))
    decoder = LogDecoder()
    assert decoder.decode(shuffled) == record_from_json(doc)
    first = decoder.decode(json.dumps(doc))
    again = decoder.decode(json.dumps(to_json(RECORDS[4]) | {"seq": 9}))
    assert first.frames is not again.frames or first.frames == again.frames
    assert decoder.decode(json.dumps(doc)).frames is first.frames


@pytest.mark.parametrize(
    "line, why",
    [
        ('{"seq": 1, "kind": "read"', "not JSON"),
        ('{"seq": 1, "frames": [], "kind_from": "insn"}', "missing key"),
        ("[1, 2]", "malformed"),
        ('{"seq": 1, "frames": [], "kind_from": "insn"} trailing', "not one JSON object"),
    ],
)
def test_a_malformed_line_is_one_line_naming_its_number(tmp_path, capsys, line, why):
    path = tmp_path / "bad.jsonl"
    good = JsonLine().encode(RECORDS[0])
    path.write_text(good + "\n" + line + "\n")
    status, out, err = run_main(capsys, path)
    assert status == 1 and out == ""
    assert err.startswith(f"qznusnih report: {path}:3: malformed record") and why in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_file_is_one_line_and_exit_1(tmp_path, capsys):
    status, out, err = run_main(capsys, tmp_path / "none.jsonl")
    assert (status, out) == (1, "")
    assert err == f"qznusnih report: cannot read {tmp_path}/none.jsonl: No such file or directory\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: LOG.jsonl"),
        (["x", "--kind", "both"], "invalid choice"),
        (["x", "--since", "yesterday"], "--since: bad time 'yesterday'"),
        (["x", "--func", "(", "--top", "2"], "is not a regular expression"),
        (["x", "--top", "-1"], "not a count"),
        (["x", "--style", "no-such-style"], "unknown style"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, argv, message):
    status, out, err = run_main(capsys, *argv)
    assert status == 2 and out == "" and message in err and err.count("\n") == 1


def test_help_exits_0_and_documents_the_times(capsys):
    status, out, _ = run_main(capsys, "--help")
    assert status == 0
    assert "+1.5" in out and "03:13:20.5" in out and "malformed" in out


# ---------------------------------------------------------------- times and filters


def test_time_bounds():
    assert parse_time_bound("+1.5", T) == T + 1.5
    assert parse_time_bound("2026-11-26T03:13:20.5Z", T) == pytest.approx(T - 0.123456 + 0.5)
    assert parse_time_bound("2026-11-26T03:13:21", T) == int(T) + 1
    assert parse_time_bound("03:13:22.25", T) == pytest.approx(int(T) + 2.25)
    for bad in ["1.5", "+", "3:13:20", "2026-11-26 03:13:20", "+1e3"]:
        with pytest.raises(UsageError):
            parse_time_bound(bad, T)


@pytest.mark.parametrize(
    "filters, seqs",
    [
        (Filters(), [1, 2, 3, 4, 5]),
        (Filters(kind="read"), [2, 5]),
        (Filters(tids=(101,)), [4, 5]),
        (Filters(since="+1", until="+2.0"), [3, 4]),
        (Filters(until="03:13:20.623456"), [1, 2]),
        (Filters(func=re.compile(r"^via_b$")), [2, 3, 4]),
        (Filters(kind="write", func=re.compile("ns::f<int")), [1, 3]),
    ],
)
def test_filters(log, filters, seqs):
    matches = filters.matcher(RECORDS[0].time)
    assert [r.seq for r in RECORDS if matches(r)] == seqs
    built = build_report(log, filters)
    assert built.records == 5 and built.summary.total == len(seqs)
    assert built.summary.writes == sum(r.kind == "write" for r in RECORDS if r.seq in seqs)


# ---------------------------------------------------------------- the report


def test_sites_group_by_innermost_frame_with_source_and_keep_the_first_sample(log):
    built = build_report(log)
    writes = built.sites("write")
    assert [(s.func, s.line, s.count) for s, _ in writes] == [
        ("ns::f<int, std::less<int>>&", 7, 2),
        ("via_b", 9, 1),
    ]
    assert writes[0][1].seq == 1, "the sample is the site's first record"
    reads = built.sites("read")
    assert [(s.func, s.count) for s, _ in reads] == [
        ("ns::f<int, std::less<int>>&", 1),
        ("via_b", 1),
    ]
    assert [s.func for s, _ in build_report(log, top=1).sites("read")] == [reads[0][0].func]


def test_timeline_lists_only_value_changes_and_the_writers(log):
    built = build_report(log)
    assert [(c.seq, c.old, c.value) for c in built.changes] == [(1, 0, 1), (4, 1, 2)]
    assert built.first_writer.seq == 1 and built.last_writer.seq == 4


def test_a_write_without_old_value_compares_with_the_value_before(tmp_path):
    records = [
        make_record(seq=1, kind="read", value=5),
        make_record(seq=2, old=None, value=5, kind_from="value"),
        make_record(seq=3, old=None, value=6, kind_from="value"),
    ]
    built = build_report(write_log(tmp_path / "v.jsonl", records))
    assert [(c.seq, c.old, c.value) for c in built.changes] == [(3, 5, 6)]


def test_text_report(log, capsys):
    status, out, _ = run_main(capsys, log, "--color", "never")
    assert status == 0 and not ANSI.search(out)
    assert "5 of 5 records" in out
    assert "summary: 5 accesses: 2 reads, 3 writes" in out
    assert "WRITE call sites (3 writes):" in out and "READ call sites (2 reads):" in out
    assert "  1. ns::f<int, std::less<int>>& at prog.cc:7  2 (66.7%)" in out
    assert "first writer:\n    [1:1] WRITE" in out and "last writer:\n    [1:4] WRITE" in out
    assert "value changes: 2 of 3 writes" in out
    assert "  [4] 03:13:22.123456  +2.000000 s  tid 101  0x01 → 0x02  via_b at prog.c:9" in out


@pytest.mark.parametrize(
    "argv, tty, environ, coloured",
    [
        (["--color", "always"], False, {"NO_COLOR": "1"}, True),
        (["--color", "never"], True, {}, False),
        ([], True, {"NO_COLOR": ""}, False),
        ([], True, {}, True),
        ([], False, {}, False),
        (["--output", "FILE"], True, {}, False),
    ],
)
def test_colour_follows_color_no_color_and_the_terminal(
    log, tmp_path, argv, tty, environ, coloured
):
    class Out:
        text = ""

        def write(self, text):
            self.text += text

    out = Out()
    target = tmp_path / "out.txt"
    argv = [str(target) if a == "FILE" else a for a in argv]
    report.run([log, *argv], out, out_is_tty=tty, environ=environ)
    text = target.read_text() if "--output" in argv else out.text
    assert bool(ANSI.search(text)) is coloured
    assert "value changes" in text


def test_json_report(log, capsys):
    status, out, _ = run_main(capsys, log, "--format", "json", "--kind", "write")
    doc = json.loads(out)
    assert status == 0 and (doc["records"], doc["matched"]) == (5, 3)
    assert doc["filters"] == "--kind write"
    assert doc["summary"]["writes"] == 3 and doc["summary"]["reads"] == 0
    assert [s["count"] for s in doc["sites"]["write"]] == [2, 1]
    assert doc["sites"]["write"][0]["sample"]["seq"] == 1
    assert doc["first_writer"]["seq"] == 1 and doc["last_writer"]["seq"] == 4
    assert [c["seq"] for c in doc["changes"]] == [1, 4]


def test_an_empty_log_gives_an_empty_report(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    status, out, _ = run_main(capsys, path)
    assert status == 0 and "0 of 0 records" in out and "value changes: 0 of 0 writes" in out


# ---------------------------------------------------------------- HTML


def test_html_is_self_contained_and_escapes_the_log(log, tmp_path):
    html_path = tmp_path / "w.html"
    report.write_html_report(log, str(html_path))
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|src=|href=|@import|url\(|<script|<link", page, re.I)
    assert "ns::f<int" not in page and "ns::f&lt;int, std::less&lt;int&gt;&gt;&amp;" in page
    for section in ("summary", "reads", "writes", "writers", "timeline"):
        assert f'id="{section}"' in page
    assert 'id="total-reads">2<' in page and 'id="total-writes">3<' in page
    assert page.count('<tr class="change">') == 2
    assert ".hl .nf" in page, "the pygments style is inlined"


def test_html_with_a_style_and_to_stdout(log, capsys):
    status, out, _ = run_main(capsys, log, "--format", "html", "--style", "monokai")
    assert status == 0 and out.startswith("<!DOCTYPE html>") and "#272822" in out


def test_write_html_report_to_a_bad_path_is_one_line(log, tmp_path):
    with pytest.raises(report.ReportError, match=r"^cannot write .*/no/dir/w.html: No such file"):
        report.write_html_report(log, str(tmp_path / "no" / "dir" / "w.html"))


def test_whole_system_modes_in_text_and_html(tmp_path, capsys):
    records = [
        make_record(seq=1, mode="kernel", comm="cat"),
        make_record(seq=2, kind="read", mode="user", comm="cat"),
        make_record(seq=3, kind="read", mode="user", comm="cat"),
    ]
    log = write_log(tmp_path / "qemu.jsonl", records)
    status, out, _ = run_main(capsys, log)
    assert status == 0 and "  by mode: kernel 1, user 2" in out
    status, out, _ = run_main(capsys, log, "--format", "html")
    assert '<table id="modes">' in out and "<th>kernel</th><td class='num'>1</td>" in out


def test_change_log_gives_back_what_it_was_given_even_numbers_no_array_holds():
    given = [
        Change(1, 1795662800.5, 4243, None, 0x2A, 1, "main at mix.c:61"),
        Change(2, 1795662800.75, 4244, 0x2A, 2**64 - 1, 8, "touch at c.c:3"),
        Change(3, 1795662801.0, 4243, -1, 2**70, 1, "main at mix.c:61"),  # a foreign log
        Change(4, 1795662801.25, 4243, 7, 8, 1, "main at mix.c:61"),
        Change(5, 1795662801.5, 4243, 8, 0, 1, "main at mix.c:61", unseen=True),
    ]
    log = ChangeLog()
    for change in given:
        log.append(change)
    assert len(log) == 5 and log.unseen == 1 and list(log) == given and log[1:3] == given[1:3]


def test_a_change_nobody_saw_is_a_marked_row_of_the_timeline(tmp_path, capsys):
    records = [
        make_record(seq=1, old=0, value=0x5A),
        make_record(seq=2, kind="read", value=0x77, changed_unseen=True, time=T + 1),
        make_record(seq=3, old=0x42, value=0x33, changed_unseen=True, time=T + 2),
    ]
    log = write_log(tmp_path / "u.jsonl", records)
    built = build_report(log)
    assert [(c.seq, c.old, c.value, c.unseen) for c in built.changes] == [
        (1, 0, 0x5A, False), (2, 0x5A, 0x77, True), (3, 0x77, 0x42, True), (3, 0x42, 0x33, False),
    ]  # fmt: skip
    status, out, _ = run_main(capsys, log, "--color", "never")
    assert status == 0 and "value changes: 2 of 2 writes, 2 unseen" in out
    assert (
        "  [2] 03:13:21.123456  +1.000000 s  tid 4243  0x5a → 0x77  (changed unseen) found by"
        in out
    )
    doc = json.loads(run_main(capsys, log, "--format", "json")[1])
    assert [c.get("unseen", False) for c in doc["changes"]] == [False, True, True, False]
    page = tmp_path / "u.html"
    report.write_html_report(log, str(page))
    html = page.read_text()
    assert html.count('<tr class="change">') == 2 and html.count('<tr class="change unseen">') == 2
    assert "2 \u26a1 unseen" in html
