"""The unwinder's remembered unwinds give what unwinding anew gives, for any stack.

A module map stand-in holds synthetic CFI rules of the usual shapes (a leaf, a frame-pointer
frame, a frameless one that saves rbx, a CFA on a register the trap left alone, a register
copied from another, main to stop at); random stacks whose words come from a few values make
the same and nearly the same unwinds recur.
"""

from __future__ import annotations

import random

from gdb_qznusnih.perf.unwind import Backtrace, Unwinder
from gdb_qznusnih.perf.unwind_cfi import OFFSET, REGISTER, Rule

RBX, RBP, RSP, R12, RA = 3, 6, 7, 12, 16
BASE = 0x7FFF_0000
MAIN = 0x6000


def rule(start, cfa_register, cfa_offset, *saved):
    return Rule(cfa_register, cfa_offset, None, ((RA, OFFSET, -8), *saved), RA, False, start,
                start + 0x100)  # fmt: skip


RULES = {
    0x1000: rule(0x1000, RSP, 8),  # a leaf: nothing pushed
    0x2000: rule(0x2000, RBP, 16, (RBP, OFFSET, -16)),  # push %rbp; mov %rsp,%rbp
    0x3000: rule(0x3000, RSP, 32, (RBX, OFFSET, -24)),  # frameless, saves rbx
    0x4000: rule(0x4000, RBX, 16),  # the CFA on rbx, as left by the trap or restored
    0x5000: rule(0x5000, RSP, 16, (RBP, REGISTER, R12)),  # the caller's rbp is in r12
    MAIN: rule(MAIN, RSP, 16),
}


class Module:
    def rule_at(self, pc):
        found = RULES.get(pc & ~0xFFF)
        return found if found is not None and pc < found.function_end else None


class Modules:
    """What the unwinder asks of a ModuleMap: the module of a pc, and when the map changed."""

    generation = 0

    def find(self, pc):
        return Module() if 0x1000 <= pc < 0x7000 else None


FRAME_PCS = [start + 0x10 for start in RULES] + [0x9000]  # and one without CFI
WORDS = FRAME_PCS + [BASE + 8 * n for n in range(0, 40, 4)] + [0]
# Each stack slot holds one of two words: the same stacks, and nearly the same, recur.
SLOT_WORDS = [random.Random(slot).sample(WORDS, 2) for slot in range(32)]


def random_case(chance: random.Random):
    stack = b"".join(chance.choice(words).to_bytes(8, "little") for words in SLOT_WORDS)
    stack = stack[: chance.choice([256, 256, 96, 40])]
    regs = [chance.choice([0, 1]) for _ in range(17)]
    regs[RSP] = chance.choice([BASE, BASE + 16, BASE + 200])
    for number in (RBX, RBP, R12):
        regs[number] = chance.choice([BASE + 64, BASE + 128, None])
    regs[RA] = chance.choice(FRAME_PCS)
    return regs, stack, chance.choice([None, BASE])


def test_remembered_unwinds_are_the_unwinds_anew():
    chance = random.Random(5)
    remembering = Unwinder(Modules())
    ends = set()
    for _ in range(20_000):
        regs, stack, address = random_case(chance)
        max_frames = chance.choice([16, 3])
        stop_at = chance.choice([frozenset({MAIN}), frozenset()])
        fresh = Unwinder(Modules()).unwind_dwarf(regs, stack, address, max_frames, stop_at)
        assert remembering.unwind_dwarf(regs, stack, address, max_frames, stop_at) == fresh
        ends.add(fresh.end)
    assert ends == {"outermost", "stop", "stack-cut", "no-cfi", "bad-frame", "max-frames"}


class CountingUnwinder(Unwinder):
    walks = 0

    def _walk(self, *args):
        self.walks += 1
        return super()._walk(*args)


def test_an_unwind_whose_registers_and_words_repeat_is_not_walked_again():
    # touch_write <- round_trip <- main: frame-pointer frames, as bench/hotloop.c at -O0
    stack = bytearray(64)
    stack[0:8] = (0x2010).to_bytes(8, "little")  # the leaf's return address, at rsp
    stack[8:16] = (BASE + 48).to_bytes(8, "little")  # main's rbp, saved by round_trip
    stack[16:24] = (MAIN + 0x10).to_bytes(8, "little")  # round_trip's return address
    regs = [0] * 17
    regs[RSP], regs[RA], regs[RBP] = BASE, 0x1010, BASE + 8
    unwinder = CountingUnwinder(Modules())
    expected = Backtrace([0x1010, 0x2010, MAIN + 0x10], "stop")
    local_changed = bytearray(stack)
    local_changed[32:40] = b"\x07" * 8  # a word the unwind does not use
    for data in (stack, stack, local_changed, bytes(stack)):
        assert unwinder.unwind_dwarf(regs, data, stop_at=frozenset({MAIN})) == expected
    assert unwinder.walks == 1
    regs[0] = 42  # a register it does not use
    assert unwinder.unwind_dwarf(regs, stack, stop_at=frozenset({MAIN})) == expected
    assert unwinder.walks == 1
    moved = bytearray(stack)
    moved[16:24] = (0x9000).to_bytes(8, "little")  # another caller: walked anew
    assert unwinder.unwind_dwarf(regs, moved, stop_at=frozenset({MAIN})) == Backtrace(
        [0x1010, 0x2010, 0x9000], "no-cfi"
    )
    assert unwinder.walks == 2


def test_a_changed_module_map_forgets_the_remembered_unwinds():
    modules = Modules()
    unwinder = CountingUnwinder(modules)
    regs = [0] * 17
    regs[RSP], regs[RA] = BASE, 0x1010
    stack = (MAIN + 0x10).to_bytes(8, "little") * 4
    unwinder.unwind_dwarf(regs, stack, stop_at=frozenset({MAIN}))
    modules.generation += 1  # dlopen: the same pcs may mean other code now
    unwinder.unwind_dwarf(regs, stack, stop_at=frozenset({MAIN}))
    assert unwinder.walks == 2


def test_a_cfa_on_a_register_copied_from_another_is_keyed_on_that_one():
    # frame 0 (0x5000) says its caller's rbp is in r12; the caller's CFA is on rbp
    stack = bytearray(80)
    stack[8:16] = (0x2010).to_bytes(8, "little")
    stack[40:48] = (MAIN + 0x10).to_bytes(8, "little")  # the caller's ra if r12 is BASE + 32
    stack[56:64] = (0x9000).to_bytes(8, "little")  # ... if r12 is BASE + 48
    unwinder = Unwinder(Modules())
    regs = [0] * 17
    regs[RSP], regs[RA] = BASE, 0x5010
    found = {}
    for r12 in (BASE + 32, BASE + 48, BASE + 32):
        regs[R12] = r12
        found[r12] = unwinder.unwind_dwarf(regs, stack, stop_at=frozenset({MAIN})).pcs[-1]
    assert found == {BASE + 32: MAIN + 0x10, BASE + 48: 0x9000}
