"""The one home of a record's formats: its JSON line and its text block.  Pure: no gdb.

    {"watch": 1, "seq": 17, "kind": "write", "addr": "0x55d0c3a0b04b", "len": 1, "old": 0,
     "value": 42, "value_from": "memory", "pid": 4242, "tid": 4243, "pc": "0x55d0c3a08168",
     "insn": "movb $0x2a,(%rax)", "time": "2026-11-26T03:13:20.123456Z", "frames": [...],
     "kind_from": "insn"}

    [1:17] WRITE 0x55d0c3a0b04b  0x00 → 0x2a  tid 4243  03:13:20.123456
    #0  0x000055d0c3a08168 in round_once at mix.c:40
    #1  0x000055d0c3a0826a in main at mix.c:61
        movb $0x2a,(%rax)

Where accesses were not logged (the perf engine's rings overflowed), the stream has a loss
line instead, `{"lost": 212, "watch": 1, "time": "...", "reason": "ring overflow"}` (`LOST_FIELDS`;
"lost" is null when the count cannot be known), and the text logs a one-line marker.

`FIELDS` names the JSON keys in their order; `to_json`, the fast line of `JsonLine`,
`record_from_json` and `LogDecoder` all follow it (a test holds them to it).  Hits come from a
few call paths many times over, so only what a call path determines is cached: the frames'
JSON, and the backtrace and instruction as text (coloured once).  A record then costs one
%-format per text.  The same pcs give the same functions and lines until symbols change:
the caches come from a watch's caches.CacheRegistry, cleared then (new objfile, exec).
"""

from __future__ import annotations

import json
import time as _time

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.counted import counted
from gdb_qznusnih.record.access import (
    ISO_SECOND,
    WRITE,
    Frame,
    LostAccesses,
    Record,
    SecondStamp,
    format_time,
    frames_key,
    parse_time,
    split_seconds,
)
from gdb_qznusnih.sinks.render import ARROW, HMS, format_backtrace, format_insn

# The JSON keys, in the order every line has them; "mode" and "comm" follow in whole-system
# mode, "more_frames": true when --bt-depth cut the backtrace, "changed_unseen": true when the
# value before the access is not the one the previous record left, then a record's extra keys.
FIELDS = (
    "watch", "seq", "kind", "addr", "len", "old", "value", "value_from", "pid", "tid", "pc",
    "insn", "time", "frames", "kind_from",
)  # fmt: skip
OPTIONAL_FIELDS = ("mode", "comm", "more_frames", "changed_unseen")
MORE_FRAMES = "…more frames"
VALUE_GUESS_NOTE = "(kind guessed from the value change)"
CHANGED_UNSEEN_NOTE = "(changed unseen)"
BRANCH_NOTE = "(by a branch at an unknown pc: #0 is where it went)"

# The line as one %-format, in FIELDS' order (kind and kind_from are our own ASCII words).
_LINE = (
    '{"watch": %d, "seq": %d, "kind": "%s", "addr": "0x%x", "len": %d, "old": %s, '
    '"value": %s, "value_from": %s, "pid": %d, "tid": %d, "pc": %s, "insn": %s, '
    '"time": "%s.%06dZ", "frames": %s, "kind_from": "%s"%s}\n'
)


def frame_to_json(frame: Frame) -> dict:
    return {
        "level": frame.level,
        "pc": hex(frame.pc),
        "func": frame.func,
        "file": frame.file,
        "line": frame.line,
    }


def to_json(record: Record) -> dict:
    """The record as the JSON object of its line."""
    doc = {
        "watch": record.watch,
        "seq": record.seq,
        "kind": record.kind,
        "addr": hex(record.addr),
        "len": record.length,
        "old": record.old,
        "value": record.value,
        "value_from": record.value_from,
        "pid": record.pid,
        "tid": record.tid,
        "pc": None if record.pc is None else hex(record.pc),
        "insn": record.insn,
        "time": format_time(record.time),
        "frames": [frame_to_json(f) for f in record.frames],
        "kind_from": record.kind_from,
    }
    if record.mode is not None:
        doc["mode"] = record.mode
        doc["comm"] = record.comm
    if record.more_frames:
        doc["more_frames"] = True
    if record.changed_unseen:
        doc["changed_unseen"] = True
    doc.update(record.extra)
    return doc


_KNOWN_KEYS = frozenset(FIELDS + OPTIONAL_FIELDS)


def _frames_from_json(docs) -> tuple[Frame, ...]:
    return tuple(
        Frame(f["level"], int(f["pc"], 16), f.get("func"), f.get("file"), f.get("line"))
        for f in docs
    )


def _record(doc: dict, frames: tuple[Frame, ...], time: float, extra: dict) -> Record:
    get = doc.get
    return Record(
        seq=doc["seq"], kind=doc["kind"], addr=int(doc["addr"], 16), length=doc["len"],
        old=doc["old"], value=doc["value"], pid=doc["pid"], tid=doc["tid"],
        pc=None if doc["pc"] is None else int(doc["pc"], 16), insn=doc["insn"], time=time,
        frames=frames,
        kind_from=get("kind_from", "insn"), mode=get("mode"), comm=get("comm"), extra=extra,
        watch=get("watch", 1), value_from=get("value_from", "memory"),
        more_frames=get("more_frames", False), changed_unseen=get("changed_unseen", False),
    )  # fmt: skip


def record_from_json(doc: dict) -> Record | LostAccesses:
    """A Record from one parsed JSON line (logs written before a key existed get its default);
    a loss line gives its LostAccesses."""
    if "lost" in doc:
        return lost_from_json(doc)
    extra = {k: v for k, v in doc.items() if k not in _KNOWN_KEYS}
    return _record(doc, _frames_from_json(doc["frames"]), parse_time(doc["time"]), extra)


# ------------------------------------------------------------------ loss lines

LOST_FIELDS = ("lost", "watch", "time", "reason")
_LOST_START = '{"lost": '


def lost_to_json(mark: LostAccesses) -> dict:
    return {
        "lost": mark.count,
        "watch": mark.watch,
        "time": format_time(mark.time),
        "reason": mark.reason,
    }


def lost_line(mark: LostAccesses) -> str:
    """The loss line of the JSONL, in LOST_FIELDS' order."""
    return json.dumps(lost_to_json(mark)) + "\n"


def lost_from_json(doc: dict) -> LostAccesses:
    count = doc["lost"]
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ValueError(f"bad lost count {count!r}")
    return LostAccesses(doc.get("watch", 1), count, parse_time(doc["time"]), str(doc["reason"]))


def lost_text(mark: LostAccesses) -> str:
    """The one-line marker of the text logs and the stream."""
    whole, micros = split_seconds(mark.time)
    hms = _time.strftime(HMS, _time.gmtime(whole))
    how_many = "accesses" if mark.count is None else counted(mark.count, "access")
    unknown = ", how many is not known" if mark.count is None else ""
    return (
        f"[{mark.watch}] LOST  {how_many} not logged here ({mark.reason}{unknown})  "
        f"{hms}.{micros:06d}\n"
    )


class JsonLine:
    """Records as JSON lines equal to `json.dumps(to_json(record))` plus a newline."""

    def __init__(self, caches: CacheRegistry | None = None) -> None:
        caches = caches if caches is not None else CacheRegistry()
        self._frames = caches.cache("json frames")
        self._by_path = caches.identity_cache("json frames by call path")
        self._insns = caches.cache("json insns")
        self._stamp = SecondStamp(ISO_SECOND)

    def encode(self, record: Record, key: tuple | None = None) -> str:
        """One line; `key` is frames_key(record.frames) when the caller has it."""
        frames = self._by_path.recall(record.frames)
        if frames is None:
            frames = self._by_path.keep(record.frames, self._frames_text(record, key))
        insn = self._insns.get(record.insn)
        if insn is None:
            insn = self._insns.remember(record.insn, json.dumps(record.insn))
        whole, micros = split_seconds(record.time)
        old, value_from = record.old, record.value_from
        tail = ""
        if record.mode is not None or record.more_frames or record.changed_unseen or record.extra:
            tail = _json_tail(record)
        return _LINE % (
            record.watch, record.seq, record.kind, record.addr, record.length,
            "null" if old is None else old, "null" if record.value is None else record.value,
            "null" if value_from is None else f'"{value_from}"',
            record.pid, record.tid, "null" if record.pc is None else f'"0x{record.pc:x}"', insn,
            self._stamp.text(whole), micros,
            frames, record.kind_from, tail,
        )  # fmt: skip

    def _frames_text(self, record: Record, key: tuple | None) -> str:
        """The frames' JSON, the same for every call path with the same frames key."""
        if key is None:
            key = frames_key(record.frames)
        text = self._frames.get(key)
        if text is None:
            text = self._frames.remember(key, json.dumps([frame_to_json(f) for f in record.frames]))
        return text


def _json_tail(record: Record) -> str:
    dumps = json.dumps
    tail = ""
    if record.mode is not None:
        tail = f', "mode": {dumps(record.mode)}, "comm": {dumps(record.comm)}'
    if record.more_frames:
        tail += ', "more_frames": true'
    if record.changed_unseen:
        tail += ', "changed_unseen": true'
    if record.extra:
        tail += ", " + dumps(record.extra)[1:-1]
    return tail


# ------------------------------------------------------------------ reading lines back

_FRAMES_KEY = ', "frames": '
_FRAMES_END = '], "kind_from": '  # quotes inside JSON strings are escaped: no false match
_scan = json.JSONDecoder().scan_once  # the C scanner, without json.loads' wrappers


def _object(text: str) -> dict:
    """The JSON object `text` holds, with nothing after it; ValueError if not."""
    try:
        doc, end = _scan(text, 0)
    except StopIteration:  # the scanner's "no value here"
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or text[end:].strip():
        raise ValueError("not one JSON object")
    return doc


class LogDecoder:
    """JSON lines to Records, equal to `record_from_json(json.loads(line))`, but faster.

    Lines in FIELDS' order are split around "frames": the frames fragment, the same for every
    hit of a call path, is decoded once per distinct text, and the time stamp's seconds once
    per second.  Other layouts take the plain path.
    """

    def __init__(self) -> None:
        caches = CacheRegistry()
        self._frames = caches.cache("decoded frames")
        self._seconds = caches.cache("decoded seconds")

    def decode(self, line: str) -> Record | LostAccesses:
        """One line as a Record (a loss line as its LostAccesses); raises ValueError, KeyError
        or TypeError when malformed."""
        if line.startswith(_LOST_START):
            return lost_from_json(_object(line))
        head, found, rest = line.partition(_FRAMES_KEY)
        end = rest.find(_FRAMES_END) if found else -1
        if end < 0:
            return record_from_json(json.loads(line))
        doc = _object(head + rest[end + 1 :])
        text = rest[: end + 1]
        frames = self._frames.get(text)
        if frames is None:
            frames = self._frames.remember(text, _frames_from_json(json.loads(text)))
        extra = {}
        if len(doc) > len(FIELDS) - 1:  # FIELDS less "frames": only then can there be more
            extra = {k: v for k, v in doc.items() if k not in _KNOWN_KEYS}
        return _record(doc, frames, self._time(doc["time"]), extra)

    def _time(self, text: str) -> float:
        if len(text) != 27 or text[19] != "." or text[26] != "Z":
            return parse_time(text)
        whole = self._seconds.get(text[:19])
        if whole is None:
            whole = self._seconds.remember(text[:19], int(parse_time(text[:19])))
        return whole + int(text[20:26]) / 1_000_000  # as parse_time computes it


# ------------------------------------------------------------------ text blocks


def _encode(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in a name from the target
        return text.encode("utf-8", "replace")


class BlockRenderer:
    """Records as text blocks: a header, the backtrace in gdb's `bt` layout, the instruction.

    `colorizer`: a colour.Colorizer, or None for plain text.  The body (backtrace and
    instruction, coloured once) is cached per call path and instruction (and args when shown);
    the header's layout per kind, length and whether old is known.
    """

    def __init__(
        self, colorizer=None, show_args: bool = False, caches: CacheRegistry | None = None
    ) -> None:
        self.colorizer = colorizer
        self.show_args = show_args
        caches = caches if caches is not None else CacheRegistry()
        self._bodies = caches.cache("text bodies")
        self._by_path = caches.identity_cache("text bodies by call path")
        self._heads: dict[tuple, str] = {}  # a few layouts, independent of symbols
        self._hms = SecondStamp(HMS)

    def _head(self, kind: str, length: int, old_known: bool, value_known: bool) -> str:
        """The header's %-format: watch, seq, addr, [old,] [value,] tid, hh:mm:ss, micros, tail
        (an unknown value shows as "?")."""
        digits = f"%0{2 * length}x"
        colorizer = self.colorizer
        value = f"0x{digits}" if value_known else "?"
        if colorizer is not None:
            value = colorizer.bold(value)
        if kind == WRITE:
            before = "0x" + digits if old_known else "?"
            value = f"{before} {ARROW} {value}"
        label = kind.upper()
        padding = " " * (5 - len(label))
        if colorizer is not None:
            label = colorizer.kind(kind, label)
        head = f"[%d:%d] {label}{padding} 0x%x  {value}  tid %d  %s.%06d%s\n"
        self._heads[kind, length, old_known, value_known] = head
        return head

    def header(
        self, record: Record, hms: str | None = None, seconds: tuple[int, int] | None = None
    ) -> str:
        """`[1:17] WRITE 0x55d0c3a0b04b  0x00 → 0x2a  tid 4243  03:13:20.123456` plus notes;
        `seconds` is split_seconds(record.time) when the caller has it."""
        whole, micros = seconds or split_seconds(record.time)
        if hms is None:
            hms = _time.strftime(HMS, _time.gmtime(whole))
        old_known = record.kind == WRITE and record.old is not None
        value_known = record.value is not None
        layout = (record.kind, record.length, old_known, value_known)
        head = self._heads.get(layout) or self._head(*layout)
        tail = ""
        if (
            record.mode is not None
            or record.kind_from in ("value", "branch")
            or record.changed_unseen
        ):
            tail = _header_tail(record)
        if old_known and value_known:
            return head % (record.watch, record.seq, record.addr, record.old, record.value,
                           record.tid, hms, micros, tail)  # fmt: skip
        if old_known or value_known:
            known = record.old if old_known else record.value
            return head % (record.watch, record.seq, record.addr, known, record.tid, hms,
                           micros, tail)  # fmt: skip
        return head % (record.watch, record.seq, record.addr, record.tid, hms, micros, tail)

    def body(self, record: Record, key: tuple | None = None) -> bytes:
        """The backtrace and instruction lines as UTF-8; `key` is frames_key(record.frames)."""
        detail = (record.insn, record.more_frames)
        body = self._by_path.recall(record.frames, detail)
        if body is None:
            body = self._by_path.keep(record.frames, self._body(record, key), detail)
        return body

    def _body(self, record: Record, key: tuple | None) -> bytes:
        """body() for call paths with the same frames key, instruction and cut."""
        if key is None:
            key = frames_key(record.frames)
        if self.show_args:
            key = (key, record.insn, record.more_frames, tuple([f.args for f in record.frames]))
        else:
            key = (key, record.insn, record.more_frames)
        body = self._bodies.get(key)
        if body is not None:
            return body
        insn = format_insn(record.insn)
        more = f"#{len(record.frames):<2} {MORE_FRAMES}\n" if record.more_frames else ""
        if self.colorizer is None:
            text = format_backtrace(record.frames, self.show_args) + more
        else:
            painter = self.colorizer.painter
            text = painter.backtrace(record.frames, self.show_args) + more
            if insn:
                insn = "    " + painter.insn(insn[4:])
        return self._bodies.remember(key, _encode(text) + _encode(insn))

    def render_bytes(self, record: Record, key: tuple | None = None) -> bytes:
        """The whole block as UTF-8, ending with a newline."""
        whole, _ = split_seconds(record.time)
        return _encode(self.header(record, self._hms.text(whole))) + self.body(record, key)

    def render(self, record: Record) -> str:
        """The whole block as text, ending with a newline."""
        return self.render_bytes(record).decode()


def _header_tail(record: Record) -> str:
    """What follows the time in a header: whole-system fields, the value-guess note, and
    whether the bytes changed where no record shows it."""
    tail = ""
    if record.mode is not None:
        comm = f" ({record.comm})" if record.comm else ""
        tail += f"  {record.mode} pid {record.pid}{comm}"
    if record.kind_from == "value":
        tail += "  " + VALUE_GUESS_NOTE
    elif record.kind_from == "branch":
        tail += "  " + BRANCH_NOTE
    if record.changed_unseen:
        tail += "  " + CHANGED_UNSEEN_NOTE
    return tail


def format_header(record: Record) -> str:
    """The header line of a plain block (for reports)."""
    return BlockRenderer().header(record)
