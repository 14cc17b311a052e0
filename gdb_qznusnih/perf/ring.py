"""One mmap'd perf ring buffer: copy the bytes between data_tail and data_head out, free them.

The kernel writes whole records at data_head; the reader copies from data_tail to data_head
and then stores data_tail, which hands the space back.  The order matters: head is read
before the data (acquire), tail is written after the copy (release).  On x86-64 (TSO) loads
are not reordered with loads nor stores with older loads, and each interpreter step between
them is an opaque C call, so plain 8-byte accesses give that order; ctypes makes them single
8-byte loads and stores (struct's "<Q" assembles bytes one by one and could tear).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from collections.abc import Callable
from typing import TypeVar

from gdb_qznusnih.perf import abi
from gdb_qznusnih.perf.events import PerfError

T = TypeVar("T")


class Ring:
    """The ring of one perf event fd (others may be redirected into it)."""

    def __init__(self, fd: int, data_pages: int):
        if data_pages < 1 or data_pages & (data_pages - 1):
            raise PerfError(f"ring pages must be a power of 2, not {data_pages}")
        length = (data_pages + 1) * mmap.PAGESIZE
        try:
            self._map = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as error:
            raise PerfError(_explain_mmap_error(error.errno, length)) from None
        self._head = ctypes.c_uint64.from_buffer(self._map, abi.MMAP_DATA_HEAD)
        self._tail = ctypes.c_uint64.from_buffer(self._map, abi.MMAP_DATA_TAIL)
        offset = ctypes.c_uint64.from_buffer(self._map, abi.MMAP_DATA_OFFSET).value
        size = ctypes.c_uint64.from_buffer(self._map, abi.MMAP_DATA_SIZE).value
        self.size = size or data_pages * mmap.PAGESIZE
        self._data = memoryview(self._map)[offset or mmap.PAGESIZE :][: self.size]

    def read(self, keep: Callable[[list[memoryview], int], T] = None) -> bytes | T:
        """Every byte the kernel has written since the last read (whole records): b"" if
        none, else copied out (bytes), or what `keep(spans, length)` makes of the one or two
        spans of the ring that hold them (it must copy them: they are freed on return)."""
        head = self._head.value
        tail = self._tail.value
        if head == tail:
            return b""
        spans = ring_spans(self._data, tail, head)
        chunk = keep(spans, head - tail) if keep is not None else b"".join(spans)
        self._tail.value = head
        return chunk

    def close(self) -> None:
        del self._head, self._tail
        self._data.release()
        self._map.close()


def ring_spans(data: memoryview, tail: int, head: int) -> list[memoryview]:
    """The one or two spans from position `tail` to `head` of a ring whose data area is
    `data`; positions only grow, so they wrap modulo its size."""
    size = len(data)
    start = tail % size
    length = head - tail
    if start + length <= size:
        return [data[start : start + length]]
    return [data[start:], data[: start + length - size]]


def _explain_mmap_error(code: int, length: int) -> str:
    kib = length // 1024
    if code == errno.EPERM:
        return (
            f"a {kib} KiB perf ring is over this user's locked-memory limit "
            "(kernel.perf_event_mlock_kb): use fewer ring pages, or run as root"
        )
    return f"cannot map a {kib} KiB perf ring: {errno.errorcode.get(code, code)}"
