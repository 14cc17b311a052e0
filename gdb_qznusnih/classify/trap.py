"""What a trap pc says about the watched bytes: the accessing instruction and its kinds.

x86 data breakpoints trap after the access, so the instruction is normally the one that ends
at the trap pc.  Not always: a rep string instruction may still be running, at the pc itself,
and a branch through memory (call/jmp *mem, ret) traps at its target.  In that order of
trust: the instruction ending at pc when the registers show it touched the bytes; a rep op
at pc whose index register just passed them; a ret (the instruction ending at pc is a call
and the slot just popped is watched); a call (the return address at the stack top ends
one that pushed the slot or read the pointer, or went to a PLT stub whose jmp *GOT(%rip)
read it); otherwise, when the instruction ending at pc provably did not touch the bytes (or
pc starts a function), a branch nobody can locate: pc None, kind_from "branch".
Both engines use this: the gdb engine (hit/session.py) with gdb's disassembly of the live
process, the perf engine (perf/engine.py) with the symbolizer's.  Pure: no gdb.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify import x86 as classify
from gdb_qznusnih.options import one_line
from gdb_qznusnih.record.access import READ

BRANCH = "branch"  # kind_from of an access by a branch whose pc cannot be known


class DecodedTrap:
    """What a trap pc tells us, computed once per pc."""

    __slots__ = ("insn_pc", "text", "insn", "in_progress", "at_entry", "coverage")

    def __init__(self, insn_pc, text, insn, in_progress, at_entry=False, word_size=8):
        self.insn_pc = insn_pc  # start of the accessing instruction (the pc when unknown)
        self.text = text
        self.insn = insn  # classify.Instruction or None
        self.in_progress = in_progress  # (start, text, insn) of a rep string op at pc, or None
        self.at_entry = at_entry  # pc starts a function: only a branch can have led here
        # whether insn touched given bytes, from the registers after it
        self.coverage = classify.coverage(insn, word_size) if insn is not None else None


def decode_trap(
    pc: int,
    text_at_pc: str | None,
    before: tuple[int, str] | None,
    at_entry: bool = False,
    word_size: int = 8,
) -> DecodedTrap:
    """`text_at_pc`: the instruction at pc; `before`: (start, text) of the one ending there;
    `at_entry`: pc is a function's first instruction."""
    in_progress = None
    if text_at_pc is not None:
        insn = classify.parse_instruction(text_at_pc)
        if insn is not None and insn.is_string and insn.is_rep:
            in_progress = (pc, one_line(text_at_pc), insn)
    if before is None:
        return DecodedTrap(pc, None, None, in_progress, at_entry)
    start, text = before
    insn = classify.parse_instruction(text)
    if insn is not None and not classify.accesses_memory(insn):
        insn = None
    return DecodedTrap(start, one_line(text), insn, in_progress, at_entry, word_size)


_PC_NAMES = frozenset(("rip", "eip"))


class RegisterReader:
    """reg(name) for the classifier; counts the reads that depend on the hit.

    The pc is no such read: at a trap at pc, rip is pc at every hit."""

    __slots__ = ("reads", "_read")

    def __init__(self, read: Callable[[str], int]) -> None:
        self.reads = 0
        self._read = read

    def __call__(self, name: str) -> int:
        if name not in _PC_NAMES:
            self.reads += 1
        return self._read(name)


class TrapAccess(NamedTuple):
    """The accesses one trap stands for.

    `insn_pc` is None for a branch that cannot be located (a ret, a jmp through memory);
    frame 0 is then the trap pc, where the branch went.  `return_address` is set when the
    accessing instruction is the call that led to the trap pc: frame 0 is its caller, at it.
    """

    insn_pc: int | None
    text: str | None
    kinds: list[str]
    kind_from: str  # "insn", or BRANCH
    return_address: int | None = None


# (start, text) of the instruction ending at an address, or None
InstructionBefore = Callable[[int], "tuple[int, str] | None"]
# the text of the instruction starting at an address, or None
InstructionAt = Callable[[int], "str | None"]
_ENDBR_BYTES = 4  # endbr64/endbr32, first in a PLT stub under CET
_UNKNOWN = object()  # not cached (None is a cached answer: the instruction cannot say)


class TrapClassifier:
    """Kinds of the accesses a trap made to `length` bytes at `address`.

    Kinds that did not need a register are the same at every hit of a pc: cached per pc.
    `instruction_before` decodes the instruction ending at a return address (a call),
    `instruction_at` the one at a call's target (a PLT stub's jmp through the GOT).
    """

    def __init__(
        self,
        address: int,
        length: int,
        word_size: int = 8,
        caches: CacheRegistry | None = None,
        instruction_before: InstructionBefore | None = None,
        instruction_at: InstructionAt | None = None,
    ) -> None:
        self.address, self.length, self.word_size = address, length, word_size
        caches = caches if caches is not None else CacheRegistry()
        self._static_kinds = caches.cache("kinds by pc")
        self._static_accesses = caches.cache("accesses by pc")
        self._calls = caches.cache("calls by return address")
        self._instruction_before = instruction_before
        self._instruction_at = instruction_at
        self._sp = "rsp" if word_size == 8 else "esp"

    def classify(
        self,
        pc: int,
        decoded: DecodedTrap,
        read_register: Callable[[str], int],
        stack_top: Callable[[], int | None] | None = None,
    ) -> TrapAccess | None:
        """The accesses from the instruction; None when it cannot say (the caller falls
        back: the gdb engine on the value change, the perf engine on the hardware).
        `stack_top()` reads the word at the stack pointer, None when it cannot.
        An answer that read nothing of the hit (a rip-relative global's) is the same at
        every hit of the pc: cached per pc."""
        found = self._static_accesses.get(pc, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        reg = RegisterReader(read_register)

        def read_stack_top() -> int | None:
            reg.reads += 1
            return stack_top()

        found = self._classify(pc, decoded, reg, read_stack_top if stack_top else None)
        if not reg.reads:
            self._static_accesses.remember(pc, found)
        return found

    def _classify(self, pc, decoded, reg, stack_top) -> TrapAccess | None:
        covered = self._covered(decoded, reg)
        if covered:
            return self._by_instruction_before(pc, decoded, reg)
        found = self._by_rep(decoded, reg)
        if found is None and (covered is False or decoded.insn is None):
            # Not the instruction ending at pc: a branch went to pc.  (Where that one may
            # still be the access, the stack is not read: that costs a read at every hit.)
            found = self._by_ret(decoded, reg)
            if found is None and stack_top is not None:
                found = self._by_call(stack_top, reg)
        if found is not None:
            return found
        if covered is None:
            return self._by_instruction_before(pc, decoded, reg)
        return TrapAccess(None, None, [READ], BRANCH)

    def _covered(self, decoded: DecodedTrap, reg: RegisterReader) -> bool | None:
        if decoded.at_entry:
            return False  # compiled code never falls through into a function
        if decoded.text is None:
            return None  # nothing decodes to end at pc
        if decoded.insn is None:
            return False  # it makes no data access
        return decoded.coverage(self.address, self.length, reg)

    def _by_instruction_before(self, pc, decoded, reg) -> TrapAccess | None:
        if decoded.insn is None:
            return None
        kinds = self._static_kinds.get(pc, False)
        if kinds is False:
            reads = reg.reads
            kinds = classify.classify_access(
                decoded.insn, self.address, self.length, reg, self.word_size
            )
            if reg.reads == reads:
                self._static_kinds.remember(pc, kinds)
        return TrapAccess(decoded.insn_pc, decoded.text, kinds, "insn") if kinds else None

    def _by_rep(self, decoded, reg) -> TrapAccess | None:
        if decoded.in_progress is None:
            return None
        start, text, insn = decoded.in_progress
        address, length, word = self.address, self.length, self.word_size
        if not classify.string_access_near(insn, address, length, reg, word):
            return None
        kinds = classify.classify_access(insn, address, length, reg, word)
        return TrapAccess(start, text, kinds, "insn") if kinds else None

    def _by_ret(self, decoded, reg) -> TrapAccess | None:
        """pc follows a call, so it is a return address: a ret that popped the watched slot
        came here.  Which ret, the registers cannot say."""
        if not classify.is_call(decoded.insn):
            return None
        try:
            slot = (reg(self._sp) - self.word_size) & ((1 << 8 * self.word_size) - 1)
        except classify.REGISTER_ERRORS:
            return None
        if slot < self.address + self.length and self.address < slot + self.word_size:
            return TrapAccess(None, None, [READ], BRANCH)
        return None

    def _by_call(self, stack_top, reg) -> TrapAccess | None:
        """pc is a call's target: the return address it pushed ends it."""
        if self._instruction_before is None:
            return None
        return_address = stack_top()
        if not return_address:  # unreadable, or a zero word: no call returns to 0
            return None
        call = self._call_ending_at(return_address)
        if call is None:
            return None
        start, text, insn, stub_jump = call
        try:
            kinds = classify.call_kinds(
                insn, return_address, self.address, self.length, reg, self.word_size
            )
        except classify.REGISTER_ERRORS:
            return None
        if kinds:
            return TrapAccess(start, text, kinds, "insn", return_address)
        if stub_jump is not None:  # the call went to a PLT stub, whose jmp read the GOT slot
            jump_pc, jump_text, slot = stub_jump
            if slot < self.address + self.length and self.address < slot + self.word_size:
                return TrapAccess(jump_pc, jump_text, [READ], "insn")
        return None

    def _call_ending_at(self, return_address: int):
        if return_address in self._calls:
            return self._calls[return_address]
        found = self._instruction_before(return_address)
        call = None
        if found is not None:
            insn = classify.parse_instruction(found[1])
            if classify.is_call(insn):
                call = (found[0], one_line(found[1]), insn, self._stub_jump(insn))
        return self._calls.remember(return_address, call)

    def _stub_jump(self, call: classify.Instruction) -> tuple[int, str, int] | None:
        """(pc, text, GOT slot) of the `jmp *GOT(%rip)` a direct call's target starts with."""
        address = classify.direct_target(call)
        if address is None or self._instruction_at is None:
            return None
        for _ in range(2):  # endbr64, then the jump
            text = self._instruction_at(address)
            insn = classify.parse_instruction(text) if text is not None else None
            if insn is None:
                return None
            if insn.mnemonic in ("endbr64", "endbr32"):
                address += _ENDBR_BYTES
                continue
            slot = classify.rip_relative_jump_slot(insn)
            return None if slot is None else (address, one_line(text), slot)
        return None


_NOT_READ = object()  # a register the reader did not have
_STACK_TOP = object()  # in a trace: the word at the stack pointer
_MISSING = object()
GIVE_UP_MISSES = 64  # a pc answered anew this often has reads that keep changing


class _Remembered:
    """The reads classify made at one pc, and its answers by their values."""

    __slots__ = ("reads", "answers", "misses")

    def __init__(self, reads: tuple) -> None:
        self.reads = reads
        self.answers: dict[tuple, TrapAccess | None] = {}
        self.misses = 0


class _Trace:
    """A register reader and stack-top reader that note what was read, in order."""

    __slots__ = ("_read", "_stack_top", "reads", "values")

    def __init__(self, read: Callable[[str], int], stack_top) -> None:
        self._read, self._stack_top = read, stack_top
        self.reads: list = []
        self.values: list = []

    def read(self, name: str) -> int:
        self.reads.append(name)
        try:
            value = self._read(name)
        except classify.REGISTER_ERRORS:
            self.values.append(_NOT_READ)
            raise
        self.values.append(value)
        return value

    def stack_top(self) -> int | None:
        value = self._stack_top()
        self.reads.append(_STACK_TOP)
        self.values.append(value)
        return value


class RememberingClassifier:
    """TrapClassifier.classify with its answers at each pc remembered by the reads they made.

    classify is a function of the pc, its DecodedTrap, the registers it reads and the word at
    the stack top (its own caches keep only what needs no register, or nothing of them): an
    answer holds for any later trap at the pc whose same reads give the same values.  So a
    trap costs those reads and a lookup when they repeat: the rip of a rip-relative operand,
    the frame pointer of a local.  A pc whose values keep changing (a pointer walking an
    array) is given up after GIVE_UP_MISSES new answers.  For an engine whose registers cost
    nothing to read (the perf engine's sample); the answers go with `caches`."""

    def __init__(self, classifier: TrapClassifier, caches: CacheRegistry) -> None:
        self._classifier = classifier
        self._pcs = caches.cache("classified traps by pc")

    def classify(
        self,
        pc: int,
        decoded: DecodedTrap,
        read_register: Callable[[str], int],
        stack_top: Callable[[], int | None],
    ) -> TrapAccess | None:
        remembered = self._pcs.get(pc)
        if remembered is not None:
            if remembered.answers is None:  # given up
                return self._classifier.classify(pc, decoded, read_register, stack_top)
            values = _values(remembered.reads, read_register, stack_top)
            found = remembered.answers.get(values, _MISSING)
            if found is not _MISSING:
                return found
        trace = _Trace(read_register, stack_top)
        found = self._classifier.classify(pc, decoded, trace.read, trace.stack_top)
        self._remember(pc, remembered, tuple(trace.reads), tuple(trace.values), found)
        return found

    def _remember(self, pc, remembered, reads: tuple, values: tuple, found) -> None:
        misses = 0
        if remembered is not None:
            misses = remembered.misses + 1
            if misses >= GIVE_UP_MISSES:
                remembered.answers = None
                return
        if remembered is None or remembered.reads != reads:  # another path: its reads now
            remembered = self._pcs.remember(pc, _Remembered(reads))
        remembered.misses = misses
        remembered.answers[values] = found


def _values(reads: tuple, read_register: Callable[[str], int], stack_top) -> tuple:
    """What `reads` read now, as a _Trace noted it."""
    values = []
    for name in reads:
        if name is _STACK_TOP:
            values.append(stack_top())
            continue
        try:
            values.append(read_register(name))
        except classify.REGISTER_ERRORS:
            values.append(_NOT_READ)
    return tuple(values)
