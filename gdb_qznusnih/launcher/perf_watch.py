"""`qznusnih watch --engine auto|perf|gdb`: which engine, and the watch by the perf engine.

With perf the launcher never ptrace-attaches the target: the kernel samples each access in
the debug trap (gdb_qznusnih.perf), a gdb attached to nothing symbolizes, and the records go
to the same sinks as the gdb engine's.  If the launcher is killed, the kernel drops the
events with their file descriptors: the target runs on unwatched.
"""

from __future__ import annotations

import errno
import gc
import os
import platform
import select
import signal
import sys
import threading
import time

from gdb_qznusnih import address_expression
from gdb_qznusnih.arm.describe import (
    armed_text,
    debug_registers_text,
    killed_exit_status,
    target_end_text,
)
from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.launcher import preflight, procfs
from gdb_qznusnih.options import OptionError, WatchOptions
from gdb_qznusnih.perf import abi
from gdb_qznusnih.perf.capture import (
    DEFAULT_RING_PAGES,
    CaptureConfig,
    raise_thread_priority,
    return_large_blocks_to_the_system,
    wakeup_events_for,
)
from gdb_qznusnih.perf.engine import Loss, PerfWatch, WatchRequest
from gdb_qznusnih.perf.events import (
    EventConfig,
    PerfError,
    breakpoint_attr,
    explain_open_error,
    online_cpus,
    read_perf_event_paranoid,
    watch_kinds,
)
from gdb_qznusnih.perf.job_control import stopped_at_arm_text
from gdb_qznusnih.perf.modules import ModuleMap
from gdb_qznusnih.perf.symbolizer import AddressError, Symbolizer, SymbolizerError
from gdb_qznusnih.report.build import ReportError
from gdb_qznusnih.report.cli import write_html_report
from gdb_qznusnih.sinks.colour import check_style, resolve_color
from gdb_qznusnih.sinks.logs import LogSinks, SinkError, write_all

CAP_PERFMON = 38
EXIT_OK, EXIT_ERROR, EXIT_LOST = 0, 1, 3
EXIT_WAIT_S = 1.0  # after the last thread's events end, for the process to be a zombie
PROBE_ADDRESS = 0x1000  # any aligned user address: the probe event is never enabled
# The drain thread needs the GIL to empty the rings: hand it over often (default 5 ms,
# during which a 4 MiB ring of 4 KiB samples fills at 70,000 hits/s).
SWITCH_INTERVAL_S = 0.0005
# Root's rings: 64 MiB a CPU, about 14,500 samples of 4 KiB of stack: 200 ms at 70,000
# hits/s, for a drain thread that other processes keep off the 2 CPUs; at most 256 MiB in
# all, so fewer on a machine of many CPUs (others keep the capture's default, under the
# locked-memory limit).
ROOT_RING_PAGES = 16384
ROOT_RINGS_TOTAL_PAGES = 65536
# At 700 the young generation was collected every ~160 records; at 20,000 every ~4,500, and
# the consumer makes 3-5 % more records a second (bench/bench_consumer.py).
GC_YOUNG_OBJECTS = 20_000
_GDB_ONLY = (
    ("stop", "--stop"), ("args", "--args"), ("follow_exec", "--follow-exec"),
    ("at_every", "--at-every"),
)  # fmt: skip


class EngineError(Exception):
    """The perf engine cannot watch this; the message is one line that says what to do."""


# ---------------------------------------------------------------- choosing the engine


def choose_engine(options: WatchOptions, pid: int) -> tuple[str, str]:
    """("perf" or "gdb", why), for the armed line; EngineError for --engine perf that
    cannot be."""
    if options.engine == "gdb":
        return "gdb", "--engine gdb"
    problem = _gdb_only_option(options) or _not_x86_64(pid) or perf_problem(pid)
    if problem is None:
        return "perf", perf_reason()
    if options.engine == "perf":
        raise EngineError(problem)
    return "gdb", problem


def _gdb_only_option(options: WatchOptions) -> str | None:
    for name, flag in _GDB_ONLY:
        if getattr(options, name):
            return f"{flag} needs the gdb engine (perf never stops the target)"
    return None


def _not_x86_64(pid: int) -> str | None:
    if platform.machine() != "x86_64":
        return f"the perf engine is for x86-64 only, not {platform.machine()}"
    try:
        with open(f"/proc/{pid}/exe", "rb") as exe:
            ident = exe.read(5)
    except OSError:
        return None  # not ours to read: the probe says why
    if ident[:4] == b"\x7fELF" and ident[4] == 1:
        return f"process {pid} is a 32-bit program: the perf engine reads 64-bit registers"
    return None


def perf_problem(pid: int, config: EventConfig | None = None) -> str | None:
    """None when perf breakpoint events may watch `pid`, else why not (one line).

    The probe opens one disabled write breakpoint on the process and closes it: the
    kernel's own permission checks (perf_event_paranoid, ptrace access, seccomp)."""
    config = config or EventConfig()
    attr = breakpoint_attr("w", PROBE_ADDRESS, 1, config)
    try:
        fd = abi.perf_event_open(attr, pid, -1)
    except OSError as error:
        if error.errno == errno.ENOSYS:
            return "this kernel has no perf_event_open"
        if error.errno == errno.ENOSPC:
            # Every debug register is taken (watches that fill all four): the probe, which
            # needs one, cannot tell; arming refuses then, naming the watch's own address.
            return None
        return explain_open_error(error.errno, pid, attr, config)
    os.close(fd)
    return None


def kernel_mode_problem(pid: int) -> str | None:
    """None when the kernel's own accesses may be watched too, else the one-line note.

    The kernel requires root, CAP_PERFMON or kernel.perf_event_paranoid <= 1 for an event
    that does not exclude kernel mode (perf_allow_kernel), even on one's own process."""
    if perf_problem(pid, EventConfig(exclude_kernel=False)) is None:
        return None
    paranoid = read_perf_event_paranoid()
    return (
        "kernel-mode accesses (read() into the bytes, copy_to_user...) are not visible: they "
        f"need root, CAP_PERFMON or kernel.perf_event_paranoid <= 1 (it is {paranoid}); "
        "logging user-mode accesses only"
    )


def perf_reason() -> str:
    """Why perf is permitted, for the armed line."""
    if os.geteuid() == 0:
        return "perf events permitted: root"
    status = preflight.read_my_status()
    if status.cap_eff & (1 << CAP_PERFMON):
        return "perf events permitted: CAP_PERFMON"
    paranoid = read_perf_event_paranoid()
    return f"perf events permitted: your process, kernel.perf_event_paranoid {paranoid}"


# ---------------------------------------------------------------- the watch


def watch_with_perf(
    options: WatchOptions, target: preflight.Target, stops, why: str, ring_pages: int | None
) -> int:
    """Watch until the target exits, a stop condition, or a stop signal; the exit status."""
    pid = target.pid
    try:
        check_style(options.style)
    except ValueError as error:
        raise EngineError(str(error)) from None
    symbolizer = start_symbolizer(pid)
    try:
        address = _address(options.address, symbolizer)
        warning = preflight.check_address(address, options.length, target, options.access)
        if warning:
            _note(warning)
        caches = CacheRegistry()
        sinks = _open_sinks(options, caches)
        try:
            return _watch(options, pid, address, symbolizer, sinks, caches, stops, why, ring_pages)
        finally:
            sinks.close()
    finally:
        symbolizer.close()


def start_symbolizer(pid: int) -> Symbolizer:
    """The perf engine's symbolizer (a gdb attached to nothing) for `pid`'s modules."""
    try:
        return Symbolizer(ModuleMap.from_pid(pid))
    except FileNotFoundError:
        raise EngineError(f"no process with PID {pid}; it may have exited") from None
    except OSError as error:
        raise EngineError(f"cannot read the modules of process {pid}: {error.strerror}") from None
    except SymbolizerError as error:
        raise EngineError(str(error)) from None


def _address(expression: str, symbolizer: Symbolizer) -> int:
    literal = preflight.literal_address(expression)
    if literal is not None:
        return literal
    try:
        address_expression.check_read_only(expression)
        return symbolizer.address(expression)
    except (address_expression.ExpressionError, AddressError) as error:
        raise OptionError(str(error)) from None
    except SymbolizerError as error:
        raise EngineError(str(error)) from None


def _open_sinks(options: WatchOptions, caches: CacheRegistry) -> LogSinks:
    sinks = LogSinks(
        prefix=options.log,
        color=resolve_color(options.color, os.isatty(1), os.environ),
        color_files=options.color == "always",
        style=options.style,
        quiet=options.quiet,
        caches=caches,
    )
    try:
        sinks.open()
    except SinkError as error:
        raise EngineError(str(error)) from None
    return sinks


def _watch(options, pid, address, symbolizer, sinks, caches, stops, why, ring_pages) -> int:
    request = watch_request(options, pid, address)
    config = capture_config(options, pid, ring_pages)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return_large_blocks_to_the_system()  # memory flat however long the watch
    watch = PerfWatch(request, sinks, config, symbolizer=symbolizer, caches=caches, note=_note)
    watch.summary.name_code = code_namer(symbolizer)
    pidfd = open_pidfd(pid)
    # The drain thread needs the GIL from this thread: at a lower priority, this thread
    # could be preempted while holding it and starve the drain thread (priority inversion).
    nice = raise_thread_priority()
    try:
        try:
            watch.arm()
        except (PerfError, SymbolizerError) as error:
            raise EngineError(str(error)) from None
        except OSError as error:
            raise EngineError(f"cannot read {address:#x} in process {pid}: {error}") from None
        collect_seldom()
        for note in watch.notes:
            _note(note)
        details = [f"engine perf ({why})", debug_registers_text(len(config.events.kinds))]
        if not config.events.exclude_kernel:
            details.append("kernel-mode accesses too")
        if watch.target_stopped:
            details.append(stopped_at_arm_text(pid))
        shown = (options.access, options.length, address, options.address, pid)
        _note(armed_text(1, *shown, details, sinks.paths))
        killed_by = _run(watch, options, stops, pid, pidfd)
        loss = watch.stop()
    finally:
        watch.close()
        if pidfd is not None:
            os.close(pidfd)
        _restore_priority(nice)
    status = _end(watch, options, loss, sinks)
    return killed_exit_status(killed_by) if killed_by and status != EXIT_ERROR else status


def collect_seldom() -> None:
    """Keep the garbage collector off the consumer's hot path: what arming made (module
    maps, symbols) is never scanned again, and the young generation, where each record's
    objects come and go (freed as they are dropped: they make no cycles), is collected every
    GC_YOUNG_OBJECTS allocations instead of 700.  For the launcher's own process only."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])


def code_namer(symbolizer: Symbolizer):
    """`prog+0x1234` from the symbolizer's module map, which outlives the target: its records
    may be read after it has exited.  A code mapping at file offset O lies O past the load
    address."""

    def name(pc: int) -> str | None:
        module = symbolizer.modules.find(pc)
        if module is None or not module.path.startswith("/"):
            return None
        return preflight.module_offset_text(module.path, pc - module.start + module.mapping.offset)

    return name


def watch_request(options: WatchOptions, pid: int, address: int, number: int = 1) -> WatchRequest:
    return WatchRequest(
        pid, address, options.length, options.access, options.bt_depth, options.count, number,
        if_cond=options.if_cond, stop_if=options.stop_if,
    )  # fmt: skip


def capture_config(
    options: WatchOptions, pid: int, ring_pages: int | None = None, note=None
) -> CaptureConfig:
    """The rings and events for `options`; `ring_pages` None: root's big rings or the default.
    Kernel mode is watched where the kernel allows it; else `note` (default: stderr) says so."""
    if ring_pages is None:
        ring_pages = (
            root_ring_pages(len(online_cpus())) if os.geteuid() == 0 else DEFAULT_RING_PAGES
        )
    kernel_problem = kernel_mode_problem(pid)
    if kernel_problem is not None:
        (note or _note)(kernel_problem)
    events = EventConfig(
        stack_bytes=options.stack_bytes,
        exclude_kernel=bool(kernel_problem),
        wakeup_events=wakeup_events_for(ring_pages, options.stack_bytes),
        kinds=watch_kinds(options.access),
    )
    return CaptureConfig(events=events, ring_pages=ring_pages)


def root_ring_pages(cpus: int) -> int:
    """Data pages of each CPU's ring for root: ROOT_RING_PAGES, or a smaller power of 2 that
    keeps all of them within ROOT_RINGS_TOTAL_PAGES; never under the default."""
    pages = ROOT_RING_PAGES
    while pages > DEFAULT_RING_PAGES and pages * cpus > ROOT_RINGS_TOTAL_PAGES:
        pages //= 2
    return pages


def _restore_priority(nice: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except PermissionError:
        pass


def _run(watch: PerfWatch, options: WatchOptions, stops, pid: int, pidfd: int | None):
    """Until the watch finishes; the signal that killed the target, if that ended it."""
    deadline = time.monotonic() + options.duration if options.duration else None
    while watch.finish_reason is None:
        stops.drain()
        if stops.signum is not None:
            watch.finish(_signal_reason(stops.signum))
        elif deadline is not None and time.monotonic() >= deadline:
            watch.finish(f"--duration {options.duration:g}s reached")
        elif not _poll(watch):
            reason, killed_by = target_end(pid, pidfd)
            watch.finish(reason)
            return killed_by
    return None


def _poll(watch: PerfWatch) -> bool:
    try:
        return watch.poll()
    except (SymbolizerError, PerfError) as error:
        raise EngineError(str(error)) from None


def _signal_reason(signum: int) -> str:
    return f"{signal.Signals(signum).name} received"  # as the gdb engine names it


def _end(watch: PerfWatch, options: WatchOptions, loss: Loss, sinks: LogSinks) -> int:
    _write_out(watch.summary.format(sinks.colorizer))
    _write_out(loss.lines())
    if watch.sink_error:
        _note(f"error: {watch.sink_error}")
    _note(f"watch 1 ended: {watch.finish_reason}")
    if options.log and not options.no_html and not watch.sink_error:
        _write_report(options)
    if watch.sink_error:
        return EXIT_ERROR
    return EXIT_LOST if loss.any else EXIT_OK


def _write_report(options: WatchOptions) -> None:
    jsonl, html = options.log + ".jsonl", options.log + ".html"
    try:
        write_html_report(jsonl, html, style=options.style)
    except ReportError as error:
        _note(f"no HTML report: {error}")
        return
    _note(f"report: {html}")


def open_pidfd(pid: int) -> int | None:
    """A pidfd of `pid` (select() wakes when it ends), None where there is none."""
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def target_end(pid: int, pidfd: int | None) -> tuple[str, int | None]:
    """How the target ended, as the gdb engine says it, and the signal that killed it: its
    status is readable while it is a zombie (field 52 of /proc/PID/stat), until its parent
    reaps it."""
    if pidfd is not None:
        select.select([pidfd], [], [], EXIT_WAIT_S)
    fields = procfs.read_stat_fields(pid)
    if not fields or fields[0] not in ("Z", "X") or len(fields) < 50:
        return target_end_text(), None
    status = int(fields[49])
    if status & 0x7F:
        return target_end_text(signal_name=signal.Signals(status & 0x7F).name), status & 0x7F
    return target_end_text(status >> 8 & 0xFF), None


def _note(text: str) -> None:
    write_all(2, f"qzn: {text}\n".encode("utf-8", "replace"))


def _write_out(text: str) -> None:
    try:
        write_all(1, text.encode("utf-8", "replace"))
    except OSError:
        pass  # stdout gone (| head): the logs and the exit status still say it
    sys.stdout.flush()
