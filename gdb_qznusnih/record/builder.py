"""One trap's accesses as Records, the same way for both engines.  Pure: no gdb.

An engine decodes a trap into the kinds of its accesses (classify/trap.py); RecordBuilder turns
them into records: the value each access moved, from the registers where the instruction
determines it (classify/values.py: what this thread stored or loaded, whatever another thread
did since), else from memory where the engine can read it (the gdb engine, after the trap);
the value before each access; `changed_unseen`; seq, the access filter and --count.

Two values are followed: `known`, the watched bytes after the last access any trap showed
(logged or filtered out: a plain store's `old`), and `shown`, the value after the last record
logged.  A record whose value before the access (a read's value, a write's old) is known and
differs from `shown` says so: the bytes changed where no record shows it (the kernel's
`read()` into them, invisible to ptrace and to user-space breakpoints, or accesses filtered
out by --access).
"""

from __future__ import annotations

from collections.abc import Callable

from gdb_qznusnih.caches import Cache
from gdb_qznusnih.classify.values import REGISTERS, Reg, value_getter
from gdb_qznusnih.record.access import READ, Frame, Record
from gdb_qznusnih.record.condition import Condition

MEMORY = "memory"
# The read half of a read-modify-write the registers cannot tell (add, inc, ...): the value
# the previous access left.
PREVIOUS = "previous"
GETTERS_LIMIT = 4096  # instructions of a watch: a few in practice


class RecordBuilder:
    """Records for one watch: `watch` number, `length` bytes at `address`.

    `access` is "rw", "r" or "w" (the kinds logged), `count` ends the watch after that many
    records, `known` is the watched bytes' value at arm time (None if not read).
    `condition` (--if) keeps only the records where it holds; `stop_condition` (--stop-if)
    ends the watch at the first record where it holds, that record logged last."""

    __slots__ = (
        "watch", "address", "length", "count", "seq", "known", "shown", "_wanted",
        "condition", "stop_condition", "stopped", "_getters",
    )  # fmt: skip

    def __init__(
        self,
        watch: int,
        address: int,
        length: int,
        access: str = "rw",
        count: int | None = None,
        known: int | None = None,
        condition: Condition | None = None,
        stop_condition: Condition | None = None,
    ) -> None:
        self.watch, self.address, self.length, self.count = watch, address, length, count
        self.condition, self.stop_condition = condition, stop_condition
        self.stopped = False  # the --stop-if access was logged
        self.seq = 0
        self.known = known
        self.shown = known
        self._wanted = {READ: "r" in access, "write": "w" in access}
        # (text, kind, word size) -> how the registers give the value: a pure function of it
        self._getters: Cache = Cache("value getters", GETTERS_LIMIT)

    @property
    def count_reached(self) -> bool:
        return self.count is not None and self.seq >= self.count

    @property
    def end_reason(self) -> str | None:
        """Why no more records may be logged (--count, --stop-if), or None."""
        if self.stopped:
            return f"--stop-if {self.stop_condition.text} matched"
        if self.count_reached:
            return f"--count {self.count} reached"
        return None

    def build(
        self,
        kinds: list[str],
        text: str | None,
        reg: Reg,
        word_size: int,
        memory: Callable[[], int] | None,
        pid: int,
        tid: int,
        pc: int,
        time: float,
        frames: tuple[Frame, ...],
        kind_from: str = "insn",
        mode: str | None = None,
        comm: str | None = None,
        more_frames: bool = False,
    ) -> list[Record]:
        """The records of one instruction's accesses, in `kinds`' order, that the filter keeps
        (none once --count is reached).  `reg` reads the registers after the instruction;
        `memory()` the watched bytes now, or None when the engine cannot read them."""
        records = []
        before = self.known  # the value before the next access, as far as known
        wanted, count = self._wanted, self.count
        for kind in kinds:
            value, value_from = self._value(kind, text, reg, word_size, memory, kinds, before)
            if kind == READ:
                old = None
                value_before = value
                if value is not None:
                    before = self.known = value
            else:
                old = value_before = before
                before = self.known = value
            if not wanted[kind] or self.stopped or (count is not None and self.seq >= count):
                continue
            shown = self.shown
            unseen = value_before is not None and shown is not None and value_before != shown
            # By position, in Record's field order (a third of the cost of keywords).
            record = Record(
                self.seq + 1, kind, self.address, self.length, old, value, pid, tid, pc, text,
                time, frames, kind_from, mode, comm, {}, self.watch, value_from, more_frames,
                unseen,
            )  # fmt: skip
            if self.stop_condition is not None and self.stop_condition(record):
                self.stopped = True  # logged whatever --if says: the access that matters
            elif self.condition is not None and not self.condition(record):
                continue
            self.seq += 1
            records.append(record)
            if value is not None or kind != READ:  # a write of an unknown value: unknown now
                self.shown = value
        return records

    def _value(self, kind, text, reg, word_size, memory, kinds, before):
        """(value after the access, where it comes from) for one access of the instruction."""
        if text is not None:
            getter = self._getters.get((text, kind, word_size))
            if getter is None:
                getter = self._getters.remember(
                    (text, kind, word_size),
                    value_getter(text, kind, word_size, self.address, self.length),
                )
            value, value_from = getter(reg)
            if value_from == REGISTERS:
                return value, REGISTERS
        if kind == READ and len(kinds) > 1:  # the read half: memory holds the value after
            return (None, None) if before is None else (before, PREVIOUS)
        if memory is not None:
            return memory(), MEMORY
        return None, None
