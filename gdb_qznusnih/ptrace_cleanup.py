"""Clear a process's hardware debug registers after its debugger died.

When gdb is killed (SIGKILL) with a hardware watchpoint armed, the kernel detaches the target
but leaves its debug registers armed, and the target dies of SIGTRAP at its next access
(exit 133).  The launcher calls `clear_debug_registers` at once when that happens: it seizes
every thread with ptrace, zeroes DR7 and DR0-DR3 through PTRACE_POKEUSER and detaches.

It uses PTRACE_SEIZE + PTRACE_INTERRUPT, which sends no SIGSTOP, so nothing is injected.  A
signal that was on its way to a thread when we stopped it is handed back at detach, except a
SIGTRAP that the orphaned watchpoint itself raised (DR6 says so): that one is dropped, since
delivering it would kill the target.  x86 (64- and 32-bit) only.  Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import time
from dataclasses import dataclass, field

PTRACE_PEEKUSER = 3
PTRACE_POKEUSER = 6
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
WALL = 0x40000000  # __WALL: wait for threads too

DR6_HIT_BITS = 0xF  # B0-B3: which debug register fired
STOP_TIMEOUT_S = 5.0


class CleanupError(OSError):
    """The debug registers could not be cleared; the message is one line."""


@dataclass
class CleanupReport:
    """What `clear_debug_registers` did."""

    pid: int
    threads: int = 0  # threads seized and detached
    cleared: int = 0  # threads whose DR7 was armed
    dropped_traps: int = 0  # SIGTRAPs from the orphaned watchpoint, not delivered
    redelivered: list[int] = field(default_factory=list)  # signals handed back at detach
    failed: list[str] = field(default_factory=list)  # one entry per thread we could not fix
    resumed: bool = False  # SIGCONT sent because the target was left stopped
    gone: bool = False  # the process no longer exists

    def summary(self) -> str:
        """One line for the user."""
        if self.gone:
            return f"process {self.pid} is gone; nothing to clear"
        text = (
            f"cleared the hardware watchpoints of process {self.pid} "
            f"({self.cleared} of {self.threads} threads were armed)"
        )
        if self.dropped_traps:
            text += f", dropped {self.dropped_traps} pending watchpoint trap(s)"
        if self.resumed:
            text += ", resumed it from a stop left by gdb"
        if self.failed:
            text += "; FAILED on " + ", ".join(self.failed)
        return text


def debugreg_offset(machine: str | None = None, pointer_size: int | None = None) -> int:
    """offsetof(struct user, u_debugreg) for the tracer's own ABI."""
    machine = machine or platform.machine()
    pointer_size = pointer_size or ctypes.sizeof(ctypes.c_void_p)
    if machine in ("x86_64", "amd64") and pointer_size == 8:
        return 848
    if machine in ("x86_64", "amd64", "i386", "i486", "i586", "i686") and pointer_size == 4:
        return 252
    raise CleanupError(f"clearing debug registers is not supported on {machine}")


class _Ptrace:
    """Thin ctypes wrapper over ptrace(2) raising OSError."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._ptrace = libc.ptrace
        self._ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self._ptrace.restype = ctypes.c_long
        self.word = ctypes.sizeof(ctypes.c_void_p)
        self.offset = debugreg_offset()

    def call(self, request: int, tid: int, addr: int = 0, data: int = 0) -> int:
        ctypes.set_errno(0)
        result = self._ptrace(request, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
        err = ctypes.get_errno()
        if result == -1 and err:
            raise OSError(err, os.strerror(err))
        return result

    def peek_dr(self, tid: int, index: int) -> int:
        value = self.call(PTRACE_PEEKUSER, tid, self.offset + self.word * index)
        return value & ((1 << (8 * self.word)) - 1)

    def poke_dr(self, tid: int, index: int, value: int) -> None:
        self.call(PTRACE_POKEUSER, tid, self.offset + self.word * index, value)


def _thread_ids(pid: int) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []


def _wait_for_stop(tid: int, deadline: float) -> int | None:
    """The wait status of tid's next stop, or None if it exited or never stopped."""
    while True:
        try:
            waited, status = os.waitpid(tid, os.WNOHANG | WALL)
        except ChildProcessError:
            return None
        if waited == tid:
            return status if os.WIFSTOPPED(status) else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.0005)


def _process_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


def _fix_thread(pt: _Ptrace, tid: int, report: CleanupReport, deadline: float) -> None:
    """Clear one seized-and-interrupted thread's debug registers and detach it."""
    status = _wait_for_stop(tid, deadline)
    if status is None:
        if os.path.exists(f"/proc/{report.pid}/task/{tid}"):
            report.failed.append(f"thread {tid} (did not stop)")
        return
    signo, event = os.WSTOPSIG(status), status >> 16
    deliver = 0
    if event == 0:  # a signal-delivery-stop: the signal was on its way; hand it back
        deliver = signo
    try:
        dr6 = pt.peek_dr(tid, 6)
        if deliver == signal.SIGTRAP and dr6 & DR6_HIT_BITS:
            deliver = 0  # raised by the orphaned watchpoint: delivering it would kill
            report.dropped_traps += 1
            pt.poke_dr(tid, 6, 0)
        if pt.peek_dr(tid, 7):
            report.cleared += 1
            pt.poke_dr(tid, 7, 0)
        for index in range(4):
            if pt.peek_dr(tid, index):
                pt.poke_dr(tid, index, 0)
    except OSError as error:
        report.failed.append(f"thread {tid} ({error.strerror})")
    finally:
        try:
            pt.call(PTRACE_DETACH, tid, 0, deliver)
            report.threads += 1
            if deliver:
                report.redelivered.append(deliver)
        except OSError:
            pass  # the thread exited meanwhile


def clear_debug_registers(
    pid: int, resume_if_stopped: bool = False, expected_start_time: str | None = None
) -> CleanupReport:
    """Zero DR7 and DR0-DR3 on every thread of `pid`, leaving it running as it was.

    `expected_start_time` (field 22 of /proc/PID/stat) guards against a reused PID.  With
    `resume_if_stopped`, a process found stopped afterwards gets SIGCONT: the caller knows it
    was running before gdb attached, so the stop came from a SIGSTOP gdb left behind.
    """
    report = CleanupReport(pid)
    if expected_start_time is not None and _start_time(pid) != expected_start_time:
        report.gone = True
        return report
    pt = _Ptrace()
    seen: set[int] = set()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while True:
        new = [tid for tid in _thread_ids(pid) if tid not in seen]
        if not new:
            break
        seized = []
        for tid in new:  # stop them all first: the others keep running while we work
            seen.add(tid)
            try:
                pt.call(PTRACE_SEIZE, tid)
                pt.call(PTRACE_INTERRUPT, tid)
                seized.append(tid)
            except OSError as error:
                if error.errno != errno.ESRCH:
                    report.failed.append(f"thread {tid} ({error.strerror})")
        for tid in seized:
            _fix_thread(pt, tid, report, deadline)
    if not seen:
        report.gone = True
        return report
    if resume_if_stopped and _process_state(pid) in ("T", "t"):
        try:
            os.kill(pid, signal.SIGCONT)
            report.resumed = True
        except ProcessLookupError:
            pass
    return report


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None
