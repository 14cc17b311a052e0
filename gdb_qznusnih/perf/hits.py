"""Pair the RW and W samples of one trap into one hit.

Both events of a watch fire in the same debug trap when the instruction wrote, and the
kernel writes their two samples one right after the other into the same ring (one CPU, in
the trap handler, interrupts off), RW or W first depending on which debug register each got.
So in one ring's order, a W sample next to an RW sample of the same thread and instruction,
taken within PAIR_WINDOW_NS, is the same trap: the hardware saw a write.  A lone RW sample
is a read; a lone W sample is a write whose RW sample was lost (the loss accounting has it).
A write-only watch has no RW event: each of its W samples is a hit, a write.
"""

from __future__ import annotations

from gdb_qznusnih.perf.records import Sample

# The two samples of one trap are taken 3-5 us apart (the RW sample's stack copy between);
# 1 in 1,000 over 35 us, and 1.2 ms seen on a loaded VM.  A sample with no partner after this
# long, by the reader's clock, has none.
PAIR_WINDOW_NS = 10_000_000


class Hit:
    """One access: the sample with its registers and stack (the RW one, or the W one of a
    write-only watch) and whether the hardware saw a write."""

    __slots__ = ("sample", "hardware_saw_write")

    def __init__(self, sample: Sample, hardware_saw_write: bool):
        self.sample = sample
        self.hardware_saw_write = hardware_saw_write


class HitPairer:
    """Turns the samples of one ring, in ring order, into hits."""

    def __init__(self, window_ns: int = PAIR_WINDOW_NS):
        self._window_ns = window_ns
        self._pending: Sample | None = None
        self.writes_without_rw_sample = 0

    def add(self, sample: Sample) -> list[Hit]:
        pending = self._pending
        if pending is None:
            self._pending = sample
            return []
        if self._same_trap(pending, sample):
            self._pending = None
            return [Hit(pending if pending.kind == "rw" else sample, True)]
        self._pending = sample
        return self._alone(pending)

    def flush_older_than(self, time_ns: int) -> list[Hit]:
        """The pending sample, if it was taken before `time_ns`: its partner would be here."""
        pending = self._pending
        if pending is None or pending.time >= time_ns:
            return []
        self._pending = None
        return self._alone(pending)

    def flush(self) -> list[Hit]:
        """At the end: nothing more will come."""
        pending, self._pending = self._pending, None
        return self._alone(pending) if pending is not None else []

    def _same_trap(self, first: Sample, second: Sample) -> bool:
        return (
            first.kind != second.kind
            and first.tid == second.tid
            and first.ip == second.ip
            and abs(first.time - second.time) < self._window_ns
        )

    def _alone(self, sample: Sample) -> list[Hit]:
        if sample.kind == "rw":
            return [Hit(sample, False)]
        self.writes_without_rw_sample += 1
        return []


class WriteHits:
    """The hits of a write-only watch: its one event, W, samples every write and nothing else."""

    writes_without_rw_sample = 0  # there is no RW event to miss

    def add(self, sample: Sample) -> list[Hit]:
        return [Hit(sample, True)]

    def flush_older_than(self, time_ns: int) -> list[Hit]:
        return []

    def flush(self) -> list[Hit]:
        return []
