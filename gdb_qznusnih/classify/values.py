"""The value of the watched bytes after an access, from the instruction and the registers after it.

The perf engine samples the general registers in the trap, after the accessing instruction
(x86 data breakpoints trap after it), and never memory.  Those registers determine the value
exactly for a store from a general register or an immediate, a load into a general register,
push and pop, stos, cmpxchg (ZF says which way it went), the read half of xchg/xadd (the
register now holds the old memory value) and a few more; not for SIMD (no vector registers in
the sample), movs (memory to memory) or read-modify-write arithmetic.  Where they do not, the
answer is "unknown": a wrong value is worse than none.  Pure: no gdb.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from gdb_qznusnih.classify.x86 import (
    READ,
    SIZE_SUFFIX,
    WRITE,
    Instruction,
    accesses,
    address_function,
    immediate_value,
    parse_instruction,
    parse_mem_operand,
    register_part,
)

# The engine asks once per record, and the same few instructions recur: parse each text once.
_parse_instruction = functools.lru_cache(maxsize=4096)(parse_instruction)
_mem_operand = functools.lru_cache(maxsize=4096)(parse_mem_operand)

REGISTERS = "registers"
UNKNOWN = "unknown"

_MASK64 = (1 << 64) - 1
_CF, _PF, _ZF, _SF, _OF = 1 << 0, 1 << 2, 1 << 6, 1 << 7, 1 << 11
_DF = 1 << 10
_USER32_CS = 0x23  # Linux's code segment for 32-bit tasks (__USER32_CS); 64-bit is 0x33
# Prefixes that change nothing derived here; gdb prints others (data16, addr32, rex.W, a
# stray segment) when the encoding is unusual, and then the text may not tell the whole story.
_HARMLESS_PREFIXES = frozenset(
    "lock rep repz repe repnz repne notrack bnd xacquire xrelease".split()
)
_MOVES = frozenset("mov movb movw movl movq movabs movnti".split())
_EXTENDING_LOADS = {  # mnemonic -> bytes read; the register holds them extended
    "movzbw": 1, "movzbl": 1, "movzbq": 1, "movzwl": 2, "movzwq": 2,
    "movsbw": 1, "movsbl": 1, "movsbq": 1, "movswl": 2, "movswq": 2, "movslq": 4,
}  # fmt: skip
_ACCUMULATOR = {1: "al", 2: "ax", 4: "eax", 8: "rax"}
# setcc/cmovcc conditions: (flag test, names when it holds, names when it does not)
_CONDITION_GROUPS: tuple[tuple[Callable[[int], bool], tuple[str, ...], tuple[str, ...]], ...] = (
    (lambda f: bool(f & _OF), ("o",), ("no",)),
    (lambda f: bool(f & _CF), ("b", "c", "nae"), ("ae", "nb", "nc")),
    (lambda f: bool(f & _ZF), ("e", "z"), ("ne", "nz")),
    (lambda f: bool(f & (_CF | _ZF)), ("be", "na"), ("a", "nbe")),
    (lambda f: bool(f & _SF), ("s",), ("ns",)),
    (lambda f: bool(f & _PF), ("p", "pe"), ("np", "po")),
    (lambda f: bool(f & _SF) != bool(f & _OF), ("l", "nge"), ("ge", "nl")),
    (lambda f: bool(f & _ZF) or bool(f & _SF) != bool(f & _OF), ("le", "ng"), ("g", "nle")),
)
_CONDITIONS = {
    name: (test, negated)
    for test, holds, fails in _CONDITION_GROUPS
    for negated, names in ((False, holds), (True, fails))
    for name in names
}

Reg = Callable[[str], int]


class Moved(NamedTuple):
    """The bytes one access moved between memory and the registers, as the registers show them.

    `value` is `size` bytes, little-endian, at `address`; `address` is None when the registers
    after the instruction cannot say where (it overwrote a register of the address).
    `repeated`: a rep string store, the same bytes at every multiple of `size` from `address`.
    """

    value: int
    size: int
    address: int | None
    repeated: bool = False


def derive_value(
    insn: str,
    kind: str,
    registers: dict[str, int],
    watch_address: int,
    watch_length: int,
    access_address: int | None = None,
) -> tuple[int | None, str]:
    """(value of the watched bytes after the access, "registers"), or (None, "unknown").

    `insn` is gdb's AT&T text of the accessing instruction, `kind` READ or WRITE (one access
    of it, as classify_access named them), `registers` the general registers after it by perf
    name (rax ... r15, rip, flags; cs tells a 32-bit task).  `access_address`, when the caller
    knows it, is where the access started; else it is computed from the operand.
    """
    return derive_value_with(
        insn,
        kind,
        register_reader(registers),
        _word_size(registers),
        watch_address,
        watch_length,
        access_address,
    )


def derive_value_with(
    insn: str,
    kind: str,
    reg: Reg,
    word_size: int,
    watch_address: int,
    watch_length: int,
    access_address: int | None = None,
) -> tuple[int | None, str]:
    """derive_value over `reg(name)` (any general register part, and "flags"; LookupError
    for one it lacks) in a task of `word_size` bytes: for engines that read registers one
    by one (the gdb engine, from a stopped thread)."""
    parsed = _parse_instruction(insn)
    if parsed is None or watch_length <= 0 or not _HARMLESS_PREFIXES.issuperset(parsed.prefixes):
        return None, UNKNOWN
    try:
        moved = moved_bytes(parsed, kind, reg, word_size)
    except (LookupError, ValueError):  # a register the sample lacks
        moved = None
    value = (
        None if moved is None else watched_part(moved, watch_address, watch_length, access_address)
    )
    return (None, UNKNOWN) if value is None else (value, REGISTERS)


ValueGetter = Callable[[Reg], "tuple[int | None, str]"]
_UNKNOWN_VALUE = (None, UNKNOWN)


def value_getter(
    insn: str, kind: str, word_size: int, watch_address: int, watch_length: int
) -> ValueGetter:
    """derive_value_with for one instruction and kind, worked out once: `getter(reg)` gives
    what `derive_value_with(insn, kind, reg, word_size, watch_address, watch_length)` gives.

    For an engine that asks at every hit of the same few instructions: a plain move's getter
    knows which register, which width and where (a load or store in compiled code, nearly
    every hit); any other instruction's derives its value as derive_value_with does."""
    parsed = _parse_instruction(insn)
    if parsed is None or watch_length <= 0 or not set(parsed.prefixes) <= _HARMLESS_PREFIXES:
        return _unknown_value
    plan = _plain_move(parsed, kind)
    if plan is None:
        return lambda reg: derive_value_with(
            insn, kind, reg, word_size, watch_address, watch_length
        )
    if plan is _UNKNOWN_VALUE:
        return _unknown_value
    read, size, where = plan
    low_bytes = _mask(watch_length)

    def getter(reg: Reg) -> tuple[int | None, str]:
        try:
            value = read(reg)
        except (LookupError, ValueError):  # a register the sample lacks
            return _UNKNOWN_VALUE
        address = None
        if where is not None:
            try:
                address = where(reg)
            except (LookupError, ValueError):
                address = None
        if address is None:  # as watched_part: an access of the watch's width is at it
            if size != watch_length:
                return _UNKNOWN_VALUE
            return value & low_bytes, REGISTERS
        offset = watch_address - address
        if not 0 <= offset <= size - watch_length:
            return _UNKNOWN_VALUE
        return (value >> 8 * offset) & low_bytes, REGISTERS

    return getter


def _unknown_value(reg: Reg) -> tuple[None, str]:
    return _UNKNOWN_VALUE


def _plain_move(insn: Instruction, kind: str):
    """(read(reg) of the value moved, its size, where(reg) of the memory operand or None)
    for a plain store or load, as _plain_store and _into_register find them; _UNKNOWN_VALUE
    when the registers cannot tell; None for any other instruction."""
    m, ops = insn.mnemonic, insn.operands
    if len(ops) != 2 or not (m in _MOVES or (kind == READ and m in _EXTENDING_LOADS)):
        return None
    if kind == WRITE:
        source, target = ops
        part = register_part(source)
        if part is not None:
            return _planned(lambda reg: reg(source), part.size, target, frozenset())
        immediate = immediate_value(source)
        size = SIZE_SUFFIX.get(m[-1]) if m != "mov" else None
        if immediate is None or size is None:
            return _UNKNOWN_VALUE
        constant = immediate & _mask(size)
        return _planned(lambda reg: constant, size, target, frozenset())
    if kind != READ:
        return _UNKNOWN_VALUE
    source, target = ops
    part = register_part(target)
    if part is None or _mem_operand(source) is None:
        return _UNKNOWN_VALUE
    size = _EXTENDING_LOADS.get(m) or part.size
    low = _mask(size)
    return _planned(lambda reg: reg(target) & low, size, source, {part.full})


def _planned(read, size: int, operand: str, overwritten):
    """The plan of one plain move; where is None when the registers after it cannot say
    (it overwrote a register of the address, or a vector index)."""
    op = _mem_operand(operand)
    if op is None:
        return _UNKNOWN_VALUE
    for name in (op.base, op.index):
        part = register_part(name) if name else None
        if part is not None and part.full in overwritten:
            return read, size, None
    return read, size, address_function(op)


def watched_part(
    moved: Moved, watch_address: int, watch_length: int, access_address: int | None = None
) -> int | None:
    """The watched bytes' value inside `moved`, or None unless it covers all of them."""
    address = access_address if access_address is not None else moved.address
    if address is None:
        # The access overlapped the aligned watch; one of the same width is taken to be at it
        # (a misaligned access of exactly the watch's width would be misread: rare in
        # compiled code, and the price of knowing `mov (%rax),%rax`).
        if moved.size != watch_length:
            return None
        address = watch_address
    offset = watch_address - address
    if moved.repeated:
        offset %= moved.size
    if not 0 <= offset <= moved.size - watch_length:
        return None
    return (moved.value >> 8 * offset) & ((1 << 8 * watch_length) - 1)


def moved_bytes(insn: Instruction, kind: str, reg: Reg, word_size: int = 8) -> Moved | None:
    """What the access of `kind` moved, from the registers after `insn`; None if unknowable."""
    if kind == WRITE:
        return _stored(insn, reg, word_size)
    if kind == READ:
        return _loaded(insn, reg, word_size)
    return None


# -- stores -----------------------------------------------------------------------------------


def _stored(insn: Instruction, reg: Reg, word: int) -> Moved | None:
    m, ops = insn.mnemonic, insn.operands
    if m in _MOVES and len(ops) == 2:
        return _plain_store(m, ops, reg)
    if m.startswith("set") and len(ops) == 1:
        taken = _condition(m[3:], reg)
        return None if taken is None else _at_operand(int(taken), 1, ops[0], reg)
    if m in ("push", "pushq", "pushw", "pushl") and len(ops) == 1:
        return _push(insn, reg, word)
    if m.startswith("stos"):
        return _stos(insn, reg, word)
    if m.startswith("cmpxchg"):
        return _cmpxchg(insn, reg, WRITE)
    return None


def _plain_store(mnemonic: str, ops: tuple[str, ...], reg: Reg) -> Moved | None:
    source, target = ops
    part = register_part(source)
    if part is not None:
        return _at_operand(reg(source), part.size, target, reg)
    immediate = immediate_value(source)
    size = SIZE_SUFFIX.get(mnemonic[-1]) if mnemonic != "mov" else None
    if immediate is None or size is None:
        return None  # a segment or vector register, or no size to go by
    return _at_operand(immediate & _mask(size), size, target, reg)


def _push(insn: Instruction, reg: Reg, word: int) -> Moved | None:
    source = insn.operands[0]
    slot = _stack_slot(insn, reg, word)
    part = register_part(source)
    if part is not None:
        value = reg(source)
        if part.full == "rsp":  # push %rsp stores the stack pointer from before it
            if part.size != word:
                return None
            value = (value + word) & _mask(word)
        return Moved(value, part.size, slot)
    immediate = immediate_value(source)
    if immediate is None:
        return None  # memory to memory, or a segment register
    size = SIZE_SUFFIX.get(insn.mnemonic[-1], word) if insn.mnemonic != "push" else word
    return Moved(immediate & _mask(size), size, slot)


def _stos(insn: Instruction, reg: Reg, word: int) -> Moved | None:
    (access,) = accesses(insn, word)
    size = access.size
    if not size:
        return None
    value = reg(_ACCUMULATOR[size])
    after = reg(access.reg)
    if insn.is_rep:  # the trap may come iterations later: any element, all the same bytes
        return Moved(value, size, after, repeated=True)
    return Moved(value, size, _string_element(after, size, reg))


def _cmpxchg(insn: Instruction, reg: Reg, kind: str) -> Moved | None:
    """Equal (ZF set): memory was the accumulator and became the source; not equal: the
    accumulator now holds memory, which was written back unchanged.  The accumulator is
    overwritten (when not equal), so it cannot be part of the address."""
    m, ops = insn.mnemonic, insn.operands
    equal = bool(reg("flags") & _ZF)
    if m in ("cmpxchg8b", "cmpxchg16b") and len(ops) == 1:
        half = 4 if m == "cmpxchg8b" else 8
        names = ("eax", "edx", "ebx", "ecx") if half == 4 else ("rax", "rdx", "rbx", "rcx")
        low, high = names[2:] if kind == WRITE and equal else names[:2]
        value = reg(low) | reg(high) << 8 * half
        return _at_operand(value, 2 * half, ops[0], reg, overwritten={"rax", "rdx"})
    if m.rstrip("bwlq") != "cmpxchg" or len(ops) != 2:
        return None
    part = register_part(ops[0])
    if part is None:
        return None
    accumulator = _ACCUMULATOR[part.size]
    value = reg(ops[0]) if kind == WRITE and equal else reg(accumulator)
    return _at_operand(value, part.size, ops[1], reg, overwritten={"rax"})


# -- loads ------------------------------------------------------------------------------------


def _loaded(insn: Instruction, reg: Reg, word: int) -> Moved | None:
    m, ops = insn.mnemonic, insn.operands
    if (m in _MOVES or m in _EXTENDING_LOADS) and len(ops) == 2:
        return _into_register(ops, _EXTENDING_LOADS.get(m), reg)
    if m.startswith("cmov") and len(ops) == 2:
        # The load happens either way; only when taken does the register show it.
        return _into_register(ops, None, reg) if _condition(m[4:], reg) else None
    if m.rstrip("bwlq") in ("xchg", "xadd") and len(ops) == 2:
        return _old_value_in_register(ops, reg)
    if m.startswith("cmpxchg"):
        return _cmpxchg(insn, reg, READ)
    if m.rstrip("bwlq") == "cmp" and len(ops) == 2:
        return _compared_equal(m, ops, reg)
    if m in ("pop", "popq", "popw", "popl") and len(ops) == 1:
        return _pop(insn, reg, word)
    if m in ("ret", "retq", "retl") or m == "leave":
        target = "rip" if m != "leave" else "rbp"
        return Moved(reg(target) & _mask(word), word, _stack_slot(insn, reg, word))
    if m.startswith("lods") and not insn.is_rep:  # rep lods keeps only the last element
        (access,) = accesses(insn, word)
        if not access.size:
            return None
        after = reg(access.reg)
        return Moved(
            reg(_ACCUMULATOR[access.size]), access.size, _string_element(after, access.size, reg)
        )
    if m in ("call", "callq", "jmp", "jmpq") and len(ops) == 1 and ops[0].startswith("*"):
        # A branch through memory: rip is the pointer it read; rip and rsp no longer address.
        return _at_operand(reg("rip") & _mask(word), word, ops[0], reg, {"rip", "rsp"})
    return None


def _into_register(ops: tuple[str, ...], width: int | None, reg: Reg) -> Moved | None:
    source, target = ops
    part = register_part(target)
    if part is None or _mem_operand(source) is None:
        return None
    size = width or part.size
    return _at_operand(reg(target) & _mask(size), size, source, reg, {part.full})


def _old_value_in_register(ops: tuple[str, ...], reg: Reg) -> Moved | None:
    """xchg and xadd leave the old memory value in their register operand."""
    register, memory = ops if register_part(ops[0]) is not None else ops[::-1]
    part = register_part(register)
    if part is None:
        return None
    return _at_operand(reg(register), part.size, memory, reg, {part.full})


def _compared_equal(mnemonic: str, ops: tuple[str, ...], reg: Reg) -> Moved | None:
    """cmp reads memory and keeps only flags: ZF set means memory equalled the other operand."""
    if not reg("flags") & _ZF:
        return None
    memory = next((op for op in ops if _mem_operand(op) is not None), None)
    if memory is None:
        return None
    other = ops[0] if memory == ops[1] else ops[1]
    part = register_part(other)
    if part is not None:
        return _at_operand(reg(other), part.size, memory, reg)
    immediate, size = immediate_value(other), SIZE_SUFFIX.get(mnemonic[-1])
    if immediate is None or size is None:
        return None
    return _at_operand(immediate & _mask(size), size, memory, reg)


def _pop(insn: Instruction, reg: Reg, word: int) -> Moved | None:
    target = insn.operands[0]
    part = register_part(target)
    if part is None:
        return None  # memory to memory, or a segment register
    slot = None if part.full == "rsp" else (reg("rsp") - part.size) & _mask(word)
    return Moved(reg(target), part.size, slot)


# -- helpers ----------------------------------------------------------------------------------


def _at_operand(
    value: int, size: int, operand: str, reg: Reg, overwritten: frozenset | set = frozenset()
) -> Moved | None:
    """`value` moved at memory `operand`, whose address comes from the registers after,
    unless the instruction changed one of them (its own destination, or rip after a branch)
    or the sample lacks one (fs/gs base)."""
    addressing = _operand_addressing(operand)
    if addressing is None:
        return None
    registers, address = addressing
    if address is None or not registers.isdisjoint(overwritten):
        return Moved(value, size, None)
    try:
        return Moved(value, size, address(reg))
    except (LookupError, ValueError):
        return Moved(value, size, None)


@functools.lru_cache(maxsize=4096)
def _operand_addressing(operand: str) -> tuple[frozenset[str], Callable[[Reg], int] | None] | None:
    """(the whole registers a memory operand's address uses, reg -> that address, None for a
    vector index); None if `operand` is not memory.  Worked out once per operand text."""
    op = _mem_operand(operand)
    if op is None:
        return None
    parts = (register_part(name) for name in (op.base, op.index) if name)
    return frozenset(part.full for part in parts if part is not None), address_function(op)


def _stack_slot(insn: Instruction, reg: Reg, word: int) -> int:
    stack = next(a for a in accesses(insn, word) if a.where == "stack")
    return (reg(stack.reg) + stack.offset) & _mask(word)


def _string_element(after: int, size: int, reg: Reg) -> int:
    """Where a single (not rep) string access was: the index register has moved past it."""
    return after + size if reg("flags") & _DF else after - size


def _condition(code: str, reg: Reg) -> bool | None:
    """setcc/cmovcc condition `code` ("e", "nbe", ...) on the flags, None if not one."""
    if code not in _CONDITIONS:
        return None
    test, negated = _CONDITIONS[code]
    return test(reg("flags")) != negated


def register_reader(registers: dict[str, int]) -> Reg:
    """reg(name) for any general register part ("ah", "r8d", "esi"), unsigned; and "flags",
    whichever of perf's "flags" or gdb's "eflags" the dict has."""

    def reg(name: str) -> int:
        if name in ("flags", "eflags"):
            flags = registers.get("flags", registers.get("eflags"))
            if flags is None:
                raise LookupError("no flags register")
            return flags & _MASK64
        part = register_part(name)
        if part is None:
            raise LookupError(f"not a general register: {name}")
        return (registers[part.full] & _MASK64) >> 8 * part.offset & _mask(part.size)

    return reg


def full_register_reader(read: Callable[[str], int], word_size: int) -> Reg:
    """reg(name) for any general register part and "flags", from `read(name)` of whole
    registers by gdb's names: rax ... r15, rip and eflags (eax ... eip in a 32-bit task)."""
    wide = word_size == 8
    slices = _WHOLE_SLICES[wide]

    def reg(name: str) -> int:
        found = slices.get(name)
        if found is None:
            found = slices[name] = _whole_register_slice(name, wide)
        whole, shift, mask = found
        return (read(whole) & _MASK64) >> shift & mask

    return reg


# Register part -> (whole register by gdb's name, shift, mask), for 64-bit and 32-bit tasks:
# worked out once per name (only general register names get in), as both engines read a
# few registers at every hit.
_WHOLE_SLICES: dict[bool, dict[str, tuple[str, int, int]]] = {True: {}, False: {}}


def _whole_register_slice(name: str, wide: bool) -> tuple[str, int, int]:
    if name in ("flags", "eflags"):
        return "eflags", 0, _MASK64
    part = register_part(name)
    if part is None:
        raise LookupError(f"not a general register: {name}")
    whole = part.full if wide else "e" + part.full[1:]
    return whole, 8 * part.offset, _mask(part.size)


def _word_size(registers: dict[str, int]) -> int:
    return 4 if registers.get("cs") == _USER32_CS else 8


def _mask(size: int) -> int:
    return (1 << 8 * size) - 1
