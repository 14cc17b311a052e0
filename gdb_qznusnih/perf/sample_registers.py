"""reg(name) over a perf sample's user registers: a tuple in abi.REGISTER_NAMES order.  Pure.

Two readers, one per caller: the trap classifier reads whole registers by the names a sample
has (perf's, gdb's "eflags", the 32-bit halves), the value derivation any part of a general
register (%al, %ah, %r8d) and the flags.  Each name is worked out once, here, into an index,
a shift and a mask; a read is a lookup and an index.  A name the sample lacks raises a
LookupError (KeyError, or IndexError when the sample has no registers at all), which both
callers take as "not sampled".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gdb_qznusnih.classify.x86 import GENERAL_REGISTERS, RegisterPart, register_part
from gdb_qznusnih.perf.abi import REGISTER_NAMES

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_INDEX = {name: index for index, name in enumerate(REGISTER_NAMES)}
# The classifier's names: perf's own, eflags, and the low halves of the 64-bit ones.
_WHOLE = {name: (index, _MASK64) for name, index in _INDEX.items()}
_WHOLE["eflags"] = (_INDEX["flags"], _MASK64)
_HALVED = "rax rbx rcx rdx rsi rdi rbp rsp rip".split()
_WHOLE.update({f"e{name[1:]}": (_INDEX[name], _MASK32) for name in _HALVED})
_WHOLE.update({f"r{n}d": (_INDEX[f"r{n}"], _MASK32) for n in range(8, 16)})


def _part_read(part: RegisterPart) -> tuple[int, int, int]:
    return _INDEX[part.full], 8 * part.offset, (1 << 8 * part.size) - 1


_PARTS = {name: _part_read(part) for name, part in GENERAL_REGISTERS.items()}
_PARTS["flags"] = _PARTS["eflags"] = (_INDEX["flags"], 0, _MASK64)


def whole_register_reader(regs: Sequence[int] | None) -> Callable[[str], int]:
    """read(name) for the classifier: rax ... r15, rip, flags (or eflags), cs, ss, and the
    32-bit halves (eax, r8d)."""
    values = regs or ()

    def read(name: str) -> int:
        index, mask = _WHOLE[name]  # KeyError (fs_base...: not sampled) the classifier handles
        return values[index] & mask

    return read


def part_register_reader(regs: Sequence[int] | None) -> Callable[[str], int]:
    """reg(name) for the value derivation: any general register part, unsigned, and the
    flags (classify/values.py's Reg)."""
    values = regs or ()

    def reg(name: str) -> int:
        found = _PARTS.get(name)
        if found is None:  # another spelling (" %AL"), or not a general register
            part = register_part(name)
            if part is None:
                raise LookupError(f"not a general register: {name}")
            found = _part_read(part)
        index, shift, mask = found
        return values[index] >> shift & mask

    return reg
