"""`qzn-watch --engine perf` inside gdb: a perf-engine watch on gdb's own native inferior.

The kernel samples each access into rings (gdb_qznusnih.perf).  A consumer thread of ours turns
them into records while gdb's main thread sits in the target wait of `continue`, so records
appear as they come.  That thread never touches the gdb API (gdb is not thread-safe): pcs are
symbolized by the perf engine's own gdb, attached to nothing, and a watch that ends by itself
(--count, --duration, exec, a log failure) is ended on gdb's thread through gdb.post_event, the
one call gdb allows from any thread.  No debug register of gdb's is used.

In -batch the target is detached at once and runs free, never stopped again: if gdb or the
launcher is killed, the kernel drops the events with their file descriptors and the target
runs on.  Needs gdb.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time

import gdb

from gdb_qznusnih.arm import batch
from gdb_qznusnih.arm.target import WatchError
from gdb_qznusnih.launcher import perf_watch
from gdb_qznusnih.options import WatchOptions, one_line
from gdb_qznusnih.perf.engine import PerfWatch
from gdb_qznusnih.perf.events import PerfError, watch_kinds
from gdb_qznusnih.perf.symbolizer import SymbolizerError
from gdb_qznusnih.record.summary import RunningTime
from gdb_qznusnih.sinks.status_line import StatusLine

# gdb handles these on its main thread; our threads must never take them (gdb 14 has
# gdb.block_signals() for this, gdb 13 not).
_GDB_SIGNALS = {
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
    signal.SIGCHLD, signal.SIGALRM, signal.SIGWINCH, signal.SIGTSTP, signal.SIGCONT,
}  # fmt: skip
_JOIN_POLL_S = 0.05  # how often gdb's thread, waiting for the consumer, sees a signal
_WHOLE_SYSTEM_OPTIONS = (("pid", "--pid"), ("cr3", "--cr3"))


def debug_registers_needed(opts: WatchOptions) -> int:
    """One per breakpoint event: read/write and write-only, or write-only alone (--access w)."""
    return len(watch_kinds(opts.access))


def choose_engine(opts: WatchOptions, inferior: gdb.Inferior) -> tuple[str, str | None]:
    """("perf" or "gdb", why) for a watch on `inferior`; why is None for --engine gdb (the
    armed line stays as it always was).  WatchError for --engine perf that cannot be."""
    if opts.engine == "gdb":
        return "gdb", None
    problem = _not_native(inferior) or _whole_system_option(opts) or _stops_inside_gdb(opts)
    if problem is None:
        try:
            return perf_watch.choose_engine(opts, inferior.pid)
        except perf_watch.EngineError as error:
            raise WatchError(str(error)) from None
    if opts.engine == "perf":
        raise WatchError(problem)
    return "gdb", problem


def _not_native(inferior: gdb.Inferior) -> str | None:
    connection = inferior.connection
    kind = connection.type if connection is not None else None
    if kind == "native":
        return None
    if kind == "core":
        return "a core file: perf events watch a live process"
    return f"a {kind or 'non-native'} target: perf events watch a process of this machine"


def _stops_inside_gdb(opts: WatchOptions) -> str | None:
    """--stop-if at gdb's prompt stops the program at the access: only gdb's watchpoint can."""
    if opts.stop_if is not None and not batch.in_batch_mode():
        return "--stop-if inside gdb stops the program there: the gdb engine"
    return None


def _whole_system_option(opts: WatchOptions) -> str | None:
    for name, flag in _WHOLE_SYSTEM_OPTIONS:
        if getattr(opts, name) is not None:
            return f"{flag} is for gdb's whole-system (QEMU) watches"
    return None


@contextlib.contextmanager
def _gdb_signals_blocked():
    """Threads started inside inherit a mask without the signals gdb handles."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _GDB_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class PerfSession(RunningTime):
    """A perf watch in the registry, beside the gdb engine's WatchSession (same interface)."""

    watchpoint = None  # no gdb breakpoint: --stop is gdb-only
    kernel = None
    interrupted = False
    detaching = False  # run_detached(): gdb's exit event for its detach is not the target's

    def __init__(
        self, number: int, opts: WatchOptions, address: int, sinks, caches, pid: int, say=None
    ):
        self.number = number
        self.opts = opts
        self.address = address
        self.length = opts.length
        self.sinks = sinks
        self.caches = caches
        self.pid = pid
        self.status = StatusLine(enabled=False)  # the consumer thread writes the stream
        self.object_size: int | None = None
        self.on_done = None  # on_done(session): ended by itself, called on the consumer thread
        self.loss = None  # set once settled
        self._closed = False
        self._stopping = threading.Event()
        self._consumer_done = threading.Event()
        self._drained = False  # the target's threads are all gone
        self._switch_interval = sys.getswitchinterval()
        self._say = say or (lambda text: None)  # one `qzn:` line, on gdb's thread
        # The watch's notes (a fork, a SIGSTOP), said on gdb's thread: by a posted event
        # inside gdb; in -batch gdb's thread sits in run_detached(), whose loop says them.
        self._notes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._post_notes = not batch.in_batch_mode()
        request = perf_watch.watch_request(opts, pid, address, number)
        self._config_notes: list[str] = []  # e.g. kernel mode not permitted
        try:
            self._symbolizer = perf_watch.start_symbolizer(pid)
        except perf_watch.EngineError as error:
            raise WatchError(str(error)) from None
        self.watch = PerfWatch(
            request,
            sinks,
            perf_watch.capture_config(opts, pid, note=self._config_notes.append),
            symbolizer=self._symbolizer,
            caches=caches,
            note=self._queue_note,
        )
        self._pidfd = perf_watch.open_pidfd(pid)
        try:
            self._start()
        except BaseException:
            self._close()
            raise

    def _start(self) -> None:
        try:
            with _gdb_signals_blocked():
                self.watch.arm()
                consumer = threading.Thread(
                    target=self._consume, name=f"qzn-perf-{self.number}", daemon=True
                )
                consumer.start()
        except (PerfError, SymbolizerError) as error:
            raise WatchError(str(error)) from None
        except OSError as error:
            raise WatchError(
                f"cannot read {self.address:#x} in process {self.pid}: {error}"
            ) from None
        # The drain thread needs the GIL often to empty the rings.
        sys.setswitchinterval(perf_watch.SWITCH_INTERVAL_S)

    def code_namer(self):
        """`prog+0x1234` for code without symbols, from the symbolizer's module map."""
        return perf_watch.code_namer(self._symbolizer)

    @property
    def notes(self) -> list[str]:
        return self._config_notes + self.watch.notes

    # -- the consumer thread: no gdb API here but post_event ---------------------------

    def _queue_note(self, text: str) -> None:
        self._notes.put(text)
        if self._post_notes:
            gdb.post_event(self.say_notes)

    def say_notes(self) -> None:
        """Say the notes the watch has made so far; on gdb's thread."""
        while True:
            try:
                text = self._notes.get_nowait()
            except queue.Empty:
                return
            self._say(text)

    def _consume(self) -> None:
        watch = self.watch
        deadline = time.monotonic() + self.opts.duration if self.opts.duration else None
        try:
            while not self._stopping.is_set() and watch.finish_reason is None:
                if deadline is not None and time.monotonic() >= deadline:
                    watch.finish(f"--duration {self.opts.duration:g}s reached")
                elif not watch.poll():
                    self._drained = True
                    break
        except Exception as error:  # the symbolizer died, ...: end the watch, say why
            watch.finish(f"the perf engine failed: {one_line(error)}", log_more=False)
        finally:
            self._consumer_done.set()
        if not self._stopping.is_set() and self.on_done is not None:
            self.on_done(self)

    def _wait_for_consumer(self, timeout: float | None = None) -> bool:
        """Whether the consumer thread is done, waiting up to `timeout` (None: until it is).

        Not Thread.join(): a KeyboardInterrupt in join() can leave the thread taken for
        ended while it still logs (Python 3.11), and two threads would write records."""
        if timeout is not None:
            return self._consumer_done.wait(timeout)
        while True:
            try:
                if self._consumer_done.wait(_JOIN_POLL_S):
                    return True
            except KeyboardInterrupt:
                continue  # the watch is ending already: a second stop signal changes nothing

    @property
    def drained(self) -> bool:
        return self._drained

    # -- batch: the target runs free ---------------------------------------------------

    def run_detached(self) -> int | None:
        """-batch: detach the target (it runs on, never stopped again) and wait for the
        watch to end: the target's exit, exec, --count, --duration or a stop signal.  The
        signal that killed the target, if that ended the watch."""
        self.detaching = True
        gdb.execute("detach", to_string=True)
        relay = batch.StopRelay()  # SIGTERM and SIGHUP come as gdb's SIGINT
        relay.install(None)  # --duration: the consumer's own deadline
        try:
            while not self._consumer_done.is_set():
                try:
                    self.say_notes()
                    self._wait_for_consumer(_JOIN_POLL_S)
                except KeyboardInterrupt:
                    self.finish(batch.interrupt_reason(relay, self))
        finally:
            relay.uninstall()
        if self.finish_reason is not None:
            return None
        reason, killed_by = perf_watch.target_end(self.pid, self._pidfd)
        self.finish(reason)
        return killed_by

    # -- the registry's interface -------------------------------------------------

    @property
    def summary(self):
        return self.watch.summary

    @property
    def finish_reason(self) -> str | None:
        return self.watch.finish_reason

    @property
    def sink_error(self) -> str | None:
        return self.watch.sink_error

    @property
    def logged(self) -> int:
        return self.watch.seq

    def finish(self, reason: str) -> None:
        """End the watch, logging what the rings hold first: a --count met in them is then
        the reason, as the gdb engine (which ends at that very hit) says."""
        self._settle()
        self.watch.finish(reason)

    def _settle(self) -> None:
        """Stop the consumer, disarm, and log what the rings still hold.  Idempotent."""
        if self.loss is not None:
            return
        self._stopping.set()
        self._wait_for_consumer()
        self.loss = self.watch.stop()
        self.say_notes()

    def counts(self) -> tuple[int, int]:
        return self.summary.reads, self.summary.writes

    def remove(self) -> None:
        """Settle (see finish) and close.  Idempotent."""
        if self._closed:
            return
        try:
            self._settle()
        finally:
            self._close()

    @property
    def accesses_lost(self) -> bool:
        return self.loss is not None and self.loss.any

    def loss_text(self) -> str:
        """`lost: …` for the summary when accesses were not logged, and `behind: …` when
        samples waited on disk, as `watch` says it."""
        return "" if self.loss is None else self.loss.lines()

    def symbols_changed(self) -> None:
        """Nothing: the symbolizer follows the target's mappings from the ring."""

    def address_space_changed(self) -> None:
        """Nothing: an exec ends the watch (the ring's COMM record says so)."""

    def _close(self) -> None:
        self._closed = True
        self.watch.close()
        self._symbolizer.close()
        self._symbolizer.modules.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.sinks.close()
        sys.setswitchinterval(self._switch_interval)
