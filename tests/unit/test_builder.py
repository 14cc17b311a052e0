"""record/builder.py: one instruction's kinds into records, as both engines make them."""

from __future__ import annotations

from gdb_qznusnih.classify.values import full_register_reader
from gdb_qznusnih.record.access import Frame, Record
from gdb_qznusnih.record.builder import MEMORY, PREVIOUS, RecordBuilder
from gdb_qznusnih.record.condition import compile_condition

ADDR = 0x404040
READ, WRITE = "read", "write"


def registers(**values: int):
    regs = {"rax": 0, "rbx": ADDR, "rcx": 0, "rdx": 0, "rip": 0x401000, "eflags": 0}
    regs.update(values)
    return full_register_reader(regs.__getitem__, 8)


def build(builder, kinds, text, reg=None, memory=None):
    return builder.build(kinds, text, reg or registers(), 8, memory, 1, 2, 0x400FFD, 0.0, ())


def summary(records):
    return [(r.seq, r.kind, r.old, r.value, r.value_from, r.changed_unseen) for r in records]


def test_stores_and_loads_take_the_registers_value_not_memory():
    builder = RecordBuilder(1, ADDR, 1, known=0)

    def memory():
        raise AssertionError("memory read although the registers tell")

    store = build(builder, [WRITE], "mov %al,(%rbx)", registers(rax=0x11), memory)
    load = build(builder, [READ], "movzbl (%rbx),%ecx", registers(rcx=0x22), memory)
    assert summary(store + load) == [
        (1, WRITE, 0, 0x11, "registers", False),
        (2, READ, None, 0x22, "registers", True),  # 0x11 was the last value shown
    ]


def test_memory_only_where_the_instruction_does_not_tell_and_none_without_memory():
    gdb_like = RecordBuilder(1, ADDR, 1, known=5)
    perf_like = RecordBuilder(1, ADDR, 1, known=5)
    sse = "movq %xmm0,(%rbx)"
    assert summary(build(gdb_like, [WRITE], sse, memory=lambda: 9)) == [
        (1, WRITE, 5, 9, MEMORY, False)
    ]
    assert summary(build(perf_like, [WRITE], sse)) == [(1, WRITE, 5, None, None, False)]
    # the value is unknown now: the next load cannot be called a change nobody saw
    assert summary(build(perf_like, [READ], "movzbl (%rbx),%eax", registers(rax=7))) == [
        (2, READ, None, 7, "registers", False)
    ]


def test_read_modify_write_reads_the_previous_value_and_the_write_has_it_as_old():
    builder = RecordBuilder(1, ADDR, 1, known=3)
    records = build(builder, [READ, WRITE], "addb $0x3,(%rbx)", memory=lambda: 6)
    assert summary(records) == [
        (1, READ, None, 3, PREVIOUS, False),
        (2, WRITE, 3, 6, MEMORY, False),
    ]
    # xchg: the register now holds what memory held, a change no record showed
    records = build(builder, [READ, WRITE], "xchg %al,(%rbx)", registers(rax=0x40), lambda: 1)
    assert summary(records) == [
        (3, READ, None, 0x40, "registers", True),
        (4, WRITE, 0x40, 1, MEMORY, False),
    ]


def test_accesses_filtered_out_are_not_shown_so_the_next_record_says_the_value_changed():
    builder = RecordBuilder(1, ADDR, 1, access="w", known=1)
    assert build(builder, [READ], "movzbl (%rbx),%eax", registers(rax=0x77)) == []
    records = build(builder, [WRITE], "movb $0x33,(%rbx)")
    assert summary(records) == [(1, WRITE, 0x77, 0x33, "registers", True)]


def test_count_ends_the_records_even_inside_one_instruction():
    builder = RecordBuilder(1, ADDR, 1, count=3, known=0)
    build(builder, [WRITE], "movb $0x1,(%rbx)")
    assert not builder.count_reached
    records = build(builder, [READ, WRITE], "addb $0x3,(%rbx)", memory=lambda: 4)
    assert summary(records) == [
        (2, READ, None, 1, PREVIOUS, False),
        (3, WRITE, 1, 4, MEMORY, False),
    ]
    assert builder.count_reached
    assert build(builder, [WRITE], "movb $0x1,(%rbx)") == [] and builder.seq == 3


def test_if_keeps_matching_records_numbered_without_gaps_and_stop_if_ends_after_its_match():
    builder = RecordBuilder(
        1, ADDR, 1,
        condition=compile_condition("value != 2"),
        stop_condition=compile_condition("value == 4"),
    )  # fmt: skip
    logged = []
    for value in (1, 2, 3, 4, 5):
        logged += build(builder, [WRITE], "mov %al,(%rbx)", registers(rax=value))
    assert [(r.seq, r.value) for r in logged] == [(1, 1), (2, 3), (3, 4)]
    assert builder.end_reason == "--stop-if value == 4 matched"


def test_every_field_of_a_record_is_the_one_it_was_given():
    builder = RecordBuilder(3, ADDR, 1, known=5)
    frames = (Frame(0, 0x400FFD, "f", "f.c", 9),)
    (record,) = builder.build(
        [WRITE], "mov %al,(%rbx)", registers(rax=7), 8, None, 11, 12, 0x400FFD, 1.5, frames,
        "insn", mode="kernel", comm="worker", more_frames=True,
    )  # fmt: skip
    assert record == Record(
        seq=1, kind=WRITE, addr=ADDR, length=1, old=5, value=7, pid=11, tid=12, pc=0x400FFD,
        insn="mov %al,(%rbx)", time=1.5, frames=frames, kind_from="insn", mode="kernel",
        comm="worker", extra={}, watch=3, value_from="registers", more_frames=True,
        changed_unseen=False,
    )  # fmt: skip
    assert (
        record.extra
        is not builder.build([READ], None, registers(), 8, None, 1, 2, 0, 0.0, ())[0].extra
    )
