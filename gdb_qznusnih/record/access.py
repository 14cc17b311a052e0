"""The access record: one dataclass, one JSON Lines shape.  Pure: no gdb."""

from __future__ import annotations

import json
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

    def to_json(self) -> dict:
        return {
            "level": self.level,
            "pc": hex(self.pc),
            "func": self.func,
            "file": self.file,
            "line": self.line,
        }


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
    pc: int  # start of the accessing instruction
    insn: str | None
    time: float  # seconds since the epoch
    frames: tuple[Frame, ...]
    kind_from: str = "insn"  # "insn" (decoded) or "value" (value change only)
    mode: str | None = None  # "user" | "kernel" in whole-system mode
    comm: str | None = None
    extra: dict = field(default_factory=dict)
    watch: int = 1  # the watch's number, as qzn-status and qzn-unwatch name it
    # Where `value` comes from: "memory" (read after the trap), "registers" (what the
    # instruction itself stored or loaded), or None when not known.
    value_from: str | None = "memory"

    def to_json(self) -> dict:
        doc = {
            "seq": self.seq,
            "kind": self.kind,
            "addr": hex(self.addr),
            "len": self.length,
            "old": self.old,
            "value": self.value,
            "pid": self.pid,
            "tid": self.tid,
            "pc": hex(self.pc),
            "insn": self.insn,
            "time": format_time(self.time),
            "frames": [f.to_json() for f in self.frames],
            "kind_from": self.kind_from,
        }
        if self.mode is not None:
            doc["mode"] = self.mode
            doc["comm"] = self.comm
        doc.update(self.extra)
        return doc


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


def record_shape(record: Record, key: tuple) -> tuple:
    """All of a record that a template bakes in: everything but seq, values, tid and time.

    `key` is frames_key(record.frames); old counts only as known or not.
    """
    return (key, record.kind, record.pc, record.insn, record.kind_from, record.old is None,
            record.addr, record.length, record.pid, record.mode, record.comm)  # fmt: skip


# Every field as %s, so a template can bake in the constant ones and leave %-slots for the rest.
_JSON_LINE = (
    '{"seq": %s, "kind": %s, "addr": "%s", "len": %s, "old": %s, "value": %s, "pid": %s, '
    '"tid": %s, "pc": "%s", "insn": %s, "time": "%s.%sZ", "frames": %s, "kind_from": %s%s}\n'
)


def escape_percent(text: str) -> str:
    """`text` as a constant inside a %-format."""
    return text.replace("%", "%%")


class JsonLineEncoder:
    """Encodes records as JSON lines, with one %-template per kind of record.

    Hits come from a few access sites and call paths many times over.  Everything but the
    sequence number, the values, the thread and the time is the same for all hits from one
    site and path, so it is encoded once into a template; a record costs one %-format.
    The output is `json.dumps(record.to_json())` plus a newline, key order included.  Call
    `clear()` when symbols change (templates are keyed by `frames_key`).
    """

    _CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self._templates: dict[tuple, str] = {}
        self._stamp = SecondStamp(ISO_SECOND)

    def clear(self) -> None:
        self._templates.clear()

    def encode(self, record: Record, key: tuple | None = None) -> str:
        """One JSON line, ending with a newline; `key` is frames_key(record.frames) if known."""
        whole, micros = split_seconds(record.time)
        stamp = self._stamp.text(whole)
        old = record.old
        if old is None:
            values = (record.seq, record.value, record.tid, stamp, micros)
        else:
            values = (record.seq, old, record.value, record.tid, stamp, micros)
        return self.template(record, key) % values

    def template(self, record: Record, key: tuple | None = None) -> str:
        """The line with %-slots for seq, [old,] value, tid, time stamp and microseconds.

        The time stamp is `ISO_SECOND`; old has a slot unless it is None.
        """
        if key is None:
            key = frames_key(record.frames)
        shape = record_shape(record, key)
        template = self._templates.get(shape)
        if template is None or record.extra:
            template = self._template(record, shape)
        return template

    def _template(self, record: Record, shape: tuple) -> str:
        dumps = json.dumps
        tail = ""
        if record.mode is not None:
            tail = f', "mode": {dumps(record.mode)}, "comm": {dumps(record.comm)}'
        if record.extra:
            tail += ", " + dumps(record.extra)[1:-1]
        template = _JSON_LINE % (
            "%d",
            escape_percent(dumps(record.kind)),
            hex(record.addr),
            record.length,
            "null" if record.old is None else "%d",
            "%d",
            record.pid,
            "%d",
            hex(record.pc),
            escape_percent(dumps(record.insn)),
            "%s",
            "%06d",
            escape_percent(dumps([f.to_json() for f in record.frames])),
            escape_percent(dumps(record.kind_from)),
            escape_percent(tail),
        )
        if not record.extra:
            if len(self._templates) >= self._CACHE_LIMIT:
                self._templates.clear()
            self._templates[shape] = template
        return template


def record_from_json(doc: dict) -> Record:
    """Rebuild a Record from one parsed JSON line (used by reports and tests)."""
    known = {
        "seq",
        "kind",
        "addr",
        "len",
        "old",
        "value",
        "pid",
        "tid",
        "pc",
        "insn",
        "time",
        "frames",
        "kind_from",
        "mode",
        "comm",
    }
    frames = tuple(
        Frame(f["level"], int(f["pc"], 16), f.get("func"), f.get("file"), f.get("line"))
        for f in doc["frames"]
    )
    return Record(
        seq=doc["seq"],
        kind=doc["kind"],
        addr=int(doc["addr"], 16),
        length=doc["len"],
        old=doc["old"],
        value=doc["value"],
        pid=doc["pid"],
        tid=doc["tid"],
        pc=int(doc["pc"], 16),
        insn=doc["insn"],
        time=parse_time(doc["time"]),
        frames=frames,
        kind_from=doc.get("kind_from", "insn"),
        mode=doc.get("mode"),
        comm=doc.get("comm"),
        extra={k: v for k, v in doc.items() if k not in known},
    )
