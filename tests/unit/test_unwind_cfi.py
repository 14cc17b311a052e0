"""CFA and register rules from small hand-built CFI, and the DWARF expressions CFI uses."""

from __future__ import annotations

import struct

import pytest

from gdb_qznusnih.perf.unwind_cfi import (
    OFFSET,
    REGISTER,
    UNDEFINED,
    VAL_OFFSET,
    CfiError,
    CfiSection,
    rule_in_fde,
)
from gdb_qznusnih.perf.unwind_expr import UnknownValue, UnsupportedExpression, evaluate

SECTION_VADDR = 0x2000
FUNCTION = 0x1100
# glibc's lazy-binding PLT entries: CFA = rsp + 8 + (rip & 15 >= 11 ? 8 : 0)
PLT_EXPRESSION = bytes.fromhex("770880003f1a3b2a332422")


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def entry(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


def eh_frame(fde_program: bytes, augmentation: bytes = b"zR", span: int = 0x40) -> bytes:
    """One CIE (CFA = rsp+8, ra at CFA-8) and one FDE for [FUNCTION, FUNCTION+span)."""
    aug_data = bytes([0x1B])  # 'R': FDE pointers pcrel sdata4 ('S' has no data)
    cie_body = struct.pack("<IB", 0, 1) + augmentation + b"\0" + uleb(1) + b"\x78" + b"\x10"
    cie_body += uleb(len(aug_data)) + aug_data + bytes.fromhex("0c07089001")
    cie = entry(cie_body)
    fde_start = len(cie)
    pointer_field = fde_start + 8  # after the length and the CIE pointer
    begin = FUNCTION - (SECTION_VADDR + pointer_field)
    fde_body = struct.pack("<Iii", pointer_field - 4, begin, span) + uleb(0) + fde_program
    return cie + entry(fde_body) + struct.pack("<I", 0)


def rule_at(section_bytes: bytes, pc: int):
    section = CfiSection(section_bytes, SECTION_VADDR, is_eh_frame=True)
    index = section.scan()
    assert index.starts == [FUNCTION]
    return rule_in_fde(section.fde_at(index.offsets[0]), pc)


# push rbp; mov rsp,rbp; ... remember; leave-like epilogue; restore; rip undefined at the end
PROGRAM = bytes.fromhex(
    "41"  # advance 1
    "0e10"  # def_cfa_offset 16
    "8602"  # rbp at CFA-16
    "43"  # advance 3 (to +4)
    "0d06"  # def_cfa_register rbp
    "0a"  # remember_state
    "4a"  # advance 10 (to +14)
    "0c0708"  # def_cfa rsp+8
    "c6"  # restore rbp (CIE: same value)
    "41"  # advance 1 (to +15)
    "0b"  # restore_state
    "42"  # advance 2 (to +17)
    "0710"  # rip undefined
    "0903"
    "0c"  # rbx in r12
    "140d02"  # r13 = CFA-16 (val_offset)
)


@pytest.mark.parametrize(
    ("offset", "cfa", "saved"),
    [
        (0, (7, 8), {16: (OFFSET, -8)}),
        (1, (7, 16), {16: (OFFSET, -8), 6: (OFFSET, -16)}),
        (13, (6, 16), {16: (OFFSET, -8), 6: (OFFSET, -16)}),
        (14, (7, 8), {16: (OFFSET, -8)}),
        (15, (6, 16), {16: (OFFSET, -8), 6: (OFFSET, -16)}),
        (
            17,
            (6, 16),
            {16: (UNDEFINED, 0), 6: (OFFSET, -16), 3: (REGISTER, 12), 13: (VAL_OFFSET, -16)},
        ),
    ],
)
def test_cfa_program_rules_at_each_pc(offset, cfa, saved):
    rule = rule_at(eh_frame(PROGRAM), FUNCTION + offset)
    assert (rule.cfa_register, rule.cfa_offset, rule.cfa_expression) == (*cfa, None)
    assert {number: (kind, arg) for number, kind, arg in rule.saved} == saved
    assert (rule.function_start, rule.function_end) == (FUNCTION, FUNCTION + 0x40)
    assert rule.ra_column == 16 and not rule.signal_frame


def test_signal_frame_augmentation_and_cfa_expression():
    program = b"\x0f" + uleb(len(PLT_EXPRESSION)) + PLT_EXPRESSION
    rule = rule_at(eh_frame(program, augmentation=b"zRS"), FUNCTION + 2)
    assert rule.signal_frame
    assert (rule.cfa_register, rule.cfa_expression) == (-1, PLT_EXPRESSION)


def test_unknown_cfa_instruction_is_refused():
    with pytest.raises(CfiError, match="0x3f is not supported"):
        rule_at(eh_frame(b"\x3f"), FUNCTION)


def test_cut_short_program_is_refused():
    with pytest.raises(CfiError, match="cut short"):
        rule_at(eh_frame(b"\x0c\x07"), FUNCTION)  # def_cfa without its offset


def test_restore_state_without_remember_is_refused():
    with pytest.raises(CfiError, match="restore_state"):
        rule_at(eh_frame(b"\x0b"), FUNCTION)


def registers(**values: int) -> list[int | None]:
    names = "rax rdx rcx rbx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip".split()
    return [values.get(name) for name in names]


def no_memory(address: int, size: int):
    return None


@pytest.mark.parametrize(("rip_low", "cfa"), [(0x0, 0x1008), (0xA, 0x1008), (0xB, 0x1010)])
def test_plt_expression(rip_low, cfa):
    regs = registers(rsp=0x1000, rip=0x401020 + rip_low)
    assert evaluate(PLT_EXPRESSION, regs, no_memory) == cfa


def test_signal_trampoline_expression_reads_memory():
    memory = {0x7F00 + 160: 0x7FF0}
    regs = registers(rsp=0x7F00)
    cfa_expression = bytes.fromhex("77a00106")  # breg7 160; deref
    assert evaluate(cfa_expression, regs, lambda address, size: memory.get(address)) == 0x7FF0
    with pytest.raises(UnknownValue):
        evaluate(cfa_expression, regs, no_memory)


def test_expression_with_the_cfa_pushed_first():
    # DW_CFA_expression rules start with the CFA on the stack: CFA - 24
    assert evaluate(bytes.fromhex("08181c"), registers(), no_memory, (0x5000,)) == 0x5000 - 24


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("09f9321b", (-7 // 2 + 1) & (2**64 - 1)),  # const1s -7; lit2; div: -3 (toward 0)
        ("31323317", 1),  # lit1 lit2 lit3 rot: the old third is on top
        ("313233171313", 2),  # ... drop drop: the old second went third
        ("3a121e2302", 102),  # lit10 dup mul plus_uconst 2
        ("30280300352f010036", 5),  # lit0; bra (not taken); lit5; skip lit6
        ("311f20", 0),  # lit1 neg not
    ],
)
def test_expression_operations(expression, value):
    assert evaluate(bytes.fromhex(expression), registers(), no_memory) == value


@pytest.mark.parametrize(
    "expression",
    [
        "2ffdff",  # skip -3: jumps to itself forever
        "03" + "00" * 8,  # DW_OP_addr: a link-time address, not supported in CFI here
        "0c01",  # const4u cut short
        "",  # leaves nothing
    ],
)
def test_bad_expressions_are_refused_not_run(expression):
    with pytest.raises(UnsupportedExpression):
        evaluate(bytes.fromhex(expression), registers(), no_memory)


def test_unknown_register_in_expression():
    with pytest.raises(UnknownValue):
        evaluate(bytes.fromhex("7608"), registers(rsp=1), no_memory)  # breg6 (rbp) unknown
