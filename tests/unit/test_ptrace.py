"""The ctypes binding of ptrace(2), on a real child process."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import time

from gdb_qznusnih.launcher import procfs, ptrace

WALL = 0x40000000


def _wait_until_asleep(pid: int) -> None:
    deadline = time.monotonic() + 5
    while procfs.state(pid) != "S":
        assert time.monotonic() < deadline, f"process {pid} is {procfs.state(pid)}, not S"
        time.sleep(0.005)


def test_seize_interrupt_read_and_detach_leave_the_child_running(sleeper):
    _wait_until_asleep(sleeper.pid)
    call = ptrace.libc_ptrace()
    assert call(ptrace.SEIZE, sleeper.pid, None, None) == 0
    assert call(ptrace.INTERRUPT, sleeper.pid, None, None) == 0
    _, status = os.waitpid(sleeper.pid, WALL)
    assert os.WIFSTOPPED(status) and status >> 16 == 128  # PTRACE_EVENT_STOP
    if platform.machine() == "x86_64":
        regs = (ctypes.c_ulong * 27)()  # struct user_regs_struct
        assert call(ptrace.GETREGS, sleeper.pid, None, ctypes.addressof(regs)) == 0
        assert regs[19] != 0  # rsp
    assert call(ptrace.DETACH, sleeper.pid, None, None) == 0
    _wait_until_asleep(sleeper.pid)  # running on in its sleep, not left stopped
    assert sleeper.poll() is None


def test_a_failed_request_returns_minus_one_with_errno(sleeper):
    call = ptrace.libc_ptrace()
    ctypes.set_errno(0)
    assert call(ptrace.DETACH, sleeper.pid, None, None) == -1  # not traced by us
    assert ctypes.get_errno() == errno.ESRCH
