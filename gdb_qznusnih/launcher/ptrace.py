"""ptrace(2) through ctypes: the requests this package makes and the one binding of libc's
ptrace.  Standard library only.  x86 Linux (64- and 32-bit) request numbers.
"""

from __future__ import annotations

import ctypes

PEEKUSER = 3
POKEUSER = 6
GETREGS = 12
DETACH = 17
SEIZE = 0x4206
INTERRUPT = 0x4207


def libc_ptrace():
    """libc's `long ptrace(request, pid, addr, data)`, with errno kept for ctypes.get_errno.

    Raises OSError or AttributeError where there is no libc with ptrace.  Loading libc takes a
    few milliseconds: callers that must be quick later bind it early.
    """
    ptrace = ctypes.CDLL(None, use_errno=True).ptrace
    ptrace.restype = ctypes.c_long
    ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return ptrace
