"""The kernel's perf_event ABI for x86-64: perf_event_attr, the syscall, ioctls, record types.

Values come from include/uapi/linux/perf_event.h, include/uapi/linux/hw_breakpoint.h and
arch/x86/include/uapi/asm/perf_regs.h (Linux 6.x).  Nothing here opens anything by itself.
"""

from __future__ import annotations

import ctypes
import os

NR_PERF_EVENT_OPEN = 298  # x86-64 only; the register layout below is x86-64's too

PERF_TYPE_BREAKPOINT = 5
HW_BREAKPOINT_W = 2
HW_BREAKPOINT_RW = 3
BREAKPOINT_LENGTHS = (1, 2, 4, 8)

# sample_type bits
SAMPLE_IP = 1 << 0
SAMPLE_TID = 1 << 1
SAMPLE_TIME = 1 << 2
SAMPLE_CALLCHAIN = 1 << 5
SAMPLE_REGS_USER = 1 << 12
SAMPLE_STACK_USER = 1 << 13
SAMPLE_IDENTIFIER = 1 << 16

# read_format bits
FORMAT_ID = 1 << 2
FORMAT_LOST = 1 << 4  # Linux 6.0+

# perf_event_attr flag bits (the bitfield after read_format)
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_EXCLUDE_KERNEL = 1 << 5
FLAG_EXCLUDE_HV = 1 << 6
FLAG_MMAP = 1 << 8
FLAG_COMM = 1 << 9
FLAG_TASK = 1 << 13
FLAG_SAMPLE_ID_ALL = 1 << 18
FLAG_EXCLUDE_CALLCHAIN_USER = 1 << 22
FLAG_MMAP2 = 1 << 23
FLAG_COMM_EXEC = 1 << 24
FLAG_USE_CLOCKID = 1 << 25
FLAG_INHERIT_THREAD = 1 << 35  # Linux 5.13+: inherit to threads, not to fork children

CLOCK_MONOTONIC = 1

# ioctl requests
IOC_ENABLE = 0x2400
IOC_DISABLE = 0x2401
IOC_SET_OUTPUT = 0x2405
IOC_ID = 0x80082407

# record types (perf_event_header.type)
RECORD_MMAP = 1
RECORD_LOST = 2
RECORD_COMM = 3
RECORD_EXIT = 4
RECORD_THROTTLE = 5
RECORD_UNTHROTTLE = 6
RECORD_FORK = 7
RECORD_SAMPLE = 9
RECORD_MMAP2 = 10

# perf_event_header.misc
MISC_CPUMODE_MASK = 7
MISC_KERNEL = 1
MISC_COMM_EXEC = 1 << 13
MISC_MMAP_BUILD_ID = 1 << 14

# callchain entries at or above this are context markers (PERF_CONTEXT_KERNEL, _USER, ...)
CONTEXT_MAX = (1 << 64) - 4095
CONTEXT_KERNEL = (1 << 64) - 128
CONTEXT_USER = (1 << 64) - 512

# x86-64 perf register numbers; 12-15 (ds, es, fs, gs) are refused for user samples.
_REGISTER_NUMBERS = {
    "rax": 0, "rbx": 1, "rcx": 2, "rdx": 3, "rsi": 4, "rdi": 5, "rbp": 6, "rsp": 7,
    "rip": 8, "flags": 9, "cs": 10, "ss": 11, "r8": 16, "r9": 17, "r10": 18, "r11": 19,
    "r12": 20, "r13": 21, "r14": 22, "r15": 23,
}  # fmt: skip
# A sample holds the registers in the order of their bit numbers.
REGISTER_NAMES = tuple(sorted(_REGISTER_NUMBERS, key=_REGISTER_NUMBERS.get))
REGISTER_MASK = sum(1 << number for number in _REGISTER_NUMBERS.values())

# perf_event_mmap_page: where the ring's positions live in the first page
MMAP_DATA_HEAD = 1024
MMAP_DATA_TAIL = 1032
MMAP_DATA_OFFSET = 1040
MMAP_DATA_SIZE = 1048


class EventAttr(ctypes.Structure):
    """struct perf_event_attr up to config3 (PERF_ATTR_SIZE_VER8, 136 bytes)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("bp_addr", ctypes.c_uint64),
        ("bp_len", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("reserved_3", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
        ("config3", ctypes.c_uint64),
    ]


assert ctypes.sizeof(EventAttr) == 136

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.ioctl.restype = ctypes.c_int


def perf_event_open(attr: EventAttr, pid: int, cpu: int, group_fd: int = -1) -> int:
    """The raw syscall; raises OSError with the kernel's errno."""
    attr.size = ctypes.sizeof(EventAttr)
    fd = _libc.syscall(
        ctypes.c_long(NR_PERF_EVENT_OPEN),
        ctypes.byref(attr),
        ctypes.c_int(pid),
        ctypes.c_int(cpu),
        ctypes.c_int(group_fd),
        ctypes.c_ulong(0),
    )
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return fd


def ioctl(fd: int, request: int, argument: int | ctypes.c_void_p | None = None) -> None:
    if _libc.ioctl(fd, request, argument) < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def event_id(fd: int) -> int:
    """The id the kernel writes into this event's samples (PERF_SAMPLE_IDENTIFIER)."""
    value = ctypes.c_uint64()
    ioctl(fd, IOC_ID, ctypes.cast(ctypes.byref(value), ctypes.c_void_p))
    return value.value
