"""reg(name) over register values in a fixed order (a perf sample's: abi.REGISTER_NAMES).  Pure.

Two readers, one per caller: the trap classifier reads whole registers by the names such a
tuple has (its own, gdb's "eflags", the 32-bit halves), the value derivation any part of a
general register (%al, %ah, %r8d) and the flags (values.Reg).  Each name is worked out once,
into an index, a shift and a mask: a read is a lookup and an index.  A name the values lack
raises a LookupError (KeyError, or IndexError when there are no values at all), which both
callers take as "not sampled".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gdb_qznusnih.classify.x86 import GENERAL_REGISTERS, register_part

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_HALVED = "rax rbx rcx rdx rsi rdi rbp rsp rip".split() + [f"r{n}" for n in range(8, 16)]


class RegisterTuple:
    """Readers over values in the order of `names` (rax ... r15, rip, "flags")."""

    def __init__(self, names: Sequence[str]) -> None:
        index = {name: number for number, name in enumerate(names)}
        whole = {name: (number, _MASK64) for name, number in index.items()}
        whole["eflags"] = (index["flags"], _MASK64)
        for name in _HALVED:
            half = f"{name}d" if name[1].isdigit() else f"e{name[1:]}"
            whole[half] = (index[name], _MASK32)
        self._whole = whole
        self._index = index
        self._parts = {
            name: self._part(part.full, part.offset, part.size)
            for name, part in GENERAL_REGISTERS.items()
        }
        self._parts["flags"] = self._parts["eflags"] = (index["flags"], 0, _MASK64)

    def _part(self, full: str, offset: int, size: int) -> tuple[int, int, int]:
        return self._index[full], 8 * offset, (1 << 8 * size) - 1

    def whole_reader(self, values: Sequence[int] | None) -> Callable[[str], int]:
        """read(name) for the classifier: the registers by their names, eflags, the 32-bit
        halves (eax, r8d)."""
        values = values or ()
        whole = self._whole

        def read(name: str) -> int:
            index, mask = whole[name]  # KeyError (fs_base...: not sampled) the caller handles
            return values[index] & mask

        return read

    def part_reader(self, values: Sequence[int] | None) -> Callable[[str], int]:
        """reg(name) for the value derivation: any general register part, unsigned, and
        the flags."""
        values = values or ()
        parts = self._parts

        def reg(name: str) -> int:
            found = parts.get(name)
            if found is None:  # another spelling (" %AL"), or not a general register
                part = register_part(name)
                if part is None:
                    raise LookupError(f"not a general register: {name}")
                found = self._part(part.full, part.offset, part.size)
            index, shift, mask = found
            return values[index] >> shift & mask

        return reg
