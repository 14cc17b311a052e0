"""What an x86 instruction did to the watched bytes, decoded from gdb's AT&T text.

x86 data breakpoints trap after the access and do not say whether it read or wrote; the
instruction that just ran does.  The input is `gdb.Architecture.disassemble(pc)[0]["asm"]`
as gdb 13 prints it in AT&T syntax.  Pure: no gdb.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from gdb_qznusnih.record.access import READ, WRITE

Reg = Callable[[str], int]

REP_REACH = 1 << 20  # how far a rep string register may have run past the byte before the trap
_DF = 1 << 10  # eflags direction flag
_MASK64 = (1 << 64) - 1
REGISTER_ERRORS = (RuntimeError, LookupError, ValueError, TypeError)  # gdb.error: RuntimeError

_PREFIXES = frozenset(
    "lock rep repz repe repnz repne data16 data32 addr16 addr32 notrack bnd xacquire "
    "xrelease cs ds es fs gs ss rex rex64".split()
)
_PREFIX_RE = re.compile(r"rex\.[wrxb]+|\{[a-z0-9]+\}")  # rex.W, rex.WRXB, {vex}, {evex}
_REP = frozenset({"rep", "repz", "repe", "repnz", "repne"})
_MNEMONIC_RE = re.compile(r"[a-z][a-z0-9]*")
SIZE_SUFFIX = {"b": 1, "w": 2, "l": 4, "q": 8}  # AT&T operand size suffixes, in bytes

_REG = r"%[a-z][a-z0-9]*"
_REG_RE = re.compile(_REG + r"(?:\(\d\))?")  # %st(1)
_IMM_RE = re.compile(r"\$-?(?:0x[0-9a-f]+|\d+)")
_MEM_RE = re.compile(
    r"(?:%(?P<seg>[c-gs]s):)?(?P<disp>-?(?:0x[0-9a-f]+|\d+))?"
    rf"(?P<paren>\((?P<base>{_REG})?(?:,(?P<index>{_REG})(?:,(?P<scale>[1248]))?)?\))?"
)
_DECORATION_RE = re.compile(r"(?:\{[^{}]*\})+$")  # {%k1}{z}, {1to16}
_REG64_RE = re.compile(r"%r(?:[a-d]x|[sd]i|[sb]p|ip|\d+)\b")
_REG32_RE = re.compile(r"%e(?:[a-d]x|[sd]i|[sb]p)\b")

# What an explicit memory operand undergoes, by mnemonic without its b/w/l/q suffix.
_RMW = frozenset(
    "add adc sub sbb and or xor inc dec neg not shl shr sal sar rol ror rcl rcr bts btr btc "
    "xchg xadd cmpxchg cmpxchg8b cmpxchg16b shld shrd arpl".split()
)
_READ_ONLY = frozenset("cmp test bt ptest vptest vtestps vtestpd bound".split())  # mem may be last
_NO_ACCESS = frozenset(  # address arithmetic, hints and cache control: no data access
    "lea nop cldemote invlpg invlpga bndmk bndcl bndcu bndcn".split()
)
# Cache-line flushes trigger data breakpoints as reads of the operand's one byte (counted with
# perf on AMD EPYC: mem:ADDR/1:rw fires, mem:ADDR/1:w and ADDR+1 do not); clzero stores the
# whole 64-byte line that %rax points into.
_FLUSHES = frozenset("clflush clflushopt clwb".split())
CACHE_LINE = 64
_SINGLE_STORES = frozenset("pop stmxcsr vstmxcsr sgdt sidt sldt str smsw vmptrst".split())
_STORE_PREFIXES = ("set", "fst", "fist", "fbstp", "fnst", "fsave", "fnsave", "fxsave", "xsave")
_SETCC_RE = re.compile(r"set(?:n?(?:a|ae|b|be|c|e|g|ge|l|le|o|p|s|z)|pe|po)")
_IMPLICIT_STORES = frozenset({"maskmovdqu", "vmaskmovdqu", "maskmovq"})  # write (%rdi)
_BRANCHES = frozenset("call lcall jmp ljmp loop loope loopne loopz loopnz xbegin".split())
_PORT_IO = frozenset("in out ins outs".split())

# Implicit stack accesses.  After a push-like instruction its slot starts at the stack
# pointer; after a pop-like one it sits just below it.
_STACK = dict.fromkeys("push pushf pusha enter call lcall".split(), WRITE)
_STACK.update(dict.fromkeys("pop popf popa leave ret lret iret".split(), READ))
# String instructions: accesses in the order the CPU makes them; "si" is (%rsi), "di" (%rdi).
_STRING = {
    "movs": ((READ, "si"), (WRITE, "di")),
    "cmps": ((READ, "si"), (READ, "di")),
    "stos": ((WRITE, "di"),),
    "lods": ((READ, "si"),),
    "scas": ((READ, "di"),),
    "ins": ((WRITE, "di"),),
    "outs": ((READ, "si"),),
}
_ACC_SIZE = {"al": 1, "ax": 2, "eax": 4, "rax": 8}
_KNOWN = (
    _RMW | _READ_ONLY | _NO_ACCESS | _SINGLE_STORES | _BRANCHES | _PORT_IO | _FLUSHES | set(_STACK)
)


class RegisterPart(NamedTuple):
    """A general register name as `size` bytes from byte `offset` of the 64-bit register `full`."""

    full: str
    offset: int
    size: int


def _general_registers() -> dict[str, RegisterPart]:
    parts = {"rip": RegisterPart("rip", 0, 8), "eip": RegisterPart("rip", 0, 4)}
    for x in "abcd":
        full = f"r{x}x"
        for name, offset, size in ((full, 0, 8), (f"e{x}x", 0, 4), (f"{x}x", 0, 2)):
            parts[name] = RegisterPart(full, offset, size)
        parts[f"{x}l"], parts[f"{x}h"] = RegisterPart(full, 0, 1), RegisterPart(full, 1, 1)
    for x in ("si", "di", "bp", "sp"):
        full = "r" + x
        for name, size in ((full, 8), ("e" + x, 4), (x, 2), (x + "l", 1)):
            parts[name] = RegisterPart(full, 0, size)
    for n in range(8, 16):
        full = f"r{n}"
        for suffix, size in (("", 8), ("d", 4), ("w", 2), ("b", 1)):
            parts[full + suffix] = RegisterPart(full, 0, size)
    return parts | {"%" + name: part for name, part in parts.items()}


GENERAL_REGISTERS = _general_registers()


@dataclass(frozen=True)
class MemOperand:
    """An AT&T memory operand `seg:disp(base,index,scale)`; register names without '%'."""

    segment: str | None
    disp: int
    base: str | None
    index: str | None
    scale: int


@dataclass(frozen=True)
class Instruction:
    """One instruction as gdb printed it, split into prefixes, mnemonic and operands."""

    text: str
    prefixes: tuple[str, ...]
    mnemonic: str
    operands: tuple[str, ...]

    @property
    def is_string(self) -> bool:
        return _string_base(self.mnemonic) is not None

    @property
    def is_rep(self) -> bool:
        """A string instruction with a rep/repz/repnz prefix: it may run many iterations."""
        return self.is_string and any(p in _REP for p in self.prefixes)


@dataclass(frozen=True)
class Access:
    """One data access an instruction makes, in execution order.

    `where` is "operand" (the explicit memory operand), "stack" (an implicit stack slot at
    [reg + offset, reg + offset + size) with reg's value after the instruction), "string"
    (the element at the string register `reg`) or "implicit" (maskmovdqu's (%rdi), xlat's
    (%rbx,%al)).
    """

    kind: str
    where: str
    reg: str | None = None
    size: int = 0
    offset: int = 0
    operand: MemOperand | None = None


def parse_instruction(text: str) -> Instruction | None:
    """Split gdb's AT&T text; None for "(bad)", prefixes alone, or anything unparsable."""
    if not isinstance(text, str):
        return None
    # Operands never contain '<' or '#': cut the "# 0x4010 <counter>" comment and the
    # "<foo+4>" branch target symbol (which may itself hold spaces, '<' or '#').
    code = re.split(r"[<#]", text, maxsplit=1)[0].lower()
    words = code.split()
    i = 0
    while i < len(words) and (words[i] in _PREFIXES or _PREFIX_RE.fullmatch(words[i])):
        i += 1
    if i == len(words):
        return None
    mnemonic = re.sub(r",p[nt]$", "", words[i])  # je,pn / je,pt branch hints
    if not _MNEMONIC_RE.fullmatch(mnemonic):
        return None
    operands = _split_operands("".join(words[i + 1 :]))
    if operands is None or not all(_operand_class(op) for op in operands):
        return None
    return Instruction(text, tuple(words[:i]), mnemonic, tuple(operands))


def _number(text: str) -> int:
    """gdb's numbers: hex with 0x, else decimal (which may have leading zeros)."""
    negative = text.startswith("-")
    digits = text.lstrip("-")
    value = int(digits, 16) if digits.lower().startswith("0x") else int(digits, 10)
    return -value if negative else value


def register_part(operand: str) -> RegisterPart | None:
    """`%al` -> (rax, 0, 1), `%ah` -> (rax, 1, 1), `%r8d` -> (r8, 0, 4); None for anything that
    is not a general register (xmm, segment, control registers, memory, immediates)."""
    part = GENERAL_REGISTERS.get(operand)  # the hot path: gdb's own spelling
    return part or GENERAL_REGISTERS.get(operand.strip().lower().removeprefix("%"))


def immediate_value(operand: str) -> int | None:
    """`$0x5a` -> 90, `$-3` -> -3 (gdb prints most negatives already sign-extended); else None."""
    text = operand.strip().lower()
    return _number(text[1:]) if _IMM_RE.fullmatch(text) else None


def parse_mem_operand(operand: str) -> MemOperand | None:
    """Parse `%fs:0x28`, `-0x10(%rbp)`, `0x0(,%rax,8)`, `*0x8(%rax)`, `(%rdi){%k1}`."""
    op = _DECORATION_RE.sub("", operand.strip().lower().lstrip("*"))
    m = _MEM_RE.fullmatch(op)
    if not m or not (m["disp"] or m["paren"]):
        return None
    disp = _number(m["disp"]) if m["disp"] else 0
    return MemOperand(
        m["seg"],
        disp,
        m["base"] and m["base"][1:],
        m["index"] and m["index"][1:],
        int(m["scale"] or 1),
    )


def accesses_memory(insn: Instruction) -> bool:
    """Whether the instruction accesses data memory at all, explicitly or implicitly."""
    return bool(accesses(insn))


def classify_access(
    insn: Instruction,
    watch_start: int,
    watch_len: int,
    reg: Reg | None = None,
    word_size: int = 8,
) -> list[str] | None:
    """Ordered kinds of the accesses that touched [watch_start, watch_start + watch_len).

    None when the instruction makes no data access.  `reg(name)` gives a register's value
    after the instruction; it is called only for instructions with two accesses (push/pop/
    call with a memory operand, movs, cmps).  When the registers cannot decide, the result
    is the explicit operand's kinds, or each distinct string access kind in order.
    """
    accs = accesses(insn, word_size)
    if not accs:
        return None
    places = len({(a.where, a.reg) for a in accs})  # a read-modify-write is one place
    if places > 1 and reg is not None:
        try:
            hits = _locate(insn, accs, watch_start, max(watch_len, 1), reg)
        except REGISTER_ERRORS:
            hits = None
        if hits and any(hits):
            return [a.kind for a, hit in zip(accs, hits) if hit]
    if places > 1 and not insn.is_string:
        accs = [a for a in accs if a.where == "operand"]
    return list(dict.fromkeys(a.kind for a in accs))


def string_access_near(
    insn: Instruction, watch_start: int, watch_len: int, reg: Reg, word_size: int = 8
) -> bool:
    """For a rep string instruction still at $pc: has one of its index registers just passed
    the watched bytes (within REP_REACH, in its direction of travel)?"""
    if not insn.is_rep:
        return False
    accs = accesses(insn, word_size)
    try:
        down = bool(reg("eflags") & _DF)
        return any(
            _passed(_read(reg, a.reg), a.size, down, watch_start, max(watch_len, 1)) is not None
            for a in accs
        )
    except REGISTER_ERRORS:
        return False


def covers(
    insn: Instruction, watch_start: int, watch_len: int, reg: Reg, word_size: int = 8
) -> bool | None:
    """Did the instruction that just ran (the trap pc follows it) touch the watched bytes?

    Told from the registers after it: True or False where they say, None where they cannot
    (it changed a register of its own address, a register is not at hand, a rep string op).
    A branch is taken to have fallen through to the trap pc; a call only by its pushed slot,
    since at the instruction after a call the program has come back from the callee.
    """
    return coverage(insn, word_size)(watch_start, watch_len, reg)


class Coverage:
    """`covers` for one instruction, with everything but the registers worked out once:
    called at every hit whose trap pc follows the instruction."""

    __slots__ = ("_probes",)

    def __init__(self, probes) -> None:
        # Per access: reg -> (start, smallest size, largest size); None when unknowable.
        self._probes = probes

    def __call__(self, watch_start: int, watch_len: int, reg: Reg) -> bool | None:
        if not self._probes:
            return None
        end = watch_start + max(watch_len, 1)
        verdict = False
        for probe in self._probes:
            if probe is None:
                verdict = None
                continue
            try:
                start, smallest, largest = probe(reg)
            except REGISTER_ERRORS:
                verdict = None
                continue
            if start < end and watch_start < start + smallest:
                return True
            if start < end and watch_start < start + largest:
                verdict = None
        return verdict


@functools.lru_cache(maxsize=4096)
def coverage(insn: Instruction, word_size: int = 8) -> Coverage:
    """The Coverage of `insn` (cached per instruction)."""
    return Coverage(tuple(_probe(insn, access) for access in accesses(insn, word_size)))


def is_call(insn: Instruction | None) -> bool:
    return insn is not None and _base(insn.mnemonic) in ("call", "lcall")


def call_kinds(
    call: Instruction, return_address: int, watch_start: int, watch_len: int, reg: Reg, word=8
) -> list[str]:
    """What a call that returns to `return_address` did to the watched bytes, with the
    registers at its target (rsp points at the pushed slot): read its pointer, push the slot."""
    sp_name = "rsp" if word == 8 else "esp"
    sp = _read(reg, sp_name)
    watch_len = max(watch_len, 1)
    kinds = []
    operand = _explicit_memory(call, "call")
    if operand is not None:

        def before_call(name: str) -> int:
            if name == sp_name:
                return sp + word
            return return_address if name in ("rip", "eip") else reg(name)

        try:
            address = effective_address(operand[1], before_call)
        except REGISTER_ERRORS:
            address = None
        if address is not None and _overlaps(address, word, watch_start, watch_len):
            kinds.append(READ)
    if _overlaps(sp, word, watch_start, watch_len):
        kinds.append(WRITE)
    return kinds


_COMMENT_ADDRESS_RE = re.compile(r"#\s*0x([0-9a-f]+)")


def direct_target(insn: Instruction) -> int | None:
    """Where a direct call or jmp goes (`call 0x401030 <puts@plt>`), else None."""
    if len(insn.operands) != 1 or not re.fullmatch(r"0x[0-9a-f]+", insn.operands[0]):
        return None
    return int(insn.operands[0], 16)


def rip_relative_jump_slot(insn: Instruction) -> int | None:
    """The slot a `jmp *disp(%rip)` (a PLT stub's jump through the GOT) reads: gdb prints
    its address as the comment; None for any other instruction."""
    if _base(insn.mnemonic) != "jmp" or len(insn.operands) != 1:
        return None
    op = parse_mem_operand(insn.operands[0]) if insn.operands[0].startswith("*") else None
    found = _COMMENT_ADDRESS_RE.search(insn.text)
    if op is None or op.base not in ("rip", "eip") or op.index or found is None:
        return None
    return int(found[1], 16)


def kind_from_value(old: int | None, new: int) -> str:
    """Fallback when the instruction is unknown: a changed value was written, else read."""
    return WRITE if old is not None and old != new else READ


def effective_address(op: MemOperand, reg: Reg) -> int:
    """disp + base + index*scale, wrapped to the address size, plus the fs/gs base.

    A rip-relative operand needs reg("rip") to return the next instruction's address.
    Raises ValueError for a vector index (gather/scatter).
    """
    address = address_function(op)
    if address is None:
        raise ValueError(f"not an address register in {op}")
    return address(reg)


# -- decoding -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def accesses(insn: Instruction, word_size: int = 8) -> tuple[Access, ...]:
    """All data accesses `insn` makes, in execution order (cached per instruction)."""
    word = _word_size(insn, word_size)
    m = insn.mnemonic
    string = _string_base(m)
    if string is not None:
        return _string_accesses(insn, string, word)
    if m in _IMPLICIT_STORES:
        return (Access(WRITE, "implicit", "rdi" if word == 8 else "edi"),)
    if m.startswith("xlat"):  # its printed operand (%rbx) omits the %al index
        return (Access(READ, "implicit", "rbx" if word == 8 else "ebx"),)
    if m == "clzero":  # gdb prints no operand
        return (Access(WRITE, "implicit", "rax" if word == 8 else "eax", CACHE_LINE),)
    base, slot = _base(m), word
    if base != m and base in _STACK:
        slot = SIZE_SUFFIX[m[-1]]  # pushw, popq, retw...
    stack = _stack_access(insn, base, word, slot)
    mem = _explicit_memory(insn, base)
    if mem is None:
        return (stack,) if stack else ()
    index, op = mem
    kinds = _operand_kinds(insn, base, index)
    explicit = tuple(Access(k, "operand", size=slot if stack else 0, operand=op) for k in kinds)
    if stack is None or not explicit:
        return explicit
    return (stack, *explicit) if stack.kind == READ else (*explicit, stack)


def _operand_kinds(insn: Instruction, base: str, index: int) -> tuple[str, ...]:
    m, last = insn.mnemonic, index == len(insn.operands) - 1
    if base in _NO_ACCESS or m.startswith(("prefetch", "nop")):
        return ()
    if base in _RMW or "lock" in insn.prefixes:  # lock is only legal on read-modify-write
        return (READ, WRITE) if last or base == "xchg" else (READ,)
    if base in _READ_ONLY:
        return (READ,)
    if len(insn.operands) == 1:
        store = base in _SINGLE_STORES or (
            m.startswith(_STORE_PREFIXES) and (not m.startswith("set") or _SETCC_RE.fullmatch(m))
        )
        return (WRITE,) if store else (READ,)
    return (WRITE,) if last else (READ,)  # AT&T: the destination is the last operand


def _stack_access(insn: Instruction, base: str, word: int, slot: int) -> Access | None:
    kind = _STACK.get(base)
    if kind is None:
        return None
    if base == "enter":  # the saved frame pointer is where the new one points
        return Access(WRITE, "stack", "rbp" if word == 8 else "ebp", slot)
    sp = "rsp" if word == 8 else "esp"
    size = slot * 2 if base in ("lcall", "lret") else slot  # far: offset and selector
    offset = -size if kind == READ else 0
    if base == "ret" and insn.operands and _IMM_RE.fullmatch(insn.operands[0]):
        offset -= _number(insn.operands[0][1:])  # ret $imm releases imm more bytes
    return Access(kind, "stack", sp, size, offset)


def _explicit_memory(insn: Instruction, base: str) -> tuple[int, MemOperand] | None:
    for i, text in enumerate(insn.operands):
        if base in _BRANCHES or insn.mnemonic.startswith("j"):
            if not text.startswith("*"):  # a direct branch target, not memory
                continue
        if base in _PORT_IO and text == "(%dx)":  # an I/O port, not memory
            continue
        op = parse_mem_operand(text)
        if op is not None:
            return i, op
    return None


def _string_accesses(insn: Instruction, string: str, word: int) -> tuple[Access, ...]:
    m = insn.mnemonic
    size = SIZE_SUFFIX.get(m[len(string) :], 0)
    for text in insn.operands:
        size = size or _ACC_SIZE.get(text.lstrip("%"), 0)
    names = {}
    for text in insn.operands:
        op = parse_mem_operand(text)
        if op is not None and op.base and op.base[-2:] in ("si", "di"):
            names[op.base[-2:]] = op.base
    default = {"si": "rsi" if word == 8 else "esi", "di": "rdi" if word == 8 else "edi"}
    return tuple(Access(k, "string", names.get(r, default[r]), size) for k, r in _STRING[string])


def _string_base(mnemonic: str) -> str | None:
    for base in _STRING:
        if mnemonic.startswith(base) and mnemonic[len(base) :] in ("", "b", "w", "l", "q"):
            return base
    return None


def _base(mnemonic: str) -> str:
    """The mnemonic without its AT&T size suffix, when that names a known instruction."""
    if mnemonic not in _KNOWN and mnemonic[-1:] in SIZE_SUFFIX and mnemonic[:-1] in _KNOWN:
        return mnemonic[:-1]
    return mnemonic


def _word_size(insn: Instruction, default: int) -> int:
    """8 when the text names a 64-bit register, 4 when it names a 32-bit one, else default."""
    if _REG64_RE.search(insn.text):
        return 8
    return 4 if _REG32_RE.search(insn.text) else default


def _addr_width(name: str) -> int:
    if name == "riz" or _REG64_RE.fullmatch("%" + name):
        return 64
    if name in ("eip", "eiz") or _REG32_RE.fullmatch("%" + name) or re.fullmatch(r"r\d+d", name):
        return 32
    if name in ("bx", "si", "di", "bp"):  # 16-bit addressing
        return 16
    raise ValueError(f"not an address register: {name}")


def _split_operands(text: str) -> list[str] | None:
    if not text:
        return []
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "({") - (ch in ")}")
        if depth < 0:
            return None
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts if depth == 0 else None


def _operand_class(text: str) -> str | None:
    if re.fullmatch(r"\{[a-z0-9-]+\}", text):  # {rn-sae}, {sae}
        return "decoration"
    bare = _DECORATION_RE.sub("", text).lstrip("*")
    if _REG_RE.fullmatch(bare):
        return "register"
    if _IMM_RE.fullmatch(bare) and not text.startswith("*"):
        return "immediate"
    return "memory" if parse_mem_operand(bare) else None


# -- locating accesses with register values -----------------------------------------------


def _read(reg: Reg, name: str) -> int:
    """A register as an unsigned address: gdb gives $rsp, $esi... as signed integers."""
    return reg(name) & ((1 << _addr_width(name)) - 1)


def _overlaps(start: int, size: int, watch_start: int, watch_len: int) -> bool:
    return start < watch_start + watch_len and watch_start < start + size


def _locate(insn: Instruction, accs, watch_start: int, watch_len: int, reg: Reg):
    """Which of `accs` touched the watched bytes: a list of bools, or None if undecidable."""
    if insn.is_string:
        if not all(a.size for a in accs):
            return None
        down = bool(reg("eflags") & _DF)
        values = [_read(reg, a.reg) for a in accs]
        if insn.is_rep:
            dists = [_passed(v, a.size, down, watch_start, watch_len) for a, v in zip(accs, values)]
            near = min((d for d in dists if d is not None), default=None)
            return None if near is None else [d == near for d in dists]
        starts = [v + a.size if down else v - a.size for a, v in zip(accs, values)]
        return [_overlaps(s, a.size, watch_start, watch_len) for a, s in zip(accs, starts)]
    stack = next(a for a in accs if a.where == "stack")
    sp = _read(reg, stack.reg)
    slot_hit = _overlaps(sp + stack.offset, stack.size, watch_start, watch_len)
    hits = []
    for a in accs:
        if a is stack:
            hits.append(slot_hit)
        elif not slot_hit:
            hits.append(True)  # the trap came from somewhere: not the slot, so the operand
        else:
            hits.append(_operand_hit(insn, a, stack, sp, watch_start, watch_len, reg))
    return hits


def _operand_hit(insn, access, stack, sp, watch_start, watch_len, reg) -> bool:
    """Does the explicit operand of push/pop/call also cover the watched bytes?"""
    op = access.operand
    if op.base in ("rip", "eip") and _base(insn.mnemonic) in ("call", "lcall"):
        return False  # after a call, rip is the target, not the next instruction
    # push and call compute the address with the stack pointer from before they ran.
    before = sp + stack.size if stack.kind == WRITE else sp

    def pre(name: str) -> int:
        return before if name == stack.reg else reg(name)

    try:
        addr = effective_address(op, pre)
    except REGISTER_ERRORS:  # the slot alone explains the trap
        return False
    return _overlaps(addr, access.size or stack.size, watch_start, watch_len)


def _passed(value: int, size: int, down: bool, watch_start: int, watch_len: int) -> int | None:
    """How far a rep string register has run past the watched bytes, or None if it has not
    reached them or is more than REP_REACH beyond."""
    if down:
        dist = watch_start + watch_len - (value + size)
    else:
        dist = value - watch_start
    return dist if 0 < dist <= REP_REACH else None


# Instructions that also write registers they do not name.
_IMPLICIT_REGISTER_WRITES = {
    "mul": {"rax", "rdx"}, "imul": {"rax", "rdx"}, "div": {"rax", "rdx"},
    "idiv": {"rax", "rdx"}, "cmpxchg": {"rax"}, "cmpxchg8b": {"rax", "rdx"},
    "cmpxchg16b": {"rax", "rdx"},
}  # fmt: skip
_PLAIN_MOVES = frozenset("mov movb movw movl movq movnti".split())
_LARGEST_ACCESS = 4096  # xsave's area; an access of unknown size is at most this


def _probe(insn: Instruction, access: Access):
    """reg -> (start, smallest size, largest size) of one access, from the registers after
    the instruction; None when they cannot tell where it was."""
    size = access.size
    if access.where == "string":
        if insn.is_rep or not size:
            return None
        name = access.reg

        def element(reg):
            after = _read(reg, name)
            return (after + size if reg("eflags") & _DF else after - size), size, size

        return element
    if access.where == "stack":
        if _base(insn.mnemonic) == "pop" and _names_register(insn, {"rsp"}):
            return None  # pop %rsp: the stack pointer is what it loaded
        name, offset = access.reg, access.offset
        return lambda reg: (_read(reg, name) + offset, size, size)
    if access.where == "implicit":
        if insn.mnemonic != "clzero":
            return None
        name = access.reg
        return lambda reg: (_read(reg, name) & ~(CACHE_LINE - 1), CACHE_LINE, CACHE_LINE)
    if is_call(insn):
        return lambda reg: (0, 0, 0)  # back from the callee: rsp and rip no longer tell
    if _address_overwritten(insn, access.operand):
        return None
    address = address_function(access.operand)
    if address is None:
        return None
    known = _operand_size(insn)
    smallest, largest = (known, known) if known else (1, _LARGEST_ACCESS)
    return lambda reg: (address(reg), smallest, largest)


def address_function(op: MemOperand):
    """reg -> effective_address(op, reg), with the widths worked out once (for callers that
    keep it: an address is computed at every hit); None for a vector index."""
    try:
        width = max([_addr_width(n) for n in (op.base, op.index) if n is not None], default=64)
    except ValueError:
        return None
    mask = (1 << width) - 1
    terms = tuple(
        (name, factor)
        for name, factor in ((op.base, 1), (op.index, op.scale))
        if name is not None and name not in ("eiz", "riz")
    )
    segment = op.segment + "_base" if op.segment in ("fs", "gs") else None
    disp = op.disp

    def address(reg) -> int:
        addr = disp
        for name, factor in terms:
            addr += reg(name) * factor
        addr &= mask
        return addr if segment is None else (addr + reg(segment)) & _MASK64

    return address


def _names_register(insn: Instruction, fulls: set[str]) -> bool:
    return any((part := register_part(op)) and part.full in fulls for op in insn.operands)


def _address_overwritten(insn: Instruction, op: MemOperand) -> bool:
    """Whether the instruction may have changed a register its memory operand uses."""
    parts = (register_part(name) for name in (op.base, op.index) if name)
    used = {part.full for part in parts if part is not None}
    if not used:
        return False
    base = _base(insn.mnemonic)
    if used & _IMPLICIT_REGISTER_WRITES.get(base, set()) or (base in _STACK and "rsp" in used):
        return True
    last = insn.operands[-1] if insn.operands else ""
    stores = insn.mnemonic in _PLAIN_MOVES and parse_mem_operand(last) is not None
    return not stores and _names_register(insn, used)


def _operand_size(insn: Instruction) -> int | None:
    """The size of an explicit memory access where the text says it for certain."""
    m = insn.mnemonic
    if m in _FLUSHES:
        return 1
    if m.startswith(("movz", "movs")) and m[4:5] in SIZE_SUFFIX and len(m) == 6:
        return SIZE_SUFFIX[m[4]]  # movzbl, movswq, movslq: the first suffix is the source's
    base = _base(m)
    if base != m or (m in _PLAIN_MOVES and m != "mov" and m != "movnti"):
        return SIZE_SUFFIX[m[-1]]
    if m in ("mov", "movnti") or base in _RMW or base in ("cmp", "test"):
        sizes = {p.size for op in insn.operands if (p := register_part(op)) is not None}
        if len(sizes) == 1 and base not in ("shl shr sal sar rol ror rcl rcr shld shrd".split()):
            return sizes.pop()
    return None
