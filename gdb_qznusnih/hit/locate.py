"""Find the instruction that made a data access, given the trap pc.  Needs gdb.

x86 data breakpoints trap after the access, so the accessing instruction is
normally the one that ends at `$pc`.  x86 code cannot be decoded backwards
reliably, so we decode forwards from the function's start when gdb knows it,
and otherwise from many earlier offsets, keeping the instruction that most
decodings agree ends at `$pc` (x86 decodings resynchronise within a few
instructions).  Results are cached per pc: a hot loop pays once.
"""

from __future__ import annotations

from collections import Counter

import gdb

from gdb_qznusnih.arm.target import function_block, outer_function_start
from gdb_qznusnih.caches import CacheRegistry

# How far back to start decoding when the function start is unknown.
_SWEEP_BYTES = 48
# Functions longer than this are decoded from the sweep window instead.
_MAX_FUNCTION_BYTES = 64 * 1024


class InstructionLocator:
    """Maps a trap pc to (start, text) of the instruction that ended there."""

    def __init__(self, arch: gdb.Architecture, caches: CacheRegistry) -> None:
        self._arch = arch
        self._before = caches.cache("instruction before pc")
        self._at = caches.cache("instruction at pc")

    def at(self, pc: int) -> tuple[int, str] | None:
        """The instruction starting at pc: (length, text)."""
        if pc in self._at:
            return self._at[pc]
        return self._at.remember(pc, self._decode(pc))

    def before(self, pc: int) -> tuple[int, str] | None:
        """The instruction ending at pc: (start, text), or None when undecodable."""
        if pc in self._before:
            return self._before[pc]
        return self._before.remember(pc, self._find_before(pc))

    def starts_function(self, pc: int) -> bool:
        """pc is where a (not inlined) function begins: no access falls through to it."""
        return outer_function_start(pc) == pc

    def _decode(self, addr: int) -> tuple[int, str] | None:
        try:
            insn = self._arch.disassemble(addr)[0]
        except (gdb.MemoryError, gdb.error):
            return None
        return insn["length"], insn["asm"]

    def _find_before(self, pc: int) -> tuple[int, str] | None:
        start = _function_start(pc - 1)
        if start is not None and 0 < pc - start <= _MAX_FUNCTION_BYTES:
            found = self._linear_to(start, pc)
            if found is not None:
                return found
        return self._vote(pc)

    def _linear_to(self, start: int, pc: int) -> tuple[int, str] | None:
        try:
            insns = self._arch.disassemble(start, pc)
        except (gdb.MemoryError, gdb.error):
            return None
        for insn in reversed(insns):
            if insn["addr"] + insn["length"] == pc:
                return insn["addr"], insn["asm"]
            if insn["addr"] < pc:
                break
        return None

    def _vote(self, pc: int) -> tuple[int, str] | None:
        decoded: dict[int, tuple[int, str] | None] = {}

        def decode(addr: int) -> tuple[int, str] | None:
            if addr not in decoded:
                decoded[addr] = self._decode(addr)
            return decoded[addr]

        votes: Counter[int] = Counter()
        for origin in range(pc - _SWEEP_BYTES, pc):
            addr = origin
            while addr < pc:
                insn = decode(addr)
                if insn is None:
                    break
                if addr + insn[0] == pc:
                    votes[addr] += 1
                    break
                addr += insn[0]
        if not votes:
            return None
        start = votes.most_common(1)[0][0]
        return start, decoded[start][1]


def _function_start(pc: int) -> int | None:
    """Start of the function holding pc, from debug info; None without it."""
    block = function_block(pc)
    return block.start if block is not None else None
