"""Open the breakpoint events of one watch on every thread of a process.

A watch that logs reads (rw, r) is a read/write (RW) event and a write-only (W) event on the
same bytes: the hardware fires both on one trap when the instruction wrote, only RW when it
read.  The RW event samples what a record needs (IP, registers, the user stack, kernel
frames when kernel mode is watched); the W event only says "a write happened here, now, on
this thread".  A write-only watch (--access w) is the W event alone, sampling all of that:
one debug register, not two.

Two ways to cover threads:
- "inherit" (the default): on every existing thread, one event per CPU with inherit=1, so
  threads they create later get the events too (an inherited event needs a per-CPU ring: the
  kernel refuses to mmap one with cpu=-1);
- "per-thread": one event per existing thread (cpu=-1); threads made later are not watched.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from gdb_qznusnih.launcher import procfs
from gdb_qznusnih.perf import abi

USER_SPACE_END = 1 << 47  # x86-64 with 4-level paging; the kernel refuses higher user addresses
# 4 KiB holds 16 frames of ordinary code (a main with 768 B of locals stopped a 512 B copy).
# On the hot loop (bench/bench_perf_capture.py, a loaded 2-core VM) 512 B to 4 KiB rated
# alike within the noise, 29,000-48,000 hits/s; 8 KiB was lower, 24,000-37,000.
DEFAULT_STACK_BYTES = 4096
MAX_STACK_BYTES = 60 * 1024  # a sample's size is a u16: the kernel refuses 64 KiB
# At wakeup_events=1 the rate halves; 16 or more gives the full rate.
DEFAULT_WAKEUP_EVENTS = 16
THREAD_STRATEGIES = ("inherit", "per-thread")
# The events of a watch, the first sampling what records need (see breakpoint_attr).
READ_AND_WRITE_EVENTS = ("rw", "w")
WRITE_EVENT_ONLY = ("w",)
READ_FORMAT = abi.FORMAT_ID | abi.FORMAT_LOST
W_SAMPLE_TYPE = abi.SAMPLE_IDENTIFIER | abi.SAMPLE_IP | abi.SAMPLE_TID | abi.SAMPLE_TIME
RW_SAMPLE_TYPE = W_SAMPLE_TYPE | abi.SAMPLE_REGS_USER | abi.SAMPLE_STACK_USER
# Side-band records (mmap2, comm, fork/exit) come once, from the sampling event only.
SIDE_BAND_FLAGS = (
    abi.FLAG_MMAP | abi.FLAG_MMAP2 | abi.FLAG_COMM | abi.FLAG_COMM_EXEC | abi.FLAG_TASK
)


class PerfError(Exception):
    """perf events cannot watch this; the message is one line that says what to do."""


class _ThreadGone(Exception):
    """A thread other than the main one exited between listing and opening: skip it."""


@dataclass(frozen=True)
class EventConfig:
    """How the events of one watch are opened."""

    stack_bytes: int = DEFAULT_STACK_BYTES
    exclude_kernel: bool = True
    wakeup_events: int = DEFAULT_WAKEUP_EVENTS
    threads: str = "inherit"
    kinds: tuple[str, ...] = READ_AND_WRITE_EVENTS  # or WRITE_EVENT_ONLY (watch_kinds)

    @property
    def sampling_kind(self) -> str:
        """The event whose samples carry the registers, the stack and the side-band records."""
        return self.kinds[0]

    def check(self) -> None:
        if self.stack_bytes % 8 or not 0 <= self.stack_bytes <= MAX_STACK_BYTES:
            raise PerfError(
                f"stack bytes must be a multiple of 8 from 0 to {MAX_STACK_BYTES}, "
                f"not {self.stack_bytes}"
            )
        if self.wakeup_events < 1:
            raise PerfError(f"wakeup events must be 1 or more, not {self.wakeup_events}")
        if self.threads not in THREAD_STRATEGIES:
            raise PerfError(
                f"threads must be one of {', '.join(THREAD_STRATEGIES)}, not {self.threads!r}"
            )
        if self.kinds not in (READ_AND_WRITE_EVENTS, WRITE_EVENT_ONLY):
            raise PerfError(f"events must be rw and w, or w alone, not {self.kinds!r}")


def watch_kinds(access: str) -> tuple[str, ...]:
    """The events a watch logging `access` ("rw", "r" or "w") needs, one debug register each:
    every write traps the W event, so writes alone need no RW event; a read traps RW only."""
    return WRITE_EVENT_ONLY if access == "w" else READ_AND_WRITE_EVENTS


@dataclass(frozen=True)
class Event:
    """One open breakpoint event."""

    fd: int
    kind: str  # "rw" or "w"
    id: int  # the PERF_SAMPLE_IDENTIFIER of its samples, and of its inherited copies
    tid: int  # the thread it was opened on
    cpu: int  # -1: wherever the thread runs
    sample_type: int  # how its samples are laid out

    @property
    def ring_key(self) -> tuple[int, int]:
        """Events with the same key share one ring: the kernel allows that per CPU, or for
        events of one thread."""
        return (self.cpu, -1) if self.cpu >= 0 else (-1, self.tid)


def check_watch(address: int, length: int) -> None:
    if length not in abi.BREAKPOINT_LENGTHS:
        raise PerfError(f"watch length must be 1, 2, 4 or 8 bytes, not {length}")
    if address < 0 or address >= 1 << 64:
        raise PerfError(f"{address:#x} is not an address: give a 64-bit address")
    if address % length:
        raise PerfError(
            f"{address:#x} is not aligned to {length} bytes: watch an address that is a "
            f"multiple of {length}, or a shorter length"
        )
    # Refused with kernel mode watched too: the watch is of the process's own memory, and
    # a breakpoint on kernel data would trap on every kernel path that touches it.
    if address >= USER_SPACE_END:
        raise PerfError(
            f"{address:#x} is a kernel address: watch a user-space address "
            f"(below {USER_SPACE_END:#x})"
        )


def breakpoint_attr(kind: str, address: int, length: int, config: EventConfig) -> abi.EventAttr:
    """The perf_event_attr of the RW or the W event of a watch; the sampling kind's samples
    carry what a record needs, the other's only say that it fired."""
    attr = abi.EventAttr()
    attr.type = abi.PERF_TYPE_BREAKPOINT
    attr.bp_type = abi.HW_BREAKPOINT_RW if kind == "rw" else abi.HW_BREAKPOINT_W
    attr.bp_addr = address
    attr.bp_len = length
    attr.sample_period = 1
    attr.read_format = READ_FORMAT
    attr.wakeup_events = config.wakeup_events
    attr.clockid = abi.CLOCK_MONOTONIC  # sample times compare with the target's own clock
    flags = abi.FLAG_DISABLED | abi.FLAG_EXCLUDE_HV | abi.FLAG_SAMPLE_ID_ALL
    flags |= abi.FLAG_USE_CLOCKID
    if config.exclude_kernel:
        flags |= abi.FLAG_EXCLUDE_KERNEL
    if config.threads == "inherit":
        flags |= abi.FLAG_INHERIT | abi.FLAG_INHERIT_THREAD  # threads only, not fork children
    attr.sample_type = W_SAMPLE_TYPE
    if kind == config.sampling_kind:
        flags |= SIDE_BAND_FLAGS
        attr.sample_type = RW_SAMPLE_TYPE
        attr.sample_regs_user = abi.REGISTER_MASK
        attr.sample_stack_user = config.stack_bytes
        if not config.exclude_kernel:
            # kernel frames from the kernel; user frames come from the sampled stack
            attr.sample_type |= abi.SAMPLE_CALLCHAIN
            flags |= abi.FLAG_EXCLUDE_CALLCHAIN_USER
        if not config.stack_bytes:
            attr.sample_type &= ~abi.SAMPLE_STACK_USER
    attr.flags = flags
    return attr


def thread_ids(pid: int) -> list[int]:
    tids = procfs.thread_ids(pid)
    if not tids:
        raise PerfError(f"no process {pid}: check the PID (it may have exited)")
    return tids


def online_cpus(text: str | None = None) -> list[int]:
    """CPU numbers from /sys/devices/system/cpu/online ("0-3,6")."""
    if text is None:
        with open("/sys/devices/system/cpu/online") as online:
            text = online.read()
    cpus: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def open_watch(pid: int, address: int, length: int, config: EventConfig) -> list[Event]:
    """The events of one watch (config.kinds) on every thread of `pid`, disabled; all closed
    on error."""
    config.check()
    check_watch(address, length)
    cpus = online_cpus() if config.threads == "inherit" else [-1]
    attrs = {kind: breakpoint_attr(kind, address, length, config) for kind in config.kinds}
    events: list[Event] = []
    try:
        for tid in thread_ids(pid):
            events.extend(_open_thread(attrs, pid, tid, cpus, config))
    except BaseException:
        close_events(events)
        raise
    return events


def _open_thread(
    attrs: dict[str, abi.EventAttr], pid: int, tid: int, cpus: list[int], config: EventConfig
) -> list[Event]:
    """The events of one thread; none if the thread exited while we opened them."""
    events: list[Event] = []
    try:
        for cpu in cpus:
            for kind, attr in attrs.items():
                events.append(_open_event(attr, kind, pid, tid, cpu, config))
    except _ThreadGone:
        close_events(events)
        return []
    except BaseException:
        close_events(events)
        raise
    return events


def close_events(events: list[Event]) -> None:
    for event in events:
        os.close(event.fd)


def _open_event(
    attr: abi.EventAttr, kind: str, pid: int, tid: int, cpu: int, config: EventConfig
) -> Event:
    try:
        fd = abi.perf_event_open(attr, tid, cpu)
    except OSError as error:
        if error.errno == errno.ESRCH and tid != pid and os.path.exists(f"/proc/{pid}"):
            raise _ThreadGone from None
        raise PerfError(explain_open_error(error.errno, pid, attr, config)) from None
    try:
        return Event(fd, kind, abi.event_id(fd), tid, cpu, attr.sample_type)
    except BaseException:
        os.close(fd)
        raise


def explain_open_error(code: int, pid: int, attr: abi.EventAttr, config: EventConfig) -> str:
    """One line for a perf_event_open failure, saying what to do."""
    size = f"{attr.bp_len} byte" + ("" if attr.bp_len == 1 else "s")  # stdlib only here
    where = f"{attr.bp_addr:#x} ({size}) in process {pid}"
    if code in (errno.EACCES, errno.EPERM):
        return _permission_message(pid, config)
    if code == errno.ESRCH:
        return f"no process {pid}: check the PID (it may have exited)"
    if code == errno.ENOSPC:
        return (
            f"no hardware debug register left to watch {where}: x86 has 4 and each watch "
            "takes 2, 1 with --access w (a debugger's watchpoints take them too); remove a watch"
        )
    if code in (errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP):
        return "this kernel or machine has no perf hardware breakpoints: use the gdb engine"
    if code in (errno.EMFILE, errno.ENFILE):
        return "too many open files for the perf events: raise the limit ('ulimit -n')"
    return f"the kernel refused a breakpoint at {where}: {os.strerror(code)}"


def _permission_message(pid: int, config: EventConfig) -> str:
    paranoid = read_perf_event_paranoid()
    setting = f"kernel.perf_event_paranoid is {paranoid}" if paranoid is not None else ""
    if not config.exclude_kernel:
        return (
            f"watching kernel-mode accesses needs root or CAP_PERFMON ({setting}): run as "
            "root, or watch user-mode accesses only"
        )
    return (
        f"not permitted to watch process {pid} with perf events ({setting}; the process must "
        "be yours, or you root or CAP_PERFMON): run as root, or allow your own processes "
        "with 'sudo sysctl kernel.perf_event_paranoid=2'"
    )


def read_perf_event_paranoid() -> int | None:
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as setting:
            return int(setting.read())
    except (OSError, ValueError):
        return None
