"""Blocks of text for the terminal and the text logs, plain and coloured."""

from __future__ import annotations

import re

import pytest

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.record.access import Frame, format_time
from gdb_qznusnih.sinks.colour import Colorizer, check_style, resolve_color
from gdb_qznusnih.sinks.formats import BlockRenderer
from gdb_qznusnih.sinks.render import format_backtrace
from tests.records import FRAMES, T, make_record, plain_block

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_write_block_layout():
    assert plain_block(make_record()) == (
        "[1:17] WRITE 0x55d0c3a0b04b  0x00 → 0x01  tid 4243  03:13:20.123456\n"
        "#0  0x000055d0c3a08168 in round_once at mix.c:40\n"
        "#1  0x000055d0c3a0826a in main at mix.c:61\n"
        "    movb $0x1,(%rax)\n"
    )


def test_read_block_layout_with_args():
    record = make_record(kind="read", seq=18, insn="movzbl (%rax),%eax")
    assert plain_block(record, show_args=True) == (
        "[1:18] READ  0x55d0c3a0b04b  0x01  tid 4243  03:13:20.123456\n"
        "#0  0x000055d0c3a08168 in round_once (i=3) at mix.c:40\n"
        "#1  0x000055d0c3a0826a in main (argc=1, argv=0x7ffd5c1e0a18) at mix.c:61\n"
        "    movzbl (%rax),%eax\n"
    )


def test_header_time_matches_the_json_time():
    for t in (T, 1795662800.9999996, 1795662859.5):
        header = plain_block(make_record(time=t)).splitlines()[0]
        assert header.endswith(format_time(t)[11:-1])


def test_frames_like_gdb_bt():
    def line(frame: Frame, show_args: bool = False) -> str:
        return format_backtrace((frame,), show_args)

    assert line(Frame(0, 0x401136, None, None, None)) == "#0  0x00401136 in ??\n"
    assert line(Frame(12, 0x401136, "f", "x.c", None)) == "#12 0x00401136 in f at x.c\n"
    frame = Frame(3, 0x401136, "f", "x.c", 9, "")
    assert line(frame, show_args=True) == "#3  0x00401136 in f () at x.c:9\n"
    assert line(Frame(3, 0x401136, "f", "x.c", 9), True) == "#3  0x00401136 in f at x.c:9\n"


def test_32_bit_addresses_are_8_digits():
    frames = (Frame(0, 0x565561D7, "round_once", "mix.c", 40),)
    block = plain_block(make_record(frames=frames, pc=0x565561D7, addr=0x56559008))
    assert "#0  0x565561d7 in round_once at mix.c:40\n" in block
    assert "[1:17] WRITE 0x56559008 " in block


def test_wider_values_and_unknown_old_value():
    header = plain_block(make_record(length=4, old=0x1234, value=0xDEADBEEF)).splitlines()[0]
    assert "  0x00001234 → 0xdeadbeef  " in header
    header = plain_block(make_record(length=8, old=None, value=1)).splitlines()[0]
    assert "  ? → 0x0000000000000001  " in header


def test_instruction_whitespace_is_normalised_and_missing_insn_has_no_line():
    assert plain_block(make_record(insn="lock  xaddl\t%eax,0x10(%rbx)")).endswith(
        "\n    lock xaddl %eax,0x10(%rbx)\n"
    )
    block = plain_block(make_record(insn=None))
    assert block.endswith("in main at mix.c:61\n")
    assert len(block.splitlines()) == 3


def test_value_guess_and_whole_system_fields_in_the_header():
    header = plain_block(make_record(kind_from="value")).splitlines()[0]
    assert header.endswith("(kind guessed from the value change)")
    header = plain_block(make_record(kind="read", mode="kernel", comm="tester")).splitlines()[0]
    assert header.endswith("03:13:20.123456  kernel pid 4242 (tester)")


def test_no_escape_codes_without_colour():
    block = plain_block(make_record()) + plain_block(make_record(kind="read"))
    assert "\x1b" not in block


@pytest.mark.parametrize("style", [None, "monokai", "default", "solarized-light"])
def test_colour_keeps_the_text_and_tells_reads_from_writes(style):
    pytest.importorskip("pygments")
    renderer = BlockRenderer(Colorizer(style))
    for kind in ("write", "read"):
        block = renderer.render(make_record(kind=kind))
        assert "\x1b[" in block
        assert ANSI.sub("", block) == plain_block(make_record(kind=kind))
    write_label = renderer.render(make_record(kind="write")).split("WRITE")[0]
    read_label = renderer.render(make_record(kind="read")).split("READ")[0]
    assert ANSI.findall(write_label)[-1] != ANSI.findall(read_label)[-1]


def test_colour_reaches_frames_and_instruction():
    pytest.importorskip("pygments")
    lines = BlockRenderer(Colorizer()).render(make_record()).splitlines()
    assert all("\x1b[" in line for line in lines)
    assert "\x1b[38;5;" in BlockRenderer(Colorizer("monokai")).render(make_record())


def test_unknown_style_is_a_one_line_value_error():
    pytest.importorskip("pygments")
    with pytest.raises(ValueError) as caught:
        Colorizer("no-such-style")
    message = str(caught.value)
    assert "\n" not in message
    assert "no-such-style" in message
    assert "pygmentize -L styles" in message
    assert "monokai" in message
    check_style(None)
    check_style("monokai")


@pytest.mark.parametrize(
    ("mode", "tty", "environ", "expected"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, False),
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
)
def test_resolve_color(mode, tty, environ, expected):
    assert resolve_color(mode, tty, environ) is expected


def test_resolve_color_refuses_unknown_modes():
    with pytest.raises(ValueError, match="auto, always or never"):
        resolve_color("sometimes", True, {})


def test_backtraces_are_rendered_once_per_call_path():
    renderer = BlockRenderer()
    other = (Frame(0, 0x401000, "g", "g.c", 1), Frame(1, 0x401100, "main", "g.c", 9))
    for seq in range(1000):
        renderer.render_bytes(make_record(seq=seq, frames=FRAMES if seq % 2 else other))
    assert len(renderer._bodies) == 2


def test_cached_backtrace_follows_symbol_changes_after_clear():
    caches = CacheRegistry()
    renderer = BlockRenderer(caches=caches)
    assert "in round_once" in renderer.render(make_record())
    renamed = (Frame(0, FRAMES[0].pc, "renamed", "mix.c", 40), FRAMES[1])
    assert "in round_once" in renderer.render(make_record(frames=renamed))  # same pcs: cached
    caches.clear()
    assert "in renamed" in renderer.render(make_record(frames=renamed))


def test_args_are_part_of_the_cache_key_when_shown():
    renderer = BlockRenderer(show_args=True)
    assert "(i=3)" in renderer.render(make_record())
    frames = (Frame(0, FRAMES[0].pc, "round_once", "mix.c", 40, "i=4"), FRAMES[1])
    assert "(i=4)" in renderer.render(make_record(frames=frames))
