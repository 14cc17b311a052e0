"""The set of armed watches, and arming and ending them.  Needs gdb."""

from __future__ import annotations

import dataclasses
import os
import time

import gdb

from gdb_qznusnih.arm import at_location, perf_session, stack_scope, target
from gdb_qznusnih.arm.batch import BetweenWatches, in_batch_mode, run_until_done
from gdb_qznusnih.arm.describe import (
    armed_text,
    debug_registers_text,
    killed_exit_status,
    larger_object_note,
    target_end_text,
)
from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.hit.session import WatchSession, write_out
from gdb_qznusnih.launcher import preflight
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
        inferior = target.require_live_process()
        engine, why = perf_session.choose_engine(opts, inferior)
        whole_system = target.is_whole_system(opts.system)
        caches = CacheRegistry()
        kernel = _kernel_view(opts, caches) if whole_system else None
        if self.wants_monitoring() and not whole_system:
            _refuse_a_stopped_process(inferior.pid)
        if opts.at_every:
            _check_at_every(opts.at_every)
        address, object_size = target.evaluate_address(opts.address)
        target.check_address(address, opts.length, whole_system)
        owner = None
        if not whole_system:
            owner = stack_scope.frame_holding(address, opts.length, target.word_size())
            if owner is not None and preflight.literal_address(opts.address) is not None:
                owner.scoped = False
            if owner is not None and owner.scoped and engine == "perf":
                engine, why = _stack_slot_engine(opts, owner)
            self._check_capacity(address, opts, engine)
        fd = status_fd(os.environ)
        # The perf engine's records are written by a thread of their own: no status line.
        status = StatusLine(fd, enabled=engine == "gdb" and in_batch_mode() and os.isatty(fd))
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
            if engine == "perf":
                pid = inferior.pid
                session = perf_session.PerfSession(
                    number, opts, address, sinks, caches, pid, say=_note
                )
                session.on_done = self._ended_by_itself
            else:
                session = WatchSession(number, opts, address, sinks, caches, kernel, status)
                session.on_failure = self._hit_failed
            session.object_size = object_size
            session.scope_end = stack_scope.end_with_frame(session, owner)
            if engine == "perf":  # its module map outlives the target, which runs free
                session.summary.name_code = session.code_namer()
            elif not whole_system:
                session.summary.name_code = preflight.code_namer(inferior.pid)
        except Exception:
            sinks.close()
            raise
        self._next_number += 1
        self.sessions[number] = session
        self._connect()
        pid = kernel.want_pid if kernel is not None and kernel.want_pid else inferior.pid
        for note in getattr(session, "notes", ()):
            _note(note)
        engine_detail = f"engine {engine} ({why})" if why is not None else None
        _note(_armed_message(session, pid, kernel, owner, engine_detail))
        return session

    def _check_capacity(self, address: int, opts: WatchOptions, engine: str) -> None:
        ours = sum(debug_registers_used(s) for s in self.sessions.values())
        needed = (
            perf_session.debug_registers_needed(opts)
            if engine == "perf"
            else target.registers_needed(address, opts.length)
        )
        used = ours + target.user_hardware_slots_in_use()
        if used + needed > target.DEBUG_REGISTERS:
            # The kernel gives perf events and gdb's watchpoints the same four registers.
            want = f", the perf engine needs {needed}" if engine == "perf" else ""
            raise target.WatchError(
                f"no debug register left: {used} of {target.DEBUG_REGISTERS} in use{want}; "
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
        write_out(session.summary.format(session.sinks.colorizer) + session.loss_text())
        if session.sink_error and not in_batch_mode():
            _note(f"error: {session.sink_error}")  # in batch, qzn-watch fails with it
        _note(f"watch {session.number} ended: {session.finish_reason}")
        if report:
            write_report(session)
        return True

    def end_all(self, reason: str) -> None:
        for session in list(self.sessions.values()):
            self.end(session, reason)

    def monitor(self, session: WatchSession) -> int | None:
        """Batch mode: run the target under the watch, then detach it.

        After an exec, `--follow-exec EXPR` arms a new watch on EXPR in the new program; each
        time the --at-every location is reached, a new watch on the same ADDR is armed there.
        Returns the exit status gdb should end with when the target died of a signal, else None.
        """
        if isinstance(session, perf_session.PerfSession):
            return self._monitor_detached(session)
        generation = 0
        arms = 1  # watches armed at the --at-every location
        ended = []
        first_opts = session.opts  # the log prefix the --at-every watches number from
        try:
            rearm = _rearm_breakpoint(session.opts.at_every)
        except (target.WatchError, gdb.error) as error:
            self.end(session, f"--at-every {session.opts.at_every}: {error}")
            return None
        try:
            while session is not None:
                scope = session.scope_end
                try:
                    outcome = run_until_done(session, _note, rearm)
                finally:
                    # The target's exit may have ended it already, report and all.
                    if self.end(session, report=False):
                        ended.append(session)
                opts, whole_system = session.opts, session.kernel is not None
                session = None
                if outcome.exec_path and opts.follow_exec:
                    generation += 1
                    session = self._arm_after_exec(opts, opts.follow_exec, generation)
                elif rearm is not None:
                    if scope is not None and scope.fired:
                        outcome = _wait_for_location(rearm, opts)
                    if outcome.reached_again:
                        arms += 1
                        session = self._arm_again(first_opts, arms)
            self._detach(outcome)
        finally:
            if rearm is not None and rearm.is_valid():
                rearm.delete()
            # The HTML report takes a while on a long log: write it with the target running.
            for done in ended:
                write_report(done)
        if outcome.killed_by is None or whole_system:
            return None
        return killed_exit_status(outcome.killed_by)

    @staticmethod
    def _detach(outcome) -> None:
        pid = gdb.selected_inferior().pid
        if pid == 0:
            return
        try:
            if outcome.job_stopped:
                target.detach_keeping_job_control_stop(pid)
            else:
                gdb.execute("detach", to_string=True)
        except gdb.error as error:
            _note(f"detach failed: {error}")

    def _monitor_detached(self, session: perf_session.PerfSession) -> int | None:
        """Batch mode, perf engine: the target runs free from here; then the summary.  The
        exit status gdb ends with when the target died of a signal, else None."""
        try:
            killed_by = session.run_detached()
        finally:
            self.end(session, report=False)
        write_report(session)
        return None if killed_by is None else killed_exit_status(killed_by)

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

    def _arm_again(self, opts, nth: int):
        """The nth watch of --at-every, on the same ADDR where the location is reached again,
        logging to PREFIX.at<nth>; None if it cannot be armed there."""
        opts = dataclasses.replace(opts, log=f"{opts.log}.at{nth}" if opts.log else None)
        try:
            return self.arm(opts)
        except (target.WatchError, gdb.error) as error:
            _note(f"--at-every {opts.at_every}: {error}")
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

    def _ended_by_itself(self, session) -> None:
        """A perf watch's consumer thread ended (--count, exec, ...): end it on gdb's thread.

        In -batch, run_detached() ends it; a target that exited is ended by gdb's exit event.
        """
        if not in_batch_mode() and not session.drained:
            gdb.post_event(lambda: self.end(session))

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
        if self._detaching_perf_watch():
            return  # gdb takes its detach for an exit; the target runs on, watched
        code = getattr(event, "exit_code", None)
        killed_by = target.signal_name(target.exit_signal()) if code is None else None
        reason = target_end_text(code, killed_by)
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

    def _detaching_perf_watch(self) -> bool:
        return any(
            isinstance(s, perf_session.PerfSession) and s.detaching for s in self.sessions.values()
        )

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


def _rearm_breakpoint(location: str | None):
    return at_location.break_at(location) if location else None


def _wait_for_location(rearm, opts: WatchOptions):
    """--at-every after a stack slot's frame returned: the target runs with no watch until it
    reaches the location again (the Outcome says so), or ends."""
    outcome = run_until_done(BetweenWatches(opts), _note, rearm)
    if not outcome.reached_again:
        _note(f"no watch armed: {outcome.reason}")
    return outcome


def _check_at_every(location: str) -> None:
    if not in_batch_mode():
        raise target.WatchError(
            "--at-every needs gdb -batch (as in 'qznusnih run --at-every LOCATION'); "
            "inside gdb, arm a watch at each stop there instead"
        )
    at_location.check_found(location)


def _stack_slot_engine(opts: WatchOptions, owner) -> tuple[str, str]:
    """A stack slot's watch ends when its frame returns, which only gdb can catch."""
    why = f"ADDR is a stack slot of {owner.function}(): only gdb sees its frame return"
    if opts.engine == "perf":
        raise target.WatchError(f"--engine perf cannot watch it: {why}; use --engine gdb")
    return "gdb", why


def debug_registers_used(session) -> int:
    """What a watch takes of its process's 4 debug registers (for qzn-status too)."""
    if isinstance(session, perf_session.PerfSession):
        return perf_session.debug_registers_needed(session.opts)
    return target.registers_needed(session.address, session.length)


def _armed_message(session, pid: int, kernel, owner, engine_detail: str | None) -> str:
    details = [kernel.describe()] if kernel is not None else []
    if owner is not None and not owner.scoped:
        details.append(owner.kept())
    elif owner is not None:
        details.append(owner.describe() if session.scope_end is not None else owner.unscoped())
    if engine_detail is not None:
        details.append(engine_detail)
    if isinstance(session, perf_session.PerfSession):
        details.append(debug_registers_text(debug_registers_used(session)))
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
