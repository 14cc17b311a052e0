"""The readers over a perf sample's register tuple give what the dict of its registers gives."""

from __future__ import annotations

import random

import pytest

from gdb_qznusnih.classify.register_tuple import RegisterTuple
from gdb_qznusnih.classify.values import register_reader
from gdb_qznusnih.classify.x86 import GENERAL_REGISTERS
from gdb_qznusnih.perf.abi import REGISTER_NAMES
from gdb_qznusnih.perf.records import Sample

SAMPLED = RegisterTuple(REGISTER_NAMES)
whole_register_reader, part_register_reader = SAMPLED.whole_reader, SAMPLED.part_reader
HALVES = {"eax": "rax", "ebx": "rbx", "esi": "rsi", "esp": "rsp", "eip": "rip", "r8d": "r8",
          "r15d": "r15"}  # fmt: skip


def sample_with_random_registers(seed: int) -> Sample:
    sample = Sample("rw", 0x401000, 1, 1, 0)
    chance = random.Random(seed)
    sample.regs = tuple(chance.getrandbits(64) for _ in REGISTER_NAMES)
    return sample


@pytest.mark.parametrize("seed", range(5))
def test_the_classifier_reads_whole_registers_flags_and_low_halves(seed):
    sample = sample_with_random_registers(seed)
    registers = sample.registers()
    read = whole_register_reader(sample.regs)
    for name in REGISTER_NAMES:
        assert read(name) == registers[name]
    assert read("eflags") == registers["flags"]
    for half, full in HALVES.items():
        assert read(half) == registers[full] & 0xFFFF_FFFF
    for missing in ("fs_base", "al", "xmm0", "ds"):
        with pytest.raises(KeyError):
            read(missing)


@pytest.mark.parametrize("seed", range(5))
def test_the_value_derivation_reads_every_part_as_from_the_dict(seed):
    sample = sample_with_random_registers(seed)
    expected = register_reader(sample.registers())
    reg = part_register_reader(sample.regs)
    names = [*GENERAL_REGISTERS, "flags", "eflags", " %AL", "R8D", "%Ah "]
    for name in names:
        assert reg(name) == expected(name), name
    for wrong in ("xmm0", "fs_base", "%cs", "st(0)"):
        with pytest.raises(LookupError):
            expected(wrong)
        with pytest.raises(LookupError):
            reg(wrong)


def test_a_sample_without_registers_has_none_to_read():
    for read in (whole_register_reader(None), part_register_reader(None)):
        for name in ("rax", "rip", "eflags", "al"):
            with pytest.raises(LookupError):
                read(name)
