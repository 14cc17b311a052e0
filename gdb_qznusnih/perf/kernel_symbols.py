"""Kernel frames for the pcs of a kernel-mode sample, named from /proc/kallsyms.  Pure but
for load().

/proc/kallsyms shows real addresses only to readers the kernel trusts (kernel.kptr_restrict:
at 0, root or perf_event_paranoid <= 1; at 1, CAP_SYSLOG; at 2, nobody): otherwise every
address reads 0, and kernel frames keep their pcs without names.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from gdb_qznusnih.perf.symbolizer import SymbolFrame

KALLSYMS = "/proc/kallsyms"
_CODE_TYPES = frozenset("tTwW")


class KernelSymbols:
    """The kernel's symbols, sorted by address: which function holds a pc."""

    def __init__(self, symbols: list[tuple[int, str, bool]]):
        symbols = sorted(symbols, key=lambda symbol: symbol[0])
        self._starts = [address for address, _, _ in symbols]
        self._names = [name if code else None for _, name, code in symbols]

    @classmethod
    def parse(cls, text: str) -> KernelSymbols:
        """From kallsyms' lines, "ffffffff81000000 T _stext [module]".  Data symbols are kept
        too: they end the code symbol before them."""
        symbols = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            try:
                address = int(fields[0], 16)
            except ValueError:
                continue
            symbols.append((address, fields[2], fields[1] in _CODE_TYPES))
        return cls(symbols)

    @classmethod
    def load(cls, path: str = KALLSYMS) -> KernelSymbols:
        """The running kernel's symbols; none if the file cannot be read."""
        try:
            with open(path, errors="replace") as kallsyms:
                return cls.parse(kallsyms.read())
        except OSError:
            return cls([])

    @property
    def visible(self) -> bool:
        """False when the kernel hid the addresses (all 0) or there are none."""
        return bool(self._starts) and self._starts[-1] != 0

    def function(self, pc: int) -> str | None:
        """The code symbol at or before pc, None if pc is before the first symbol, in data,
        or the addresses are hidden."""
        if not self.visible:
            return None
        index = bisect.bisect_right(self._starts, pc) - 1
        return self._names[index] if index >= 0 else None

    def frames(self, pcs: Sequence[int]) -> tuple[SymbolFrame, ...]:
        """The frames of a kernel callchain (the trap ip, then return addresses), innermost
        first.  Each pc is named at pc - 1: the trap ip follows the accessing instruction,
        a return address follows its call."""
        return tuple(SymbolFrame(pc, self.function(pc - 1), None, None) for pc in pcs)
