"""derive_value on real perf samples: tests/c/values.c makes every kind of access to a word with
exactly chosen instructions and peeks the word before and after each, so each sample's value is
checked against what the program really stored or loaded, byte for byte, for watches of 1, 2,
4 and 8 bytes at several offsets; and "unknown" exactly where the registers cannot know."""

from __future__ import annotations

import collections
import subprocess
from dataclasses import dataclass

import pytest

from gdb_qznusnih.classify.values import REGISTERS, UNKNOWN, derive_value
from gdb_qznusnih.classify.x86 import (
    READ,
    WRITE,
    classify_access,
    parse_instruction,
    string_access_near,
)
from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.events import EventConfig
from gdb_qznusnih.perf.hits import Hit
from gdb_qznusnih.perf.modules import ModuleMap
from gdb_qznusnih.perf.symbolizer import Symbolizer

pytestmark = pytest.mark.perf

CONFIG = CaptureConfig(events=EventConfig(stack_bytes=512))
# (offset into the word, length): every aligned shape a watch can have, and a few offsets
WATCHES = [(0, 1), (0, 2), (0, 4), (0, 8), (4, 4), (2, 2), (3, 1)]


@dataclass(frozen=True)
class Op:
    """What one op_* function of values.c does to the word: `width` bytes at `offset` (from the
    word's start), and for each access kind whether the registers after determine it."""

    offset: int
    width: int
    derivable: dict[str, bool]
    span: int = 0  # bytes a rep string op covers, from offset
    address_known: bool = True  # False: the instruction overwrote its own address register

    def overlaps(self, offset: int, length: int) -> bool:
        end = self.offset + (self.span or self.width)
        return self.offset < offset + length and offset < end

    def covers(self, offset: int, length: int) -> bool:
        if self.span:  # the same bytes in every element: the watch must sit inside one
            return (offset - self.offset) % self.width + length <= self.width
        if not self.address_known:  # only an access of the watch's own width is taken as at it
            return self.width == length
        return self.offset <= offset and offset + length <= self.offset + self.width


def W(known=True):
    return {WRITE: known}


def R(known=True):
    return {READ: known}


OPS = {
    "store_imm8": Op(0, 1, W()),
    "store_reg8": Op(0, 1, W()),
    "store_ah": Op(0, 1, W()),
    "store_imm8_at3": Op(3, 1, W()),
    "store_imm16": Op(0, 2, W()),
    "store_reg16": Op(0, 2, W()),
    "store_reg16_at2": Op(2, 2, W()),
    "store_imm32": Op(0, 4, W()),
    "store_reg32": Op(0, 4, W()),
    "store_reg32_at4": Op(4, 4, W()),
    "store_imm64": Op(0, 8, W()),
    "store_reg64": Op(0, 8, W()),
    "store_indexed": Op(0, 8, W()),
    "movnti": Op(0, 8, W()),
    "sete": Op(0, 1, W()),
    "push_reg": Op(0, 8, W()),
    "push_imm": Op(0, 8, W()),
    "pop_reg": Op(0, 8, R()),
    "stosq": Op(0, 8, W()),
    "rep_stosb": Op(0, 1, W(), span=8),
    "rep_stosl": Op(0, 4, W(), span=8),
    "movsq_store": Op(0, 8, W(False)),
    "movsq_load": Op(0, 8, R(False)),
    "lodsq": Op(0, 8, R()),
    "cmpxchg_ok": Op(0, 8, {READ: True, WRITE: True}),
    "cmpxchg_fail32": Op(0, 4, {READ: True, WRITE: True}),
    "cmpxchg16b": Op(-8, 16, {READ: True, WRITE: True}),
    "xchg": Op(0, 8, {READ: True, WRITE: False}),  # the new value was the register before
    "xadd32": Op(0, 4, {READ: True, WRITE: False}),
    "addb": Op(0, 1, {READ: False, WRITE: False}),
    "lock_addq": Op(0, 8, {READ: False, WRITE: False}),
    "sse_store": Op(0, 8, W(False)),
    "sse_load": Op(0, 8, R(False)),
    "store_pattern": Op(0, 8, W()),
    "movzbl": Op(0, 1, R()),
    "movsbl": Op(0, 1, R()),
    "movzwl": Op(0, 2, R()),
    "movswl": Op(0, 2, R()),
    "movslq": Op(0, 4, R()),
    "load32": Op(0, 4, R()),
    "load64": Op(0, 8, R()),
    "load_ah": Op(0, 1, R()),
    "load_at4": Op(4, 4, R()),
    "cmove": Op(0, 8, R()),
    "cmovne": Op(0, 8, R(False)),  # not taken: the register kept its own value
    "load_own_base": Op(0, 8, R(), address_known=False),
    "cmp_equal": Op(0, 8, R()),  # ZF set: the word equalled the register
    "cmp_differ": Op(0, 8, R(False)),
}


class ValuesProgram:
    """values.c, waiting on stdin: each byte sent runs every op once and prints the log."""

    def __init__(self, program):
        self.proc = subprocess.Popen(
            [str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        first = self.proc.stdout.readline().split()  # "pid 1234 addr 0x55..."
        assert first[:1] == ["pid"] and first[2:3] == ["addr"], first
        self.pid, self.word = int(first[1]), int(first[3], 16)

    def run_ops(self) -> tuple[dict, list[int]]:
        """One round: {op: (before, after)} and the peeked values, in order."""
        self.proc.stdin.write("g")
        self.proc.stdin.flush()
        ops, peeks = {}, []
        for line in iter(self.proc.stdout.readline, "done\n"):
            assert line, "values exited early"
            what, *fields = line.split()
            if what == "op":
                ops[fields[0]] = (int(fields[1], 16), int(fields[2], 16))
            else:
                peeks.append(int(fields[0], 16))
        return ops, peeks

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            assert self.proc.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def program(build_c):
    target = ValuesProgram(build_c("values"))
    try:
        with Symbolizer(ModuleMap.from_pid(target.pid)) as symbolizer:
            yield target, symbolizer
    finally:
        if target.proc.poll() is None:
            target.proc.kill()
        target.proc.wait()


def test_the_ops_table_names_every_op_of_the_program(program):
    target, _ = program
    ops, peeks = target.run_ops()
    assert set(ops) == set(OPS) and len(peeks) == 2 * len(OPS)


def classify_reg(registers):
    """The classifier's register names (it asks for gdb's eflags)."""
    return lambda name: registers["flags" if name == "eflags" else name]


def accessing_instruction(site, registers, address, length) -> str:
    """The text of the instruction that made the access: the one ending at the trap ip, or a
    rep string instruction still running at it."""
    at_ip = parse_instruction(site.text_at_ip or "")
    if at_ip is not None and string_access_near(at_ip, address, length, classify_reg(registers)):
        return site.text_at_ip
    return site.text


def watched(word_value: int, offset: int, length: int) -> int:
    return (word_value >> 8 * offset) & ((1 << 8 * length) - 1)


@pytest.mark.parametrize(("offset", "length"), WATCHES, ids=[f"{o}+{n}" for o, n in WATCHES])
def test_every_sample_gets_exactly_the_value_the_program_stored_or_loaded(program, offset, length):
    target, symbolizer = program
    address = target.word + offset
    with Capture(target.pid, address, length, CONFIG) as capture:
        ops, peeks = target.run_ops()
        items = capture.read_all()
        assert capture.accounting().complete
    hits = [item for item in items if isinstance(item, Hit)]
    symbolizer.resolve(traps={hit.sample.ip for hit in hits})

    peeked, per_op = [], collections.Counter()
    for hit in hits:
        registers = hit.sample.registers()
        site = symbolizer.site(hit.sample.ip)
        function = site.frames[0].func
        text = accessing_instruction(site, registers, address, length)
        insn = parse_instruction(text)
        kinds = classify_access(insn, address, length, classify_reg(registers))
        assert hit.hardware_saw_write == (WRITE in kinds), (function, text)
        derived = {kind: derive_value(text, kind, registers, address, length) for kind in kinds}
        if function == "peek":
            assert list(derived) == [READ], text
            peeked.append(derived[READ])
            continue
        name = function.removeprefix("op_")
        op, (before, after) = OPS[name], ops[name]
        per_op[name] += 1
        assert set(derived) == set(op.derivable), (name, text)
        for kind, got in derived.items():
            if op.derivable[kind] and op.covers(offset, length):
                truth = watched(before if kind == READ else after, offset, length)
                assert got == (truth, REGISTERS), (name, text, kind)
            else:
                assert got == (None, UNKNOWN), (name, text, kind)

    assert peeked == [(watched(value, offset, length), REGISTERS) for value in peeks]
    expected_ops = {name for name, op in OPS.items() if op.overlaps(offset, length)}
    assert set(per_op) == expected_ops
    # one trap each, but a rep string op traps once per element it writes into the watch
    for name in expected_ops:
        op = OPS[name]
        if op.span:
            first = offset - (offset - op.offset) % op.width
            elements = len(range(first, offset + length, op.width))
        else:
            elements = 1
        assert per_op[name] == elements, name
