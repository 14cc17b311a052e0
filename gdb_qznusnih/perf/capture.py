"""A capture: the events of one watch, their rings, a drain thread, hits and loss accounting.

The drain thread only copies raw bytes out of the rings into a queue: copying is cheap and
frees the ring at once.  Parsing and pairing happen in `read()`, on the consumer's thread,
so a slow consumer delays records instead of losing them (on 2 cores, a consumer that
processed while draining lost 50-80 % with three threads hammering the byte).  Past
`max_queued_bytes` in memory the chunks wait in a spill file (perf/spill.py) instead, so the
launcher's memory stays flat however long the consumer is behind.

The events' own counters (read(2) of each fd) are the truth: `accounting()` compares what
the hardware reported with what the rings delivered.  Nothing here stops, ptraces or writes
to the target; closing the capture (or the target dying) makes the kernel drop the events.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import queue
import select
import struct
import threading
import time
from dataclasses import dataclass, field

from gdb_qznusnih.perf import abi
from gdb_qznusnih.perf.events import (
    DEFAULT_WAKEUP_EVENTS,
    WRITE_EVENT_ONLY,
    Event,
    EventConfig,
    PerfError,
    close_events,
    open_watch,
)
from gdb_qznusnih.perf.hits import PAIR_WINDOW_NS, Hit, HitPairer, WriteHits
from gdb_qznusnih.perf.records import Lost, Record, RecordParser, Sample, Throttle
from gdb_qznusnih.perf.ring import Ring
from gdb_qznusnih.perf.spill import Spilled, SpillFile, spill_budget, spill_dir

# 1024 pages = 4 MiB a CPU: about 950 samples with a 4 KiB stack, 13 ms at 70,000 hits/s
# (a watch run as another user; root's are bigger: launcher/perf_watch.ROOT_RING_PAGES).
DEFAULT_RING_PAGES = 1024
DEFAULT_POLL_MS = 20
# Records a read() returns at most (give or take one sweep's): small enough that the raw
# samples behind them (about 4.4 KiB each with the default stack) stay in the caches.
READ_BATCH = 256
_COUNTER = struct.Struct("<QQQ")  # value, id, lost (read_format ID | LOST)
_END = object()
# What the drain thread may keep in memory, copied out and not parsed yet; past it the chunks
# go to the spill file.  Only once that is full too (or the disk is) does the thread leave the
# samples in the rings, after the sweep under way (it copies every ring: one sweep's bytes
# past this at most): when they fill, the kernel counts what it drops (the loss accounting
# says so, exit 3).
MAX_QUEUED_BYTES = 64 << 20
BACKPRESSURE_WAIT_S = 0.002
# A sample's bytes besides its stack copy: header, id, ip, tid, time, registers, 2 sizes
# (736 B with a 512 B stack, as measured).
_SAMPLE_OVERHEAD = 224
MALLOC_MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
# The drain thread competes for the CPUs with the target's own threads, which trap at full
# speed; a higher weight lets it empty the rings before they fill (root only).
DRAIN_NICE = -10


@dataclass(frozen=True)
class CaptureConfig:
    events: EventConfig = field(default_factory=EventConfig)
    ring_pages: int = DEFAULT_RING_PAGES  # data pages of each ring, a power of 2
    poll_ms: int = DEFAULT_POLL_MS  # the longest a trickle of samples waits in a ring
    max_queued_bytes: int = MAX_QUEUED_BYTES  # in memory, copied out, not yet parsed
    # What may wait in the spill file: None a quarter of its file system's free space (at
    # most spill.MAX_SPILL_BYTES), 0 never spill.
    max_spill_bytes: int | None = None
    spill_dir: str | None = None  # None: $TMPDIR, else /var/tmp


@dataclass(frozen=True)
class Accounting:
    """Accesses the hardware reported against samples delivered, per event kind (the kinds
    the watch opened: rw and w, or w alone).

    Exact once the capture is stopped and read to the end.  While an event is throttled
    (`throttled` > 0) the hardware does not trap at all, so those accesses are in no count.
    """

    hardware: dict[str, int]  # each event's own counter, summed over its events
    delivered: dict[str, int]  # samples parsed from the rings
    # the kernel's count of records that did not fit: samples, and side-band records (of the
    # sampling kind)
    kernel_lost: dict[str, int]
    # the sum of PERF_RECORD_LOST counts seen: counted per ring, not per event, and the last
    # ones are never written if a ring is still full at the end
    lost_records: int
    throttled: int
    hits: int
    hits_with_write: int
    writes_without_rw_sample: int
    spilled: int = 0  # the most bytes that waited in the spill file at once
    spill_dir: str = ""
    sampling_kind: str = "rw"  # the event each record's sample comes from (EventConfig)

    def lost(self, kind: str | None = None) -> int:
        """Accesses of `kind`'s events not delivered; None: of the sampling kind, the records'."""
        kind = kind or self.sampling_kind
        return self.hardware[kind] - self.delivered[kind]

    @property
    def complete(self) -> bool:
        return self.throttled == 0 and all(self.lost(kind) == 0 for kind in self.hardware)


class Capture:
    """Watch `length` bytes at `address` in process `pid`; `read()` returns hits and records.

    Use as a context manager, or call start() then close().
    """

    def __init__(self, pid: int, address: int, length: int = 1, config: CaptureConfig = None):
        self.pid, self.address, self.length = pid, address, length
        self.config = config or CaptureConfig()
        self._events: list[Event] = []
        self._rings: list[Ring] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # Bytes queued in memory and bytes parsed of them, each counted by one thread only.
        self._copied_bytes = 0
        self._parsed_bytes = 0
        directory = self.config.spill_dir or spill_dir()
        budget = self.config.max_spill_bytes
        self.spill = SpillFile(directory, spill_budget(directory) if budget is None else budget)
        self._thread: threading.Thread | None = None
        self._drain_error: BaseException | None = None
        self._wake_read, self._wake_write = -1, -1
        self._stopping = threading.Event()
        self.drained = False  # read() has returned everything: stopped, or the target gone
        self._delivered = dict.fromkeys(self.config.events.kinds, 0)
        self._lost_records = 0
        self._throttled = 0
        self._hits = self._hits_with_write = 0
        self._final_counters: tuple[dict[str, int], dict[str, int]] | None = None
        # Every hit taken before this (CLOCK_MONOTONIC ns) has been returned by read(), from
        # every ring: rings are per CPU, so a consumer that needs time order across them
        # (old values) holds later hits back until this passes them.
        self.settled_ns = 0

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def events(self) -> list[Event]:
        return list(self._events)

    def start(self) -> None:
        """Open the events and rings, start draining, then arm; everything closed on error."""
        try:
            self._events = open_watch(self.pid, self.address, self.length, self.config.events)
            self._rings = self._attach_rings()
            layouts = {event.id: (event.kind, event.sample_type) for event in self._events}
            self._parser = RecordParser(layouts)
            hits = WriteHits if self.config.events.kinds == WRITE_EVENT_ONLY else HitPairer
            self._pairers = [hits() for _ in self._rings]
            self._wake_read, self._wake_write = os.pipe()
            self._thread = threading.Thread(target=self._drain, name="perf-drain", daemon=True)
            self._thread.start()
            for event in self._events:
                abi.ioctl(event.fd, abi.IOC_ENABLE, 0)
        except BaseException:
            self.close()
            raise

    def _attach_rings(self) -> list[Ring]:
        """One ring per CPU (inherit) or per thread; the other events write into it."""
        leaders: dict[tuple[int, int], Event] = {}
        rings: list[Ring] = []
        try:
            for event in self._events:
                leader = leaders.get(event.ring_key)
                if leader is None:
                    leaders[event.ring_key] = event
                    rings.append(Ring(event.fd, self.config.ring_pages))
                else:
                    abi.ioctl(event.fd, abi.IOC_SET_OUTPUT, leader.fd)
        except BaseException:
            for ring in rings:
                ring.close()
            raise
        return rings

    # -- the drain thread: copy only ------------------------------------------------------

    def _drain(self) -> None:
        """Copy until stopped or every thread is gone; the end is queued whatever happens,
        so a failure here ends the consumer's reads (with the error) instead of hanging."""
        try:
            self._copy_until_the_end()
        except BaseException as error:
            self._drain_error = error
        finally:
            self._queue.put(_END)

    def _copy_until_the_end(self) -> None:
        raise_thread_priority()
        poller = select.poll()
        watched = {event.fd for event in self._events}
        for fd in watched:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        settle_until = None
        while watched and not self._stopping.is_set():
            if self._full():
                time.sleep(BACKPRESSURE_WAIT_S)  # the rings keep the samples meanwhile
                continue
            for fd, flags in poller.poll(self.config.poll_ms):
                if fd != self._wake_read and flags & (select.POLLHUP | select.POLLERR):
                    poller.unregister(fd)  # its thread is gone; the kernel keeps its counts
                    watched.discard(fd)
            settle_until = self._sweep(settle_until)
        self._sweep(0)

    def _sweep(self, settle_until: int | None) -> int | None:
        """Copy every ring out.  Empty sweeps are queued too until one comes PAIR_WINDOW_NS
        after the last data: their times let the consumer settle the samples still waiting
        for a pair, so the last hits of a burst are not held until the next one.  Returns
        the time until which to go on queueing empty sweeps, None once settled."""
        read_ns = time.monotonic_ns()  # before the heads are read
        chunks = [
            (index, chunk)
            for index, ring in enumerate(self._rings)
            if (chunk := ring.read(self._keep))
        ]
        if chunks:
            settle_until = read_ns + PAIR_WINDOW_NS
        if settle_until is not None:
            self._queue.put((read_ns, chunks))
            if not chunks and read_ns > settle_until:
                settle_until = None
        return settle_until

    def _keep(self, spans: list[memoryview], length: int) -> bytes | Spilled:
        """A ring's new bytes copied into memory while it has room, else written straight
        from the ring to the spill file (one copy fewer: the drain thread's time is what
        keeps the rings from overflowing); where they went."""
        over = self.queued_bytes + length > self.config.max_queued_bytes
        if over and self.spill.has_room(length):
            try:
                return self.spill.put(spans, length)
            except OSError:
                self.spill.give_up()  # a full disk: memory and then the rings, as without
        self._copied_bytes += length
        return b"".join(spans)

    def _full(self) -> bool:
        """Memory's share taken and no room to spill even a page."""
        return self.queued_bytes >= self.config.max_queued_bytes and not self.spill.has_room(
            mmap.PAGESIZE
        )

    @property
    def failure(self) -> str | None:
        """Why the drain thread stopped before its end, one line; None if it did not."""
        if self._drain_error is None:
            return None
        return f"the perf rings could not be read on: {self._drain_error!r}"

    @property
    def queued_bytes(self) -> int:
        """Copied out of the rings into memory and not parsed yet."""
        return self._copied_bytes - self._parsed_bytes

    # -- the consumer side ----------------------------------------------------------------

    def read(self, timeout: float | None = None) -> list[Hit | Record]:
        """Hits and other records (Lost, Throttle, Task, Comm, Mmap2) in each ring's order,
        waiting up to `timeout` seconds for the first; [] once drained.  Returns once about
        READ_BATCH records are out, even if more are queued: the caller logs them and frees
        their memory before the next read, so memory stays flat however far behind it is."""
        out: list[Hit | Record] = []
        if self.drained:
            return out
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            self._process(item, out)
            if self.drained or len(out) >= READ_BATCH:
                return out
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out

    def read_all(self) -> list[Hit | Record]:
        """Stop, then everything left."""
        self.stop()
        out: list[Hit | Record] = []
        while not self.drained:
            out.extend(self.read())
        return out

    def _process(self, item, out: list) -> None:
        if item is _END:
            for pairer in self._pairers:
                self._count_hits(pairer.flush(), out)
            self.drained = True
            return
        read_ns, chunks = item
        delivered = self._delivered
        for index, chunk in chunks:
            if type(chunk) is Spilled:
                chunk = self._take_spilled(chunk)
            else:
                self._parsed_bytes += len(chunk)
            pair = self._pairers[index].add
            for record in self._parser.parse(chunk):
                if type(record) is Sample:
                    delivered[record.kind] += 1
                    hits = pair(record)
                    if hits:
                        self._count_hits(hits, out)
                    continue
                if isinstance(record, Lost):
                    self._lost_records += record.count
                elif isinstance(record, Throttle) and record.stopped:
                    self._throttled += 1
                out.append(record)
        settled = read_ns - PAIR_WINDOW_NS
        for pairer in self._pairers:  # a partner would have been written before read_ns
            self._count_hits(pairer.flush_older_than(settled), out)
        self.settled_ns = max(self.settled_ns, settled)

    def _take_spilled(self, spilled: Spilled) -> bytes:
        try:
            return self.spill.take(spilled)
        except OSError as error:  # the watch ends, in one line, with what was logged
            raise PerfError(f"cannot read the spill file back: {error.strerror}") from None

    def _count_hits(self, hits: list[Hit], out: list) -> None:
        for hit in hits:
            self._hits += 1
            self._hits_with_write += hit.hardware_saw_write
        out.extend(hits)

    # -- counters and the end -------------------------------------------------------------

    def counters(self) -> tuple[dict[str, int], dict[str, int]]:
        """(traps counted, samples the kernel could not write), per kind, from read(2);
        kept from the moment of close()."""
        if self._final_counters is not None:
            return self._final_counters
        kinds = self.config.events.kinds
        counts, lost = dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0)
        for event in self._events:
            value, _id, not_written = _COUNTER.unpack(os.read(event.fd, _COUNTER.size))
            counts[event.kind] += value
            lost[event.kind] += not_written
        return counts, lost

    def accounting(self) -> Accounting:
        counts, kernel_lost = self.counters()
        return Accounting(
            hardware=counts,
            delivered=dict(self._delivered),
            kernel_lost=kernel_lost,
            lost_records=self._lost_records,
            throttled=self._throttled,
            hits=self._hits,
            hits_with_write=self._hits_with_write,
            writes_without_rw_sample=sum(p.writes_without_rw_sample for p in self._pairers),
            spilled=self.spill.peak,
            spill_dir=self.spill.directory,
            sampling_kind=self.config.events.sampling_kind,
        )

    def stop(self) -> None:
        """Disarm (the target runs on unwatched) and let the drain thread finish."""
        for event in self._events:
            abi.ioctl(event.fd, abi.IOC_DISABLE, 0)
        self._stopping.set()
        if self._thread is not None:
            os.write(self._wake_write, b"x")
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop and release everything; the kernel drops the events with their fds."""
        if self._thread is not None:
            self.stop()
        for ring in self._rings:
            ring.close()
        self._rings = []
        self.spill.close()
        if self._events:
            self._final_counters = self.counters()
        close_events(self._events)
        self._events = []
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1


def raise_thread_priority() -> int:
    """Give the calling thread DRAIN_NICE (root only); its nice value before, to restore."""
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(before, DRAIN_NICE))
    except PermissionError:
        pass  # not root: the default weight; bigger rings make up for it
    return before


def return_large_blocks_to_the_system() -> None:
    """Have malloc map every block over MALLOC_MMAP_THRESHOLD on its own, so it goes back to
    the system when freed.  glibc otherwise raises that threshold to the largest block freed
    so far (up to 32 MiB): the drain thread's chunks (megabytes) then come from the heap, and
    the small objects made between them pin it: RSS grew 27 -> 83 MB over 1,000,000 hits."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc: its malloc has its own policy


def wakeup_events_for(ring_pages: int, stack_bytes: int) -> int:
    """Samples between two wake-ups of the drain thread: an eighth of what a ring holds.
    Each wake-up costs the target a wake in its trap and the consumer a GIL hand-over;
    a ring an eighth full is emptied long before it overflows (and a trickle of samples
    is swept every poll_ms anyway)."""
    ring_samples = ring_pages * mmap.PAGESIZE // (stack_bytes + _SAMPLE_OVERHEAD)
    return max(DEFAULT_WAKEUP_EVENTS, ring_samples // 8)
