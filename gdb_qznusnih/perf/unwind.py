"""Offline CFI unwinding of a sampled user stack (perf REGS_USER + STACK_USER).

Given the x86-64 registers at the trap and a copy of the stack from rsp upwards, `unwind`
gives the frames' pcs: frame 0 is the trap ip, every other one a return address (what gdb's
`frame.pc()` shows), except after a signal frame, where it is the interrupted pc itself.
Rules come from each module's .eh_frame / .debug_frame and are cached per pc, so an unwind
of known pcs is a dict lookup, an add and an unpack or two per frame.

The unwind ends, and says why in `Backtrace.end`:
  outermost        the return address is undefined (_start, a thread's start routine) or 0
  stop             a frame of one of the functions in `stop_at` (e.g. main) was reached
  stack-cut        what the next frame needs lies beyond the copied stack
  no-cfi           the pc is in no module, or no FDE covers it
  unsupported-cfi  an expression or CFA form this unwinder does not evaluate
  bad-frame        the CFA does not move up the stack, or a register it needs is unknown
  max-frames       max_frames frames were found
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import NamedTuple

from gdb_qznusnih.perf.modules import ModuleMap
from gdb_qznusnih.perf.unwind_cfi import (
    EXPRESSION,
    OFFSET,
    REG_RSP,
    REGISTER,
    UNDEFINED,
    VAL_EXPRESSION,
    VAL_OFFSET,
    Rule,
)
from gdb_qznusnih.perf.unwind_expr import UnknownValue, UnsupportedExpression, evaluate

# perf REGS_USER / user_regs_struct names in DWARF register order (x86-64 psABI).
DWARF_REGISTER_NAMES = "rax rdx rcx rbx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip".split()
OUTERMOST, STOP, STACK_CUT, NO_CFI = "outermost", "stop", "stack-cut", "no-cfi"
UNSUPPORTED_CFI, BAD_FRAME, MAX_FRAMES = "unsupported-cfi", "bad-frame", "max-frames"
DEFAULT_MAX_FRAMES = 64
MAX_CACHED_RULES = 1 << 16
_WORD = struct.Struct("<Q")
_MISSING = object()


class Backtrace(NamedTuple):
    pcs: list[int]
    end: str  # one of the reasons above


class _Stack:
    """Words of the copied stack; `cut` is set when a read falls beyond its end."""

    __slots__ = ("data", "base", "cut")

    def __init__(self, data: bytes, base: int):
        self.data, self.base, self.cut = data, base, False

    def word(self, address: int, size: int = 8) -> int | None:
        offset = address - self.base
        if 0 <= offset <= len(self.data) - size:
            return int.from_bytes(self.data[offset : offset + size], "little")
        if offset >= 0:
            self.cut = True
        return None


class Unwinder:
    """Unwinds samples of one process; rules cached per pc until its module map changes."""

    def __init__(self, modules: ModuleMap):
        self.modules = modules
        self._rules: dict[int, Rule | None] = {}
        self._generation = modules.generation
        self.misses = 0

    def rule(self, pc: int) -> Rule | None:
        """The rule at pc (for a caller: at its return address - 1), cached."""
        rule = self._rules.get(pc, _MISSING)
        if rule is _MISSING:
            rule = self._look_up(pc)
        return rule

    def _look_up(self, pc: int) -> Rule | None:
        self.misses += 1
        module = self.modules.find(pc)
        rule = module.rule_at(pc) if module is not None else None
        if len(self._rules) >= MAX_CACHED_RULES:
            self._rules.clear()
        self._rules[pc] = rule
        return rule

    def function_start(self, pc: int) -> int | None:
        """Start of the function holding pc, from its FDE (the instruction decoder's anchor)."""
        return self.modules.function_start(pc)

    def unwind(
        self,
        registers: Mapping[str, int],
        stack: bytes,
        stack_address: int | None = None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        stop_at: frozenset[int] | set[int] = frozenset(),
    ) -> Backtrace:
        """Frame pcs from the registers at the trap and the stack copied from stack_address
        (default: the trap's rsp); stop_at: function starts after whose frame to stop."""
        regs = [registers.get(name) for name in DWARF_REGISTER_NAMES]
        return self.unwind_dwarf(regs, stack, stack_address, max_frames, stop_at)

    def unwind_dwarf(
        self,
        regs: list[int | None] | tuple[int | None, ...],
        stack: bytes | memoryview,
        stack_address: int | None = None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        stop_at: frozenset[int] | set[int] = frozenset(),
    ) -> Backtrace:
        """unwind() from the registers already in DWARF_REGISTER_NAMES order, a list or a
        tuple (the hot path takes them straight from a sample, without a dict)."""
        if self._generation != self.modules.generation:
            self._rules.clear()
            self._generation = self.modules.generation
        base = regs[REG_RSP] if stack_address is None else stack_address
        memory = None  # a _Stack, made only for what the fast path below does not read
        pcs = [regs[16]]
        lookup = regs[16]
        rules, unpack, data = self._rules, _WORD.unpack_from, stack
        limit = len(stack) - 8
        while True:
            rule = rules.get(lookup, _MISSING)
            if rule is _MISSING:
                rule = self._look_up(lookup)
            if rule is None:
                return Backtrace(pcs, NO_CFI)
            if rule.function_start in stop_at:
                return Backtrace(pcs, STOP)
            if len(pcs) >= max_frames:
                return Backtrace(pcs, MAX_FRAMES)
            try:
                if rule.cfa_expression is None:
                    cfa = regs[rule.cfa_register] + rule.cfa_offset
                else:
                    memory = memory or _Stack(stack, base)
                    cfa = evaluate(rule.cfa_expression, regs, memory.word)
                caller = list(regs)
                caller[REG_RSP] = cfa
                for number, kind, argument in rule.saved:
                    if kind == OFFSET:
                        offset = cfa + argument - base
                        if 0 <= offset <= limit:
                            caller[number] = unpack(data, offset)[0]
                            continue
                    memory = memory or _Stack(stack, base)
                    if kind == OFFSET:
                        caller[number] = memory.word(cfa + argument)
                    else:
                        caller[number] = _other_rule(kind, argument, cfa, regs, memory)
            except (TypeError, UnknownValue):  # a register or word the rule needs is unknown
                return Backtrace(pcs, _cut_or_bad(memory))
            except UnsupportedExpression:
                return Backtrace(pcs, UNSUPPORTED_CFI)
            pc = caller[rule.ra_column]
            if pc is None:
                if _is_undefined(rule, rule.ra_column):
                    return Backtrace(pcs, OUTERMOST)
                return Backtrace(pcs, _cut_or_bad(memory))
            if pc == 0:
                return Backtrace(pcs, OUTERMOST)
            if cfa <= regs[REG_RSP]:
                return Backtrace(pcs, BAD_FRAME)
            caller[16] = pc
            pcs.append(pc)
            lookup = pc if rule.signal_frame else pc - 1
            regs = caller


def _cut_or_bad(memory: _Stack | None) -> str:
    """Why a frame could not be unwound: past the copied stack, or a bad frame."""
    return STACK_CUT if memory is not None and memory.cut else BAD_FRAME


def _other_rule(kind: int, argument, cfa: int, regs: list, memory: _Stack) -> int | None:
    """The caller's value of a register under a rule other than offset(N)."""
    if kind == VAL_OFFSET:
        return cfa + argument
    if kind == REGISTER:
        return regs[argument] if argument < len(regs) else None
    if kind == UNDEFINED:
        return None
    value = evaluate(argument, regs, memory.word, (cfa,))
    if kind == VAL_EXPRESSION:
        return value
    if kind == EXPRESSION:
        return memory.word(value)
    raise UnsupportedExpression(f"register rule {kind}")


def _is_undefined(rule: Rule, number: int) -> bool:
    return any(n == number and kind == UNDEFINED for n, kind, _argument in rule.saved)
