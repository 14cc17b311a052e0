"""A stopped thread's registers and memory, for one hit.  Needs gdb.

gdb's own ways cost most of a hit: evaluating `$pc` makes gdb build its frame
cache and look up the block at pc (~60 us of gdb time per stop), and each
`Inferior.read_memory` ~25 us.  For a native Linux x86-64 process, the
kernel answers the same questions in a couple of microseconds: PTRACE_GETREGS
on the stopped thread (gdb's thread is the tracer, and Python runs on it) and
a pread of /proc/PID/mem.  Both only read.  They are used only after a check
at arm time that they agree with gdb; any failure falls back to gdb for good.
"""

from __future__ import annotations

import ctypes
import functools
import os

import gdb

from gdb_qznusnih.arm import target
from gdb_qznusnih.launcher import ptrace

# struct user_regs_struct (x86-64), in order.
_USER_REGS = (
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax "
    "rip cs eflags rsp ss fs_base gs_base ds es fs gs"
).split()
_SLOT = {name: index for index, name in enumerate(_USER_REGS)}
_MASK32 = 0xFFFF_FFFF


@functools.cache
def _slot_and_mask(name: str, word: int) -> tuple[int, int] | None:
    """Where a register name's value lies in user_regs_struct, and its width mask."""
    if name in _SLOT and (word == 8 or name == "eflags"):
        return _SLOT[name], (1 << 64) - 1
    if name.startswith("e") and "r" + name[1:] in _SLOT:  # eax, eip, esp... (zero-extended)
        return _SLOT["r" + name[1:]], _MASK32
    if name.endswith("d") and name[:-1] in _SLOT and word == 8:  # r8d ... r15d
        return _SLOT[name[:-1]], _MASK32
    return None


class GdbState:
    """Registers and memory through gdb: works for every target."""

    def __init__(self, word: int) -> None:
        self.word = word
        self._inferior = gdb.selected_inferior()

    def snapshot(self, tid: int) -> GdbState:
        return self

    def reg(self, name: str) -> int:
        return target.register(name, self.word)

    def read(self, address: int, length: int) -> bytes:
        return self._inferior.read_memory(address, length).tobytes()

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        pass


class _PtraceSnapshot:
    """One GETREGS of the thread that hit; reg() falls back to gdb for other names."""

    __slots__ = ("_regs", "_state", "_word")

    def __init__(self, state: PtraceState, regs) -> None:
        self._regs = regs
        self._state = state
        self._word = state.word

    def reg(self, name: str) -> int:
        where = _slot_and_mask(name, self._word)
        if where is None:
            return target.register(name, self._word)
        return self._regs[where[0]] & where[1]

    def read(self, address: int, length: int) -> bytes:
        return self._state.read(address, length)


class PtraceState:
    """Registers by PTRACE_GETREGS and memory by /proc/PID/mem, for a native process."""

    def __init__(self, word: int, pid: int, libc_ptrace) -> None:
        self.word = word
        self._pid = pid
        self._ptrace = libc_ptrace
        self._fd: int | None = None
        self._gdb = GdbState(word)
        self.reopen()

    def snapshot(self, tid: int):
        """This hit's registers: `tid` is the thread that hit (gdb's selected thread)."""
        regs = (ctypes.c_ulong * len(_USER_REGS))()
        if self._ptrace(ptrace.GETREGS, tid, None, ctypes.addressof(regs)) != 0:
            return self._gdb
        return _PtraceSnapshot(self, regs)

    def read(self, address: int, length: int) -> bytes:
        if self._fd is not None:
            try:
                data = os.pread(self._fd, length, address)
                if len(data) == length:
                    return data
            except OSError:
                pass
        # Unmapped (gdb raises gdb.MemoryError) or the address space changed (exec).
        return self._gdb.read(address, length)

    def reopen(self) -> None:
        """After an exec the old /proc/PID/mem reads nothing: open it again."""
        self.close()
        try:
            self._fd = os.open(f"/proc/{self._pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def state_for(inferior: gdb.Inferior, word: int):
    """The fastest way to read the selected inferior that agrees with gdb."""
    fallback = GdbState(word)
    connection = getattr(inferior, "connection", None)
    system = os.uname()
    if (
        connection is None
        or connection.type != "native"
        or (system.sysname, system.machine) != ("Linux", "x86_64")
        or inferior.pid <= 0
    ):
        return fallback
    try:
        libc_ptrace = ptrace.libc_ptrace()
    except (OSError, AttributeError):
        return fallback
    fast = PtraceState(word, inferior.pid, libc_ptrace)
    if not _agrees(fast.snapshot(target.current_thread_ids()[1]), fallback, word):
        fast.close()
        return fallback
    return fast


def _agrees(fast, slow: GdbState, word: int) -> bool:
    names = ("rip", "rsp", "rbp") if word == 8 else ("eip", "esp", "ebp")
    if not isinstance(fast, _PtraceSnapshot):
        return False
    try:
        if any(fast.reg(name) != slow.reg(name) for name in names):
            return False
        sp = slow.reg(names[1])
        return fast.read(sp, word) == slow.read(sp, word)
    except (gdb.error, gdb.MemoryError):
        return False
