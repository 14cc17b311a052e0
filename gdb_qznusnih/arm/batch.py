"""Batch monitoring: keep the target running under the watch until it exits, a
stop condition is met, or gdb is asked to stop.  Needs gdb.

gdb handles SIGINT by interrupting the target, which ends a synchronous
`continue`.  SIGTERM and SIGHUP are relayed as that same SIGINT (by a thread
that wakes on Python's signal wakeup fd), and so is the --duration timer, so
every way of stopping ends in one place: remove the watch, summarise, detach.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading

import gdb

from gdb_qznusnih.arm import target
from gdb_qznusnih.arm.describe import target_end_text

_RELAYED = (signal.SIGTERM, signal.SIGHUP)


def in_batch_mode() -> bool:
    """Whether this gdb runs with -batch (gdb has no Python API for it)."""
    try:
        with open("/proc/self/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
    except OSError:
        return False
    return any(a in (b"-batch", b"--batch", b"-batch-silent", b"--batch-silent") for a in args)


class StopRelay:
    """Turns SIGTERM, SIGHUP and the deadline into one SIGINT to gdb itself."""

    def __init__(self, on_request=None) -> None:
        self.reason: str | None = None
        # Called first: gdbserver cannot interrupt a process that leads no process group
        # (it signals the group), so the next hit must end the watch too.
        self._on_request = on_request
        self._lock = threading.Lock()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._timer: threading.Timer | None = None
        self._old_wakeup = None

    def install(self, deadline_seconds: float | None) -> None:
        for signum in _RELAYED:
            signal.signal(signum, _ignore_in_python)
        self._old_wakeup = signal.set_wakeup_fd(self._write_fd)
        threading.Thread(target=self._relay_signals, daemon=True, name="qzn-relay").start()
        if deadline_seconds is not None:
            self._timer = threading.Timer(deadline_seconds, self.request, ("duration",))
            self._timer.daemon = True
            self._timer.start()

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        signal.set_wakeup_fd(self._old_wakeup if self._old_wakeup is not None else -1)
        os.close(self._write_fd)  # ends the relay thread's read
        os.close(self._read_fd)

    def request(self, reason: str) -> None:
        """Ask the running `continue` to return, remembering why."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
        if self._on_request is not None:
            self._on_request()
        os.kill(os.getpid(), signal.SIGINT)

    def _relay_signals(self) -> None:
        """Relay the first SIGTERM or SIGHUP.  A SIGINT byte is skipped: Python writes one
        whenever gdb hands it a SIGINT that gdb itself is already taking (PyErr_SetInterrupt),
        and relaying it would send gdb a second SIGINT, which could end `qzn-watch` with
        gdb's "Quit" (exit status 1 under -batch) after the watch had ended cleanly."""
        while True:
            try:
                data = os.read(self._read_fd, 1)
            except OSError:
                return
            if not data:
                return
            if data[0] in _RELAYED:
                self.request(f"{signal.Signals(data[0]).name} received")
                return


def _ignore_in_python(signum, frame) -> None:
    """The wakeup fd does the work; the Python-level handler has nothing to do."""


class StopTracker:
    """Remembers the last stop and whether the inferior exited, and how."""

    def __init__(self) -> None:
        self.last_stop = None
        self.exit_code: int | None = None
        self.exit_signal: int | None = None  # it was killed by this signal
        self.exited = False

    def connect(self) -> None:
        gdb.events.stop.connect(self._on_stop)
        gdb.events.exited.connect(self._on_exit)

    def disconnect(self) -> None:
        gdb.events.stop.disconnect(self._on_stop)
        gdb.events.exited.disconnect(self._on_exit)

    def _on_stop(self, event) -> None:
        self.last_stop = event

    def _on_exit(self, event) -> None:
        self.exited = True
        self.exit_code = getattr(event, "exit_code", None)
        self.exit_signal = target.exit_signal() if self.exit_code is None else None


def signal_sender_pid() -> int | None:
    """si_pid of the signal that stopped the thread, when a process sent it."""
    try:
        info = gdb.parse_and_eval("$_siginfo")
        if int(info["si_code"]) > 0:  # sent by the kernel (e.g. a terminal), not kill()
            return None
        return int(info["_sifields"]["_kill"]["si_pid"])
    except (gdb.error, RuntimeError):
        return None


class Catchpoints:
    """`catch exec` and `catch fork`/`vfork` for the time of a batch watch."""

    def __init__(self) -> None:
        self.exec_bp = self._catch("exec")
        self.fork_bps = [self._catch("fork"), self._catch("vfork")]

    @staticmethod
    def _catch(what: str):
        before = {bp.number for bp in gdb.breakpoints()}
        gdb.execute(f"catch {what}", to_string=True)
        created = [bp for bp in gdb.breakpoints() if bp.number not in before]
        if not created:
            return None
        created[0].silent = True  # we say what happened, once
        return created[0]

    def hit(self, stop, bp) -> bool:
        return bp is not None and isinstance(stop, gdb.BreakpointEvent) and bp in stop.breakpoints

    def delete(self) -> None:
        for bp in [self.exec_bp, *self.fork_bps]:
            if bp is not None and bp.is_valid():
                bp.delete()


class BetweenWatches:
    """What run_until_done needs of a session, while none is armed (--at-every waiting for
    its location after a stack slot's frame returned)."""

    kernel = None
    interrupted = False

    def __init__(self, opts) -> None:
        self.opts = dataclasses.replace(opts, duration=None)  # --duration is a watch's
        self.finish_reason: str | None = None

    def finish(self, reason: str) -> None:
        if self.finish_reason is None:
            self.finish_reason = reason

    def remove(self) -> None:
        """No watchpoint to remove."""


class Outcome:
    """How a batch watch ended: the reason, the new program after an exec, a stop, the
    signal that killed the target, or the --at-every location reached again."""

    def __init__(
        self,
        reason: str,
        exec_path: str | None = None,
        job_stopped=False,
        killed_by: int | None = None,
        reached_again: bool = False,
    ) -> None:
        self.reason = reason
        self.exec_path = exec_path
        self.job_stopped = job_stopped  # in a job-control stop: detach leaving it stopped
        self.killed_by = killed_by
        self.reached_again = reached_again


def run_until_done(session, note, rearm=None) -> Outcome:
    """Resume the target until the watch is finished; `note(text)` reports events.

    `rearm`: the --at-every breakpoint; reaching it ends the watch (the caller arms anew).
    """
    relay = StopRelay(on_request=getattr(session, "request_stop", None))
    tracker = StopTracker()
    catch = Catchpoints()
    tracker.connect()
    relay.install(session.opts.duration)
    resume = "continue"
    exec_path = None
    forks_noted = False
    job_stopped = False
    reached_again = False
    try:
        while session.finish_reason is None:
            tracker.last_stop = None
            try:
                gdb.execute(resume, to_string=True)
            except KeyboardInterrupt:
                session.finish(interrupt_reason(relay, session))
                break
            except gdb.error as error:
                if tracker.exited or gdb.selected_inferior().pid == 0:
                    break
                session.finish(f"gdb: {error}")
                break
            resume = "continue"
            if tracker.exited or gdb.selected_inferior().pid == 0:
                session.finish(_exit_reason(tracker))
                break
            if session.interrupted:
                session.finish(interrupt_reason(relay, session))
                break
            stop = tracker.last_stop
            if catch.hit(stop, catch.exec_bp):
                exec_path = gdb.current_progspace().filename
                session.finish(f"target called exec({exec_path}); exec clears watches")
                break
            if catch.hit(stop, rearm):
                reached_again = True
                session.finish(f"{session.opts.at_every} reached again")
                break
            if any(catch.hit(stop, bp) for bp in catch.fork_bps):
                if not forks_noted:
                    note("the target forked; children are not watched (said once)")
                    forks_noted = True
                continue
            if isinstance(stop, gdb.SignalEvent):
                if _stopped_by_job_control(session, stop):
                    job_stopped = True
                    pid = gdb.selected_inferior().pid
                    session.finish(
                        f"the target was stopped by {stop.stop_signal} and is left stopped; "
                        f"resume it with 'kill -CONT {pid}'"
                    )
                    break
                if stop.stop_signal == "SIGINT" and signal_sender_pid() in (None, os.getpid()):
                    session.finish(interrupt_reason(relay, session))
                    break
                if stop.stop_signal == "SIGINT":
                    # A SIGINT meant for the target: gdb does not pass it by default.
                    resume = "signal SIGINT"
    finally:
        relay.uninstall()
        tracker.disconnect()
        catch.delete()
    if session.finish_reason is not None and not tracker.exited and not job_stopped:
        _consume_pending_interrupt(session)  # resuming would end a job-control stop
    if session.finish_reason is None:
        session.finish(_exit_reason(tracker))
    return Outcome(
        session.finish_reason, exec_path, job_stopped, tracker.exit_signal, reached_again
    )


def _stopped_by_job_control(session, stop) -> bool:
    """Whether the process has entered a job-control stop (state T once detached).

    gdb reports a stop signal twice: on its way (passed on by `continue`), then as the
    stop itself, unless the process handles or ignores it.  Only the second ends the watch,
    so the process stops exactly when it would without gdb.
    """
    return (
        session.kernel is None
        and stop.stop_signal in target.JOB_CONTROL_STOPS
        and target.in_job_control_stop()
    )


def _consume_pending_interrupt(session) -> None:
    """Take back a SIGINT that gdb sent the target to interrupt it, before detaching.

    When a hit stops the target first, gdb's SIGINT stays pending and would kill
    the target once detached.  With the watch removed, one more resume lets gdb
    take the signal (it does not pass SIGINT by default).
    """
    pid = gdb.selected_inferior().pid
    if not pid or not target.signal_pending(pid, signal.SIGINT):
        return
    session.remove()
    try:
        gdb.execute("continue", to_string=True)
    except (gdb.error, KeyboardInterrupt):
        pass


def interrupt_reason(relay: StopRelay, session) -> str:
    """Why an interrupt ended the watch: the relayed cause, else a SIGINT itself.

    A SIGINT reaches Python (and the relay) or gdb's own handler depending on what runs at
    that instant; either way it is the same request, named the same way.
    """
    if relay.reason == "duration":
        return f"--duration {session.opts.duration:g}s reached"
    return relay.reason or "SIGINT received"


def _exit_reason(tracker: StopTracker) -> str:
    return target_end_text(tracker.exit_code, target.signal_name(tracker.exit_signal))
