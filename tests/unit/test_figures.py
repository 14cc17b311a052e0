"""The report's pictures (report/figures.py): boxes by count, kernel colour, bounded size."""

from __future__ import annotations

import re

from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.report import figures
from gdb_qznusnih.report.figures import Figures, flame_graph, nice_ticks, rate_plot, value_plot
from tests.records import T, make_record

VIA_A = (Frame(0, 0x401100, "touch", "c.c", 5), Frame(1, 0x401200, "via_a", "c.c", 9),
         Frame(2, 0x401300, "main", "c.c", 20))  # fmt: skip
VIA_B = (Frame(0, 0x401100, "touch", "c.c", 5), Frame(1, 0x401250, "via_b", "c.c", 12),
         Frame(2, 0x401310, "main", "c.c", 21))  # fmt: skip


def boxes(svg: str) -> list[tuple[str, float]]:
    """(hover title, width) of each drawn box."""
    found = re.findall(r"<title>([^<]*)</title><rect [^>]*width=\"([\d.]+)\"", svg)
    return [(title, float(width)) for title, width in found]


def test_box_widths_are_proportional_to_counts_and_titles_say_where_and_how_many():
    pictures = Figures()
    for i in range(30):
        pictures.add(make_record(frames=VIA_A if i % 3 else VIA_B, time=T + i), False)
    drawn = dict(boxes(flame_graph(pictures.stacks("write"), "f")))
    assert drawn["all writes: 30 accesses (100.0%)"] == figures.WIDTH
    assert drawn["via_a at c.c:9: 20 accesses (66.7%)"] == round(figures.WIDTH * 2 / 3, 2)
    assert drawn["via_b at c.c:12: 10 accesses (33.3%)"] == round(figures.WIDTH / 3, 2)
    # main was reached from two lines: one box, its title says so
    assert "main at c.c:21 (and other lines): 30 accesses (100.0%)" in drawn  # VIA_B came first
    assert len(drawn) == 1 + 1 + 2 + 2  # root, main, via_a/via_b, touch under each


def test_kernel_frames_have_their_own_colour_only_in_records_with_a_mode():
    kernel = (Frame(0, 0xFFFFFFFF81A0C3D0, "clear_user", None, None), *VIA_A)
    pictures = Figures()
    pictures.add(make_record(frames=kernel, mode="kernel"), False)
    svg = flame_graph(pictures.stacks("write"), "f")
    assert svg.count('class="frame kernel"') == 1
    assert f'fill="{figures.KERNEL_FILL}"' in svg
    assert "clear_user [kernel]: 1 access" in svg
    native = Figures()  # no mode: a native log, where no frame is the kernel's
    native.add(make_record(frames=kernel), False)
    assert 'class="frame kernel"' not in flame_graph(native.stacks("write"), "f")


def test_no_records_of_a_kind_is_a_note_not_an_empty_picture():
    assert flame_graph(Figures().stacks("read"), "f") == '<p class="muted">none</p>'
    assert "never changed" in value_plot(Figures(), T, None, 1)
    assert "no accesses" in rate_plot(Figures())


def test_value_plot_marks_each_change_by_site_and_the_changes_nobody_saw():
    pictures = Figures()
    for i, value in enumerate((1, 2, 3)):
        pictures.add(make_record(value=value, old=value - 1, time=T + i), True)
    pictures.add(make_record(kind="read", value=7, time=T + 3, changed_unseen=True), False)
    svg = value_plot(pictures, T, 0, 1)
    assert svg.count('class="write-mark"') == 3
    assert svg.count('class="unseen-mark"') == 1
    assert "changed unseen: 0x07" in svg and "0x03 by round_once at mix.c:40" in svg


def test_ticks_are_round_in_decimal_and_in_powers_of_two_for_hex_values():
    assert nice_ticks(0, 0.0125) == [0.0, 0.0025, 0.005, 0.0075, 0.01, 0.0125]
    assert nice_ticks(0, 0x55, 4, binary=True) == [0, 32, 64]
    assert nice_ticks(5, 5) == [5]


def test_a_million_records_keep_the_pictures_small():
    pictures = Figures()
    record = make_record()
    for n in range(1_000_000):  # 10 s of writes, each changing the value
        record.time, record.value = T + n * 1e-5, n & 0xFF
        pictures.add(record, True)
    assert len(pictures.rates.bins) <= figures.MAX_BINS
    assert len(pictures.values.points) <= 8 * figures.POINT_COLUMNS
    assert len(pictures.values.points) > figures.POINT_COLUMNS  # every column drawn
    page = value_plot(pictures, T, 0, 1) + rate_plot(pictures)
    page += flame_graph(pictures.stacks("write"), "f")
    assert len(page) < 400_000, len(page)


def test_equal_call_paths_held_in_different_tuples_are_one_box():
    pictures = Figures()
    for i in range(figures.MAX_IDENTITIES + 10):  # past the identity table: merged by value
        pictures.add(make_record(frames=(*VIA_A,), time=T + i), False)  # a new tuple each
    drawn = dict(boxes(flame_graph(pictures.stacks("write"), "f")))
    total = figures.MAX_IDENTITIES + 10
    assert drawn[f"via_a at c.c:9: {total:,} accesses (100.0%)"] == figures.WIDTH
    assert len(drawn) == 4
