"""Run a command where perf_event_open(2) fails with EPERM, as in a container whose seccomp
profile forbids it (Docker's default does): `python3 no_perf_events.py COMMAND [ARGS...]`.

A seccomp filter on this process, inherited by what it executes; everything else is allowed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
NR_PERF_EVENT_OPEN = 298
LOAD_WORD, JUMP_IF_EQUAL, RETURN = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
RET_ALLOW, RET_ERRNO, RET_KILL = 0x7FFF0000, 0x00050000, 0x00000000


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]  # fmt: skip


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


def install() -> None:
    program = [
        SockFilter(LOAD_WORD, 0, 0, 4),  # seccomp_data.arch
        SockFilter(JUMP_IF_EQUAL, 1, 0, AUDIT_ARCH_X86_64),
        SockFilter(RETURN, 0, 0, RET_KILL),
        SockFilter(LOAD_WORD, 0, 0, 0),  # seccomp_data.nr
        SockFilter(JUMP_IF_EQUAL, 0, 1, NR_PERF_EVENT_OPEN),
        SockFilter(RETURN, 0, 0, RET_ERRNO | errno.EPERM),
        SockFilter(RETURN, 0, 0, RET_ALLOW),
    ]
    filters = (SockFilter * len(program))(*program)
    fprog = SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


if __name__ == "__main__":
    install()
    os.execvp(sys.argv[1], sys.argv[1:])
