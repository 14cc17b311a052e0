"""The set of armed watches, and arming and ending them.  Needs gdb."""

from __future__ import annotations

import dataclasses
import os
import time

import gdb

from gdb_qznusnih.arm import target
from gdb_qznusnih.arm.batch import in_batch_mode, run_until_done
from gdb_qznusnih.arm.describe import armed_text, larger_object_note
from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.hit.session import WatchSession, write_out
from gdb_qznusnih.options import WatchOptions
from gdb_qznusnih.report.build import ReportError
from gdb_qznusnih.report.cli import write_html_report
from gdb_qznusnih.sinks.colour import check_style, resolve_color
from gdb_qznusnih.sinks.logs import LogSinks, SinkError, write_all
from gdb_qznusnih.sinks.status_line import StatusLine, status_fd


class WatchRegistry:
    """Armed watches by number; ends them on exit and when they finish."""

    def __init__(self) -> None:
        self.sessions: dict[int, WatchSession] = {}
        self._next_number = 1
        self._connected = False

    # -- arming -------------------------------------------------------------

    def arm(self, opts: WatchOptions) -> WatchSession:
        if opts.engine == "perf":
            raise target.WatchError(
                "qzn-watch --engine perf is not available inside gdb yet; watch a running "
                "process with 'qznusnih watch ADDR PID --engine perf'"
            )
        inferior = target.require_live_process()
        whole_system = target.is_whole_system(opts.system)
        caches = CacheRegistry()
        kernel = _kernel_view(opts, caches) if whole_system else None
        if self.wants_monitoring() and not whole_system:
            _refuse_a_stopped_process(inferior.pid)
        address, object_size = target.evaluate_address(opts.address)
        target.check_address(address, opts.length, whole_system)
        if not whole_system:
            self._check_capacity(address, opts.length)
        fd = status_fd(os.environ)
        status = StatusLine(fd, enabled=in_batch_mode() and os.isatty(fd))
        try:
            check_style(opts.style)
            sinks = LogSinks(
                prefix=opts.log,
                color=resolve_color(opts.color, os.isatty(1), os.environ),
                color_files=opts.color == "always",
                style=opts.style,
                quiet=opts.quiet,
                show_args=opts.args,
                writer=status.terminal_writer() if status.enabled else None,
                caches=caches,
            )
            sinks.open()
        except (ValueError, SinkError) as error:
            raise target.WatchError(str(error)) from None
        number = self._next_number
        try:
            session = WatchSession(number, opts, address, sinks, caches, kernel, status)
            session.on_failure = self._hit_failed
            session.object_size = object_size
        except Exception:
            sinks.close()
            raise
        self._next_number += 1
        self.sessions[number] = session
        self._connect()
        pid = kernel.want_pid if kernel is not None and kernel.want_pid else inferior.pid
        _note(_armed_message(session, pid, kernel))
        return session

    def _check_capacity(self, address: int, length: int) -> None:
        ours = sum(target.registers_needed(s.address, s.length) for s in self.sessions.values())
        needed = target.registers_needed(address, length)
        used = ours + target.user_hardware_slots_in_use()
        if used + needed > target.DEBUG_REGISTERS:
            raise target.WatchError(
                f"no debug register left: {used} of {target.DEBUG_REGISTERS} in use; "
                "free one with 'qzn-unwatch N' or 'delete' on a hardware watchpoint"
            )

    # -- ending -------------------------------------------------------------

    def end(self, session: WatchSession, reason: str | None = None, report: bool = True) -> bool:
        """Remove a watch, close its logs and print its summary; False if it had ended already.

        `report=False` leaves the HTML report to the caller (`write_report`), e.g. until the
        target has been detached and runs on.
        """
        if self.sessions.pop(session.number, None) is None:
            return False
        if reason is not None:
            session.finish(reason)
        session.summary.end = time.time()
        session.paused()
        session.status.clear()
        session.remove()
        write_out(session.summary.format(session.sinks.colorizer))
        if session.sink_error and not in_batch_mode():
            _note(f"error: {session.sink_error}")  # in batch, qzn-watch fails with it
        _note(f"watch {session.number} ended: {session.finish_reason}")
        if report:
            write_report(session)
        return True

    def end_all(self, reason: str) -> None:
        for session in list(self.sessions.values()):
            self.end(session, reason)

    def monitor(self, session: WatchSession) -> None:
        """Batch mode: run the target under the watch, then detach it.

        After an exec, `--follow-exec EXPR` arms a new watch on EXPR in the new program.
        """
        generation = 0
        ended = []
        try:
            while session is not None:
                try:
                    outcome = run_until_done(session, _note)
                finally:
                    # The target's exit may have ended it already, report and all.
                    if self.end(session, report=False):
                        ended.append(session)
                opts = session.opts
                session = None
                if outcome.exec_path and opts.follow_exec:
                    generation += 1
                    session = self._arm_after_exec(opts, opts.follow_exec, generation)
            pid = gdb.selected_inferior().pid
            if pid != 0:
                try:
                    if outcome.job_stopped:
                        target.detach_keeping_job_control_stop(pid)
                    else:
                        gdb.execute("detach", to_string=True)
                except gdb.error as error:
                    _note(f"detach failed: {error}")
        finally:
            # The HTML report takes a while on a long log: write it with the target running.
            for done in ended:
                write_report(done)

    def _arm_after_exec(self, opts, expression: str, generation: int):
        """A new watch on `expression` in the program that exec loaded; None if it fails."""
        opts = dataclasses.replace(
            opts,
            address=expression,
            log=f"{opts.log}.exec{generation}" if opts.log else None,
        )
        try:
            session = self.arm(opts)
            target.refresh_debug_registers(session.address)
            return session
        except (target.WatchError, gdb.error) as error:
            _note(f"--follow-exec {expression}: {error}")
            return None

    @staticmethod
    def wants_monitoring() -> bool:
        return in_batch_mode()

    # -- events -------------------------------------------------------------

    def _connect(self) -> None:
        if not self._connected:
            gdb.events.stop.connect(self._on_stop)
            gdb.events.cont.connect(self._on_cont)
            gdb.events.exited.connect(self._on_exit)
            gdb.events.new_objfile.connect(self._on_new_objfile)
            gdb.events.clear_objfiles.connect(self._on_clear_objfiles)
            self._connected = True

    def _on_cont(self, event) -> None:
        for session in self.sessions.values():
            session.resumed()

    def _on_stop(self, event) -> None:
        hit = set(getattr(event, "breakpoints", ()))
        for session in list(self.sessions.values()):
            session.paused()
            if session.opts.stop and session.watchpoint in hit and not in_batch_mode():
                _print_location()
            if session.finish_reason is not None and not in_batch_mode():
                self.end(session)

    def _on_new_objfile(self, event) -> None:
        for session in self.sessions.values():
            session.symbols_changed()

    def _on_clear_objfiles(self, event) -> None:
        # gdb drops a program space's objfiles when it execs: a new address space.
        for session in self.sessions.values():
            session.address_space_changed()

    def _on_exit(self, event) -> None:
        code = getattr(event, "exit_code", None)
        reason = "target exited" + (f" with code {code}" if code is not None else "")
        # A remote target being torn down: its stub closed the connection (QEMU died).
        connection = event.inferior.connection
        torn_down = connection is None
        # A remote stub's end without an exit code (gone, or the guard's "killed" for a QEMU
        # that died) is the machine going away, whichever way gdb learnt of it.
        remote = torn_down or connection.type in ("remote", "extended-remote")
        if remote and code is None:
            reason = "lost the connection to the target"
        if not (torn_down or in_batch_mode()):
            self.end_all(reason)
            return
        # Ending a watch deletes breakpoints and writes the report: not inside gdb's exit
        # handling, where a torn-down remote target frees them twice and a stop signal is
        # taken twice.  In batch mode monitor() ends them once `continue` returns (an event
        # still posted when gdb exits crashes it), else a posted event does.
        for session in self.sessions.values():
            session.finish(reason)
        if self.sessions and not in_batch_mode():
            gdb.post_event(lambda: self.end_all(reason))

    def _hit_failed(self, session: WatchSession, error: Exception) -> bool:
        """A hit raised: one line on what was lost; the watch ends, the target runs on.

        No breakpoint may be deleted inside a hit: in batch mode the stop this asks for
        returns monitor()'s `continue`, which ends the watch and detaches; inside an
        interactive gdb a posted event ends it and the program does not stop.
        """
        what = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        _note(
            f"watch {session.number}: error in a hit ({what}); that access is not logged, "
            f"the {session.logged} before it are; the watch ends"
        )
        if in_batch_mode():
            return True
        gdb.post_event(lambda: self.end(session))
        return False


def write_report(session: WatchSession) -> None:
    """PREFIX.html from an ended watch's log, when there is one, and a note of its path.

    A stop signal (KeyboardInterrupt) while it is written leaves the old report and is taken
    as "skip the report": the watch's logs, summary and exit status are already settled.
    """
    if not session.opts.log or session.sink_error or session.opts.no_html:
        return
    jsonl, html = session.opts.log + ".jsonl", session.opts.log + ".html"
    try:
        write_html_report(jsonl, html, style=session.opts.style)
    except ReportError as error:
        _note(f"no HTML report: {error}")
        return
    except KeyboardInterrupt:
        _note(
            f"no HTML report: interrupted, {html} left as it was; make it with "
            f"'qznusnih report {jsonl} --format html --output {html}'"
        )
        return
    _note(f"report: {html}")


def _refuse_a_stopped_process(pid: int) -> None:
    """A batch watch would resume a process in a job-control stop: leave it stopped, say so."""
    if not target.in_job_control_stop():
        return
    target.detach_keeping_job_control_stop(pid)
    raise target.WatchError(
        f"process {pid} is stopped (SIGSTOP or Ctrl-Z) and a watch would resume it, "
        f"so it is left stopped; resume it with 'kill -CONT {pid}', then watch it"
    )


def _kernel_view(opts: WatchOptions, caches: CacheRegistry):
    from gdb_qznusnih.hit.kernel import KernelView  # only whole-system mode needs it

    return KernelView.detect(opts.pid, opts.cr3, caches)


def _armed_message(session: WatchSession, pid: int, kernel) -> str:
    details = [kernel.describe()] if kernel is not None else []
    object_size = session.object_size
    if object_size is not None and object_size > session.length:
        details.append(larger_object_note(object_size, session.length))
    return armed_text(
        session.number,
        session.opts.access,
        session.length,
        session.address,
        session.opts.address,
        pid,
        details,
        session.sinks.paths,
    )


def _print_location() -> None:
    """gdb's usual line for a stop, as after a plain watchpoint: `store_new () at m.c:20`
    and the source line (our watchpoint is silent; it logged the hit already)."""
    try:
        text = gdb.execute("frame", to_string=True)
    except gdb.error:
        return
    gdb.write(text[4:] if text.startswith("#0  ") else text)


def _note(text: str) -> None:
    """One status line on stderr, where it does not mix with the record stream."""
    # Straight to fd 2: inside a captured `continue` gdb's own streams are redirected.
    write_all(2, f"qzn: {text}\n".encode("utf-8", "replace"))
