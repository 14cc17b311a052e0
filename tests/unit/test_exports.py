"""The folded-stack and trace-event forms of single records (report/exports.py)."""

from __future__ import annotations

from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.report.exports import folded_stack, trace_event
from tests.records import make_record

KERNEL_FRAMES = (
    Frame(0, 0xFFFFFFFF81A0C3D0, "clear_user", "arch/x86/lib/usercopy_64.c", 40),
    Frame(1, 0xFFFFFFFF8123_4560, "read_zero", "drivers/char/mem.c", 508),
    Frame(2, 0x7F00_1234_5678, "read", None, None),
    Frame(3, 0x5555_5555_5200, "main", "t.c", 9),
)


def test_a_user_record_is_kind_then_outermost_to_innermost():
    assert folded_stack(make_record()) == "write;main;round_once"


def test_kernel_frames_get_flamegraphs_kernel_suffix_only_in_records_with_a_mode():
    record = make_record(frames=KERNEL_FRAMES, mode="kernel")
    assert folded_stack(record) == "write;main;read;read_zero_[k];clear_user_[k]"
    i386 = (Frame(0, 0xC1234567, "clear_user", None, None), Frame(1, 0x0804_9000, "main", None, 1))
    assert folded_stack(make_record(frames=i386, mode="kernel")) == "write;main;clear_user_[k]"
    assert folded_stack(make_record(frames=i386)) == "write;main;clear_user"  # native: no mode


def test_frames_without_a_function_are_their_pc_and_separators_are_replaced():
    frames = (Frame(0, 0x401136, None, None, None), Frame(1, 0x401200, "op;er ator\n", None, None))
    assert folded_stack(make_record(frames=frames)) == "write;op_er_ator_;0x401136"


def test_a_trace_event_is_a_thread_instant_in_microseconds():
    event = trace_event(make_record(time=1795662800.123456))
    assert event["ph"] == "i" and event["s"] == "t" and event["name"] == "write"
    assert event["ts"] == 1795662800123456.0
    assert (event["pid"], event["tid"]) == (4242, 4243)
    assert event["args"]["site"] == "round_once at mix.c:40"
    assert (event["args"]["old"], event["args"]["value"]) == (0, 1)
    assert "mode" not in event["args"]
