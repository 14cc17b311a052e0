"""The perf capture engine: hardware breakpoints opened with perf_event_open(2).

The kernel samples the registers and the user stack of every access inside the debug trap and
writes them to mmap'd ring buffers, so the watched process is never ptrace-attached and never
stopped.  `abi` holds the kernel's structures and constants, `events` opens the breakpoint
events, `ring` copies bytes out of the rings, `records` parses them, and `capture` ties these
together with a drain thread and the loss accounting.  Stdlib and ctypes only: no gdb, nothing
from the rest of the package but launcher/procfs.py (stdlib only itself), except `engine`,
which turns hits into the package's records.
"""
