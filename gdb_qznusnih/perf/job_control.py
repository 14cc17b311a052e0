"""A perf watch's target in a job-control stop (SIGSTOP, Ctrl-Z): said when it stops and
when it runs again, never acted on.

The perf engine holds no ptrace stop, so the stop is the target's own: the watch goes on,
sees no accesses while it lasts and logs them again after the target's SIGCONT.  The state
in /proc/PID/stat tells: `T` is a job-control stop (`t` is a tracer's, e.g. gdb's).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gdb_qznusnih.launcher import procfs

CHECK_INTERVAL_S = 0.2  # how often the consumer loop reads the state: a 20 µs read
JOB_CONTROL_STOP = "T"
_NOT_RUNNING = ("T", "t", "Z", "X", "")  # stopped, a tracer's stop, exited, gone


def stopped_text(pid: int) -> str:
    """The note when the target stops during the watch (the gdb engine's words where true)."""
    return (
        "the target was stopped (SIGSTOP or Ctrl-Z) and is left stopped; the watch goes on "
        f"and logs its accesses after 'kill -CONT {pid}'"
    )


RUNS_AGAIN = "the target was continued (SIGCONT) and runs again; the watch goes on"


def stopped_at_arm_text(pid: int) -> str:
    """The armed line's detail for a target stopped before the watch."""
    return (
        f"stopped (SIGSTOP or Ctrl-Z): left stopped, its accesses logged after 'kill -CONT {pid}'"
    )


def left_stopped_text(pid: int) -> str:
    """The note when the watch ends with the target still stopped, as the gdb engine says it."""
    return f"the target is left stopped; resume it with 'kill -CONT {pid}'"


class JobControlNotes:
    """Notes each job-control stop of `pid` and its end, once each; check() at most every
    CHECK_INTERVAL_S.  `read_state` and `clock` are procfs.state and time.monotonic."""

    def __init__(
        self,
        pid: int,
        note: Callable[[str], None],
        read_state: Callable[[int], str] = procfs.state,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = pid
        self._note = note
        self._read_state = read_state
        self._clock = clock
        self.stopped = read_state(pid) == JOB_CONTROL_STOP  # when the watch was armed
        self._next_check = clock() + CHECK_INTERVAL_S

    def check(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_INTERVAL_S
        state = self._read_state(self.pid)
        if not self.stopped and state == JOB_CONTROL_STOP:
            self.stopped = True
            self._note(stopped_text(self.pid))
        elif self.stopped and state not in _NOT_RUNNING:
            self.stopped = False
            self._note(RUNS_AGAIN)
        elif state in ("Z", "X", ""):
            self.stopped = False  # killed while stopped: the watch's end says how

    def ended(self) -> None:
        """At the watch's end: say so if the target is still stopped."""
        if self._read_state(self.pid) == JOB_CONTROL_STOP:
            self._note(left_stopped_text(self.pid))
