"""Clear a process's hardware debug registers after its debugger died.

When gdb is killed (SIGKILL) with a hardware watchpoint armed, the kernel detaches the target
but leaves its debug registers armed, and the target dies of SIGTRAP at its next access
(exit 133).  The launcher prepares a `DebugRegisterCleaner` before gdb can die and calls it at
once when that happens: it seizes every thread with ptrace, zeroes DR7 and DR0-DR3 through
ptrace.POKEUSER and detaches.  Nothing can close the window between gdb's death and that
(the target runs again the moment the kernel detaches it), so the report says what really
became of the target: alive and cleared, or dead and of what.

It uses ptrace.SEIZE + ptrace.INTERRUPT, which sends no SIGSTOP, so nothing is injected.  A
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

from gdb_qznusnih.counted import counted
from gdb_qznusnih.launcher import procfs, ptrace

WALL = 0x40000000  # __WALL: wait for threads too

DR6_HIT_BITS = 0xF  # B0-B3: which debug register fired
STOP_TIMEOUT_S = 5.0
SPIN_S = 0.01  # how long to poll for a thread's stop without sleeping


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
    gone: bool = False  # the process no longer exists (or its PID is another's now)
    fate: Fate | None = None  # what became of it, checked after the cleanup
    elapsed_ms: float | None = None  # from the caller's `since` to every thread cleared
    cleared_at: float = 0.0  # time.monotonic() when the last thread was done

    def summary(self) -> str:
        """One line for the user, saying what really became of the process."""
        fate = self.fate or Fate(alive=not self.gone)
        if not fate.alive:
            return fate.describe(self.pid)
        when = f" {self.elapsed_ms:.2f} ms after gdb died" if self.elapsed_ms is not None else ""
        text = (
            f"process {self.pid} is alive: cleared its hardware watchpoints{when} "
            f"({self.cleared} of {counted(self.threads, 'thread')} "
            f"{'was' if self.threads == 1 else 'were'} armed)"
        )
        if self.dropped_traps:
            text += f", dropped {counted(self.dropped_traps, 'pending watchpoint trap')}"
        if self.resumed:
            text += ", resumed it from a stop left by gdb"
        if self.failed:
            text += "; FAILED on " + ", ".join(self.failed)
        return text


@dataclass(frozen=True)
class Fate:
    """Whether a process lives, and if not how it ended (when that can still be read)."""

    alive: bool
    exit_status: int | None = None  # waitpid-style status of a zombie, None if unknown
    reused: bool = False  # the PID now belongs to another process

    def describe(self, pid: int) -> str:
        if self.alive:
            return f"process {pid} is alive"
        if self.reused:
            return f"process {pid} is gone; its PID now belongs to another process, left alone"
        status = self.exit_status
        if status is None:
            return (
                f"process {pid} is gone before its debug registers could be cleared "
                "(already reaped by its parent: how it ended is unknown)"
            )
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTRAP:
            return (
                f"process {pid} died of SIGTRAP: its watchpoint fired before the launcher "
                "could clear it; end watches with Ctrl-C or SIGTERM, which detach cleanly"
            )
        if os.WIFSIGNALED(status):
            return f"process {pid} was killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"process {pid} exited with status {os.WEXITSTATUS(status)}"


def process_fate(pid: int, expected_start_time: str | None = None) -> Fate:
    """Read /proc/PID/stat: alive, a zombie (with its exit status), gone, or a reused PID."""
    fields = procfs.read_stat_fields(pid)
    if fields is None:
        return Fate(alive=False)
    start = procfs.START_TIME
    if expected_start_time is not None and fields[start : start + 1] != [expected_start_time]:
        return Fate(alive=False, reused=True)
    if fields[:1] in (["Z"], ["X"]):
        exit_code = int(fields[procfs.EXIT_CODE]) if len(fields) > procfs.EXIT_CODE else None
        return Fate(alive=False, exit_status=exit_code)
    return Fate(alive=True)


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
        self._ptrace = ptrace.libc_ptrace()
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
        value = self.call(ptrace.PEEKUSER, tid, self.offset + self.word * index)
        return value & ((1 << (8 * self.word)) - 1)

    def poke_dr(self, tid: int, index: int, value: int) -> None:
        self.call(ptrace.POKEUSER, tid, self.offset + self.word * index, value)


def _wait_for_stop(tid: int, deadline: float) -> int | None:
    """The wait status of tid's next stop, or None if it exited or never stopped.

    It spins (yielding the CPU) for the first SPIN_S: a running thread stops within
    microseconds, and every one of them counts while the target could trap.
    """
    spin_until = time.monotonic() + SPIN_S
    while True:
        try:
            waited, status = os.waitpid(tid, os.WNOHANG | WALL)
        except ChildProcessError:
            return None
        if waited == tid:
            return status if os.WIFSTOPPED(status) else None
        now = time.monotonic()
        if now > deadline:
            return None
        if now < spin_until:
            os.sched_yield()
        else:
            time.sleep(0.0005)


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
        if pt.peek_dr(tid, 7):  # first: DR7 is what arms the trap
            pt.poke_dr(tid, 7, 0)
            report.cleared += 1
        dr6 = pt.peek_dr(tid, 6)
        if deliver == signal.SIGTRAP and dr6 & DR6_HIT_BITS:
            deliver = 0  # raised by the orphaned watchpoint: delivering it would kill
            report.dropped_traps += 1
            pt.poke_dr(tid, 6, 0)
        for index in range(4):
            if pt.peek_dr(tid, index):
                pt.poke_dr(tid, index, 0)
    except OSError as error:
        report.failed.append(f"thread {tid} ({error.strerror})")
    finally:
        try:
            pt.call(ptrace.DETACH, tid, 0, deliver)
            report.threads += 1
            if deliver:
                report.redelivered.append(deliver)
        except OSError:
            pass  # the thread exited meanwhile


class DebugRegisterCleaner:
    """`clear_debug_registers` for one process, made ready before it is needed.

    Loading libc through ctypes takes longer than a hot target needs to trap, so the launcher
    builds this while gdb runs and only calls `clear` once gdb has died.
    """

    def __init__(
        self, pid: int, resume_if_stopped: bool = False, expected_start_time: str | None = None
    ) -> None:
        self.pid = pid
        self.resume_if_stopped = resume_if_stopped
        self.expected_start_time = expected_start_time
        self._pt = _Ptrace()

    def clear(self, since: float | None = None) -> CleanupReport:
        """Clear now; `since` (time.monotonic()) times the report's `elapsed_ms`."""
        report = _clear(self._pt, self.pid, self.resume_if_stopped, self.expected_start_time)
        if since is not None and not report.gone:
            report.elapsed_ms = (report.cleared_at - since) * 1000
        report.fate = process_fate(self.pid, self.expected_start_time)
        return report


def clear_debug_registers(
    pid: int, resume_if_stopped: bool = False, expected_start_time: str | None = None
) -> CleanupReport:
    """Zero DR7 and DR0-DR3 on every thread of `pid`, leaving it running as it was.

    `expected_start_time` (field 22 of /proc/PID/stat) guards against a reused PID.  With
    `resume_if_stopped`, a process found stopped afterwards gets SIGCONT: the caller knows it
    was running before gdb attached, so the stop came from a SIGSTOP gdb left behind.
    """
    return DebugRegisterCleaner(pid, resume_if_stopped, expected_start_time).clear()


def _clear(
    pt: _Ptrace, pid: int, resume_if_stopped: bool, expected_start_time: str | None
) -> CleanupReport:
    report = CleanupReport(pid)
    if expected_start_time is not None and procfs.start_time(pid) != expected_start_time:
        report.gone = True
        return report
    seen: set[int] = set()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while True:
        new = [tid for tid in procfs.thread_ids(pid) if tid not in seen]
        if not new:
            break
        seized = []
        for tid in new:  # stop them all first: the others keep running while we work
            seen.add(tid)
            try:
                pt.call(ptrace.SEIZE, tid)
                pt.call(ptrace.INTERRUPT, tid)
                seized.append(tid)
            except OSError as error:
                if error.errno != errno.ESRCH:
                    report.failed.append(f"thread {tid} ({error.strerror})")
        for tid in seized:
            _fix_thread(pt, tid, report, deadline)
    report.cleared_at = time.monotonic()
    if not seen:
        report.gone = True
        return report
    if resume_if_stopped and procfs.state(pid) in ("T", "t"):
        try:
            os.kill(pid, signal.SIGCONT)
            report.resumed = True
        except ProcessLookupError:
            pass
    return report
