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
from operator import itemgetter
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
        # trap pc -> the unwinds from it, by what they depended on (see _Trace)
        self._paths: dict[int, _RememberedPaths] = {}
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
            self._paths.clear()
            self._generation = self.modules.generation
        base = regs[REG_RSP] if stack_address is None else stack_address
        if type(stop_at) is not frozenset:
            stop_at = frozenset(stop_at)
        remembered = self._paths.get(regs[16])
        if remembered is not None:
            found = remembered.recall(regs, stack, (base, max_frames, stop_at))
            if found is not None:
                return found
        trace = _Trace(len(regs))
        backtrace = self._walk(regs, stack, base, max_frames, stop_at, trace)
        if trace.exact and backtrace.end in _REMEMBERED_ENDS:
            self._remember(regs, remembered, trace, (base, max_frames, stop_at), backtrace)
        return backtrace

    def _remember(self, regs, remembered, trace: _Trace, setting: tuple, backtrace) -> None:
        registers = tuple(sorted(trace.registers))
        if remembered is None or not set(registers) <= set(remembered.registers):
            if remembered is not None:  # a path that needs more registers: key on them all
                registers = tuple(sorted({*registers, *remembered.registers}))
            if len(self._paths) >= MAX_CACHED_RULES:
                self._paths.clear()
            remembered = self._paths[regs[16]] = _RememberedPaths(registers)
        remembered.keep(regs, setting, trace, backtrace)

    def _walk(self, regs, stack, base: int, max_frames: int, stop_at, trace: _Trace) -> Backtrace:
        """The unwind itself; `trace` notes what its answer depended on."""
        memory = None  # a _Stack, made only for what the fast path below does not read
        pcs = [regs[16]]
        lookup = regs[16]
        rules, unpack, data = self._rules, _WORD.unpack_from, stack
        limit = len(stack) - 8
        origins = trace.initial
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
                    trace.use(origins[rule.cfa_register])
                else:
                    trace.exact = False
                    memory = memory or _Stack(stack, base)
                    cfa = evaluate(rule.cfa_expression, regs, memory.word)
                caller = list(regs)
                caller[REG_RSP] = cfa
                caller_origins = list(origins)
                caller_origins[REG_RSP] = None  # the CFA: from what was used above
                for number, kind, argument in rule.saved:
                    if kind == OFFSET:
                        offset = cfa + argument - base
                        if 0 <= offset <= limit:
                            caller[number] = word = unpack(data, offset)[0]
                            caller_origins[number] = (offset, word)
                            continue
                    memory = memory or _Stack(stack, base)
                    if kind == OFFSET:
                        trace.exact = False  # beyond the copy: how far the copy went matters
                        caller[number] = memory.word(cfa + argument)
                    else:
                        caller_origins[number] = trace.origin_of(kind, argument, origins)
                        caller[number] = _other_rule(kind, argument, cfa, regs, memory)
            except (TypeError, UnknownValue):  # a register or word the rule needs is unknown
                return Backtrace(pcs, _cut_or_bad(memory))
            except UnsupportedExpression:
                return Backtrace(pcs, UNSUPPORTED_CFI)
            pc = caller[rule.ra_column]
            trace.use(caller_origins[rule.ra_column])
            if pc is None:
                if _is_undefined(rule, rule.ra_column):
                    return Backtrace(pcs, OUTERMOST)
                return Backtrace(pcs, _cut_or_bad(memory))
            if pc == 0:
                return Backtrace(pcs, OUTERMOST)
            trace.use(origins[REG_RSP])
            if cfa <= regs[REG_RSP]:
                return Backtrace(pcs, BAD_FRAME)
            caller[16] = pc
            pcs.append(pc)
            lookup = pc if rule.signal_frame else pc - 1
            regs, origins = caller, caller_origins


# How an unwind ended for good, whatever else the sample holds: remembered (an error end
# depends on more than the trace notes, e.g. where the copied stack ends).
_REMEMBERED_ENDS = frozenset({OUTERMOST, STOP, NO_CFI, MAX_FRAMES})
MAX_PATHS_PER_PC = 64


class _Trace:
    """What one unwind's answer depended on: the registers at the trap it used (as a CFA
    base, a return address, a copied register) and the stack words, by offset from the
    copy's start.  A register's origin is its number (its value at the trap), (offset,
    word) (read from the copy), or None (the CFA, a constant: from what was used).
    `exact` is False once it used anything else (an expression, a word past the copy)."""

    __slots__ = ("initial", "registers", "words", "exact")

    def __init__(self, count: int) -> None:
        self.initial = list(range(count))
        self.registers: set[int] = set()
        self.words: dict[int, int] = {}
        self.exact = True

    def use(self, origin) -> None:
        if origin is None:
            return
        if type(origin) is int:
            self.registers.add(origin)
        else:
            self.words[origin[0]] = origin[1]

    def origin_of(self, kind: int, argument, origins: list):
        """The origin of a register under a rule other than offset(N)."""
        if kind == REGISTER:
            return origins[argument] if argument < len(origins) else None
        if kind in (VAL_OFFSET, UNDEFINED):
            return None
        self.exact = False  # an expression: it may read anything
        return None


class _RememberedPaths:
    """The unwinds from one trap pc, by the values of the registers they used (`registers`)
    and the unwind's settings; each with the stack words it used, checked at recall."""

    __slots__ = ("registers", "_values", "_paths")

    def __init__(self, registers: tuple[int, ...]) -> None:
        self.registers = registers
        self._values = itemgetter(*registers) if registers else _nothing
        self._paths: dict[tuple, tuple] = {}

    def recall(self, regs, stack, setting: tuple) -> Backtrace | None:
        found = self._paths.get((setting, self._values(regs)))
        if found is None:
            return None
        words, pcs, end = found
        limit, unpack = len(stack) - 8, _WORD.unpack_from
        for offset, word in words:
            if offset > limit or unpack(stack, offset)[0] != word:
                return None
        return Backtrace(list(pcs), end)

    def keep(self, regs, setting: tuple, trace: _Trace, backtrace: Backtrace) -> None:
        if len(self._paths) >= MAX_PATHS_PER_PC:
            self._paths.clear()
        words = tuple(trace.words.items())
        self._paths[setting, self._values(regs)] = (words, tuple(backtrace.pcs), backtrace.end)


def _nothing(regs) -> tuple:
    return ()


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
