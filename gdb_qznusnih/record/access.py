"""The access record: one dataclass, one JSON Lines shape.  Pure: no gdb."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from operator import attrgetter

READ = "read"
WRITE = "write"

_LEVEL_AND_PC = attrgetter("level", "pc")


@dataclass(frozen=True, slots=True)
class Frame:
    """One backtrace frame. `pc` of level 0 is the accessing instruction."""

    level: int
    pc: int
    func: str | None = None
    file: str | None = None
    line: int | None = None
    args: str | None = None  # "argc=1, argv=0x7ffd…", only when collected


def frames_key(frames) -> tuple:
    """Identity of a call path, (level, pc) per frame: the key for text cached per path.

    The same pcs give the same functions and lines until symbols change (new objfile, exec).
    """
    return tuple(map(_LEVEL_AND_PC, frames))


@dataclass(slots=True)
class Record:
    """One access of the watched bytes.  See README "JSON Lines contract"."""

    seq: int
    kind: str  # READ or WRITE
    addr: int
    length: int
    old: int | None  # value before, on writes; None on reads
    value: int  # value after the access
    pid: int
    tid: int
    pc: int | None  # start of the accessing instruction; None: a branch that cannot be located
    insn: str | None
    time: float  # seconds since the epoch
    frames: tuple[Frame, ...]
    # "insn" (decoded), "value" (value change only), "hardware" (the perf engine's W event),
    # "branch" (a ret or jmp through memory: pc None, frame 0 where it went)
    kind_from: str = "insn"
    mode: str | None = None  # "user" | "kernel" in whole-system mode
    comm: str | None = None
    extra: dict = field(default_factory=dict)
    watch: int = 1  # the watch's number, as qzn-status and qzn-unwatch name it
    # Where `value` comes from: "memory" (read after the trap), "registers" (what the
    # instruction itself stored or loaded), or None when not known.
    value_from: str | None = "memory"
    more_frames: bool = False  # --bt-depth cut the backtrace: the program had more frames
    # The value before the access differs from the one the previous record left: the bytes
    # changed where no record shows it (the kernel's read() into them, say).
    changed_unseen: bool = False


RING_OVERFLOW = "ring overflow"
THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class LostAccesses:
    """Accesses the hardware saw that were not logged, at this point of the stream (the perf
    engine's rings overflowed, or the kernel throttled its events).  `count` is None when it
    cannot be known: a throttled event does not even count."""

    watch: int
    count: int | None
    time: float  # seconds since the epoch
    reason: str  # RING_OVERFLOW or THROTTLED


def split_seconds(seconds: float) -> tuple[int, int]:
    """(whole seconds, microseconds), rounded to the nearest microsecond."""
    whole = int(seconds)
    micros = round((seconds - whole) * 1_000_000)
    if micros == 1_000_000:
        return whole + 1, 0
    return whole, micros


class SecondStamp:
    """strftime(`layout`) of a whole second (UTC), formatted again only when the second changes."""

    __slots__ = ("_layout", "_second", "_text", "_bytes")

    def __init__(self, layout: str) -> None:
        self._layout = layout
        self._second = -1
        self._text = ""
        self._bytes = b""

    def _update(self, whole: int) -> None:
        self._second = whole
        self._text = _time.strftime(self._layout, _time.gmtime(whole))
        self._bytes = self._text.encode()

    def text(self, whole: int) -> str:
        if whole != self._second:
            self._update(whole)
        return self._text

    def bytes(self, whole: int) -> bytes:
        if whole != self._second:
            self._update(whole)
        return self._bytes


ISO_SECOND = "%Y-%m-%dT%H:%M:%S"


def format_time(seconds: float) -> str:
    """ISO 8601 UTC with microseconds: 2026-11-26T03:13:20.123456Z."""
    whole, micros = split_seconds(seconds)
    return _time.strftime(ISO_SECOND, _time.gmtime(whole)) + f".{micros:06d}Z"


def parse_time(text: str) -> float:
    """Inverse of format_time."""
    import calendar

    stamp, _, frac = text.rstrip("Z").partition(".")
    whole = calendar.timegm(_time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    return whole + (int(frac) / 10 ** len(frac) if frac else 0.0)
