"""Parse the bytes of a perf ring into plain records: samples, losses, throttling, side band.

Every event of a capture has PERF_SAMPLE_IDENTIFIER and sample_id_all, so a sample starts
with its event's id and every other record ends with it: the id says which event (RW or W)
and so how the rest is laid out, even when several events share one ring.
"""

from __future__ import annotations

import functools
import struct

from gdb_qznusnih.perf import abi, callchain

_HEADER = struct.Struct("<IHH")
_U64 = struct.Struct("<Q")
_SAMPLE_START = struct.Struct("<QQIIQ")  # identifier, ip, pid, tid, time
_SAMPLE_ID = struct.Struct("<IIQQ")  # the sample_id_all trailer: pid, tid, time, identifier
_REGISTERS = struct.Struct(f"<{len(abi.REGISTER_NAMES)}Q")
_REGISTER_INDEX = {name: index for index, name in enumerate(abi.REGISTER_NAMES)}
# REGS_USER then STACK_USER's size, when there are registers: ABI word, registers, size
_USER_STATE = struct.Struct(f"<{len(abi.REGISTER_NAMES) + 2}Q")
_TASK = struct.Struct("<IIIIQ")
_MMAP2_START = struct.Struct("<IIQQQ")
_MMAP2_FILE = struct.Struct("<IIQ")  # maj, min, ino
_MMAP2_END = struct.Struct("<II")
# What a sample may hold after its fixed start (the W event's samples have none of it).
_AFTER_START = abi.SAMPLE_CALLCHAIN | abi.SAMPLE_REGS_USER | abi.SAMPLE_STACK_USER


class Sample:
    """One access as the kernel sampled it in the trap (x86 traps after the instruction)."""

    __slots__ = (
        "kind", "ip", "pid", "tid", "time", "regs", "stack", "dyn_size", "callchain",
        "kernel_mode",
    )  # fmt: skip

    def __init__(self, kind: str, ip: int, pid: int, tid: int, time: int):
        self.kind = kind  # "rw" or "w": which event fired
        self.ip = ip
        self.pid = pid
        self.tid = tid
        self.time = time  # CLOCK_MONOTONIC nanoseconds
        self.regs: tuple[int, ...] | None = None  # user registers, in abi.REGISTER_NAMES order
        # the user stack from rsp up, dyn_size bytes of it: a view of the ring's bytes
        self.stack: bytes | memoryview = b""
        self.dyn_size = 0
        self.callchain: tuple[int, ...] = ()  # kernel frames, innermost first
        self.kernel_mode = False  # the access was made by the kernel

    def stack_top(self) -> int | None:
        """The word at the sampled stack pointer (the stack copy starts there), if copied."""
        stack = self.stack
        return int.from_bytes(stack[:8], "little") if len(stack) >= 8 else None

    def register(self, name: str) -> int:
        if self.regs is None:
            raise LookupError("this sample has no registers")
        return self.regs[_REGISTER_INDEX[name]]

    def registers(self) -> dict[str, int]:
        return dict(zip(abi.REGISTER_NAMES, self.regs or ()))


class Lost:
    """PERF_RECORD_LOST: `count` samples of event `kind` did not fit in the ring."""

    __slots__ = ("kind", "count", "time")

    def __init__(self, kind: str, count: int, time: int):
        self.kind, self.count, self.time = kind, count, time


class Throttle:
    """The kernel stopped (or restarted) an event for going over perf_event_max_sample_rate:
    while stopped, the hardware does not trap, so accesses go uncounted."""

    __slots__ = ("kind", "time", "stopped")

    def __init__(self, kind: str, time: int, stopped: bool):
        self.kind, self.time, self.stopped = kind, time, stopped


class Task:
    """PERF_RECORD_FORK or _EXIT of a thread or process."""

    __slots__ = ("what", "pid", "ppid", "tid", "ptid", "time")

    def __init__(self, what: str, pid: int, ppid: int, tid: int, ptid: int, time: int):
        self.what = what  # "fork" or "exit"
        self.pid, self.ppid, self.tid, self.ptid, self.time = pid, ppid, tid, ptid, time


class Comm:
    """PERF_RECORD_COMM: a thread's name changed, by exec when `exec` is true."""

    __slots__ = ("pid", "tid", "comm", "exec", "time")

    def __init__(self, pid: int, tid: int, comm: str, exec: bool, time: int):
        self.pid, self.tid, self.comm, self.exec, self.time = pid, tid, comm, exec, time


class Mmap2:
    """PERF_RECORD_MMAP2: an executable mapping (a library loaded, a program exec'd)."""

    __slots__ = (
        "pid", "tid", "start", "length", "pgoff", "prot", "flags", "filename", "time", "device",
        "inode",
    )  # fmt: skip

    def __init__(self, pid, tid, start, length, pgoff, prot, flags, filename, time, file_id=None):
        self.pid, self.tid, self.start, self.length, self.pgoff = pid, tid, start, length, pgoff
        self.prot, self.flags, self.filename, self.time = prot, flags, filename, time
        # ((major, minor), inode) of the mapped file; None when the record has a build id
        self.device, self.inode = file_id or (None, None)


Record = Sample | Lost | Throttle | Task | Comm | Mmap2


class RecordParser:
    """Parses ring bytes, given each event id's kind ("rw"/"w") and sample_type."""

    def __init__(self, layouts: dict[int, tuple[str, int]]):
        self._layouts = layouts
        self.unknown = 0  # records of a type or an event this capture did not ask for

    def parse(self, chunk: bytes) -> list[Record]:
        records: list[Record] = []
        append, header, sample = records.append, _HEADER.unpack_from, self._sample
        # The samples' stacks are views of the chunk, not copies: of an immutable one.
        view = memoryview(chunk if type(chunk) is bytes else bytes(chunk))
        offset, end = 0, len(chunk)
        while offset + _HEADER.size <= end:
            kind, misc, size = header(chunk, offset)
            if size < _HEADER.size or offset + size > end:
                raise ValueError(f"corrupt perf record at {offset}: size {size}")
            if kind == abi.RECORD_SAMPLE:  # nearly every record: no detour
                record = sample(chunk, offset + _HEADER.size, misc, view)
            else:
                record = self._parse_one(chunk, offset, kind, misc, size, view)
            if record is None:
                self.unknown += 1
            else:
                append(record)
            offset += size
        return records

    def _parse_one(self, chunk: bytes, offset: int, kind: int, misc: int, size: int, view):
        if kind == abi.RECORD_SAMPLE:
            return self._sample(chunk, offset + _HEADER.size, misc, view)
        _pid, _tid, time, identifier = _SAMPLE_ID.unpack_from(
            chunk, offset + size - _SAMPLE_ID.size
        )
        layout = self._layouts.get(identifier)
        body = offset + _HEADER.size
        if layout is None:
            return None
        if kind == abi.RECORD_LOST:
            _id, count = struct.unpack_from("<QQ", chunk, body)
            return Lost(layout[0], count, time)
        if kind in (abi.RECORD_THROTTLE, abi.RECORD_UNTHROTTLE):
            (when,) = _U64.unpack_from(chunk, body)
            return Throttle(layout[0], when, kind == abi.RECORD_THROTTLE)
        if kind in (abi.RECORD_FORK, abi.RECORD_EXIT):
            pid, ppid, tid, ptid, when = _TASK.unpack_from(chunk, body)
            return Task("fork" if kind == abi.RECORD_FORK else "exit", pid, ppid, tid, ptid, when)
        if kind == abi.RECORD_COMM:
            pid, tid = struct.unpack_from("<II", chunk, body)
            name = _c_string(chunk, body + 8, offset + size - _SAMPLE_ID.size)
            return Comm(pid, tid, name, bool(misc & abi.MISC_COMM_EXEC), time)
        if kind == abi.RECORD_MMAP2:
            return _mmap2(chunk, body, offset + size - _SAMPLE_ID.size, time, misc)
        return None

    def _sample(self, chunk: bytes, position: int, misc: int, view) -> Sample | None:
        identifier, ip, pid, tid, time = _SAMPLE_START.unpack_from(chunk, position)
        layout = self._layouts.get(identifier)
        if layout is None:
            return None
        kind, sample_type = layout
        sample = Sample(kind, ip, pid, tid, time)
        if misc & abi.MISC_CPUMODE_MASK == abi.MISC_KERNEL:
            sample.kernel_mode = True
        if sample_type & _AFTER_START:
            self._rest(sample, sample_type, chunk, position + _SAMPLE_START.size, view)
        return sample

    @staticmethod
    def _rest(sample: Sample, sample_type: int, chunk: bytes, position: int, view) -> None:
        """The kernel frames, registers and stack after the fixed start of a sample."""
        if sample_type & abi.SAMPLE_CALLCHAIN:
            (count,) = _U64.unpack_from(chunk, position)
            if count:  # a user-mode access has no kernel frames, and user ones are excluded
                entries = _words(count).unpack_from(chunk, position + 8)
                sample.callchain = callchain.kernel_pcs(entries)
            position += 8 + 8 * count
        if sample_type & abi.SAMPLE_REGS_USER:
            if sample_type & abi.SAMPLE_STACK_USER and len(chunk) >= position + _USER_STATE.size:
                # the register ABI, the registers, the stack copy's size: one unpack
                words = _USER_STATE.unpack_from(chunk, position)
                if words[0]:
                    sample.regs = words[1:-1]
                    _stack(sample, view, position + _USER_STATE.size, words[-1])
                    return
            (register_abi,) = _U64.unpack_from(chunk, position)
            position += 8
            if register_abi:  # 0: a kernel thread, no user registers
                sample.regs = _REGISTERS.unpack_from(chunk, position)
                position += _REGISTERS.size
        if sample_type & abi.SAMPLE_STACK_USER:
            (reserved,) = _U64.unpack_from(chunk, position)
            _stack(sample, view, position + 8, reserved)


def _stack(sample: Sample, view: memoryview, position: int, reserved: int) -> None:
    """The user stack copy at `position`, `reserved` bytes long, then the size copied."""
    if reserved:
        (dyn_size,) = _U64.unpack_from(view, position + reserved)
        sample.stack = view[position : position + dyn_size]
        sample.dyn_size = dyn_size


@functools.lru_cache(maxsize=64)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}Q")


def _c_string(chunk: bytes, start: int, end: int) -> str:
    raw = chunk[start:end]
    return raw[: raw.find(b"\0") if b"\0" in raw else len(raw)].decode(errors="replace")


def _mmap2(chunk: bytes, body: int, end: int, time: int, misc: int) -> Mmap2:
    pid, tid, start, length, pgoff = _MMAP2_START.unpack_from(chunk, body)
    # then maj, min, ino, ino_generation (or a build id): 24 bytes either way
    file_id = None
    if not misc & abi.MISC_MMAP_BUILD_ID:
        major, minor, inode = _MMAP2_FILE.unpack_from(chunk, body + _MMAP2_START.size)
        file_id = ((major, minor), inode)
    position = body + _MMAP2_START.size + 24
    prot, flags = _MMAP2_END.unpack_from(chunk, position)
    filename = _c_string(chunk, position + _MMAP2_END.size, end)
    return Mmap2(pid, tid, start, length, pgoff, prot, flags, filename, time, file_id)
