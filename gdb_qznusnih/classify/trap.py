"""What a trap pc says about the watched bytes: the accessing instruction and its kinds.

x86 data breakpoints trap after the access, so the instruction is the one that ends at the
trap pc; a rep string instruction may still be running, at the pc itself.  Both engines
use this: the gdb engine (hit/session.py) with gdb's disassembly of the live process, the
perf engine (perf/engine.py) with the symbolizer's.  Pure: no gdb.
"""

from __future__ import annotations

from collections.abc import Callable

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify import x86 as classify
from gdb_qznusnih.options import one_line


class DecodedTrap:
    """What a trap pc tells us, computed once per pc."""

    __slots__ = ("insn_pc", "text", "insn", "in_progress")

    def __init__(self, insn_pc, text, insn, in_progress):
        self.insn_pc = insn_pc  # start of the accessing instruction (the pc when unknown)
        self.text = text
        self.insn = insn  # classify.Instruction or None
        self.in_progress = in_progress  # (start, text, insn) of a rep string op at pc, or None


def decode_trap(pc: int, text_at_pc: str | None, before: tuple[int, str] | None) -> DecodedTrap:
    """`text_at_pc`: the instruction at pc; `before`: (start, text) of the one ending there."""
    in_progress = None
    if text_at_pc is not None:
        insn = classify.parse_instruction(text_at_pc)
        if insn is not None and insn.is_string and insn.is_rep:
            in_progress = (pc, one_line(text_at_pc), insn)
    if before is None:
        return DecodedTrap(pc, None, None, in_progress)
    start, text = before
    insn = classify.parse_instruction(text)
    if insn is not None and not classify.accesses_memory(insn):
        insn = None
    return DecodedTrap(start, one_line(text), insn, in_progress)


class RegisterReader:
    """reg(name) for the classifier; remembers whether it was needed."""

    __slots__ = ("used", "_read")

    def __init__(self, read: Callable[[str], int]) -> None:
        self.used = False
        self._read = read

    def __call__(self, name: str) -> int:
        self.used = True
        return self._read(name)


class TrapClassifier:
    """Kinds of the accesses a trap made to `length` bytes at `address`.

    Kinds that did not need a register are the same at every hit of a pc: cached per pc.
    """

    def __init__(
        self, address: int, length: int, word_size: int = 8, caches: CacheRegistry | None = None
    ) -> None:
        self.address, self.length, self.word_size = address, length, word_size
        self._static_kinds = (caches if caches is not None else CacheRegistry()).cache(
            "kinds by pc"
        )

    def kinds(
        self, pc: int, decoded: DecodedTrap, read_register: Callable[[str], int]
    ) -> tuple[int, str | None, list[str]] | None:
        """(insn_pc, text, kinds) from the instruction; None when it cannot say (the caller
        falls back: the gdb engine on the value change, the perf engine on the hardware)."""
        reg = RegisterReader(read_register)
        address, length, word = self.address, self.length, self.word_size
        if decoded.in_progress is not None:
            start, text, insn = decoded.in_progress
            if classify.string_access_near(insn, address, length, reg, word):
                kinds = classify.classify_access(insn, address, length, reg, word)
                if kinds:
                    return start, text, kinds
        if decoded.insn is None:
            return None
        kinds = self._static_kinds.get(pc, False)
        if kinds is False:
            reg.used = False
            kinds = classify.classify_access(decoded.insn, address, length, reg, word)
            if not reg.used:
                self._static_kinds.remember(pc, kinds)
        if kinds:
            return decoded.insn_pc, decoded.text, kinds
        return None
