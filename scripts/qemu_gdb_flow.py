"""gdb script run by scripts/run_qemu_gdb.sh: connect to QEMU's gdbstub, then the watch flow.

Settings come from the environment (run_qemu_gdb.sh sets them):
  QZN_GDBSTUB      the gdbstub's unix socket
  QZN_FILEIO_GUARD "0": connect to it straight, not through scripts/gdbstub_guard.py
                   (which refuses File-I/O and tells gdb of QEMU's end cleanly)
  QZN_FLOW         "0": only connect and source the extension
  QZN_REPO         checkout holding gdb_qznusnih/
  QZN_READY        function where the program waits for the debugger (qzn_ready)
  QZN_COMM         the program's comm, to tell it from others at the same address
  QZN_WATCH        the expression to watch (&qzn_byte)
  QZN_GO           variable to set to 1 once armed (qzn_go), "" for none
  QZN_WATCH_OPTS   more qzn-watch options (shell words)
  QZN_WATCHER      "qzn" (qzn-watch) or "probe" (a plain access watchpoint that logs
                   KernelView's context and frames; no read/write split)
  QZN_PROBE_LOG_FD probe watcher: descriptor of its JSON Lines output file (made by
                   run_qemu_gdb.sh the private_files way, 0600), "" for none
  QZN_BT_DEPTH     probe watcher: frames per backtrace (default 16)
  QZN_PROBE_WORK   probe watcher: all (default), context (hit_context only) or none
  QZN_PROBE_BENCH  probe watcher: time N calls of each per-hit step at a kernel hit
  QZN_PROBE_DUMP   probe watcher: print the user stack at kernel hits
  QZN_BATCH        "1": quit (killing QEMU) when the program exits

Flow: a breakpoint at QZN_READY that stops only for QZN_COMM in user mode gives the
program's pid; then the watch is armed with --pid, QZN_GO is set, and a breakpoint on
the kernel's do_exit for that pid ends the run.
"""

from __future__ import annotations

import json
import os
import shlex
import struct
import sys
import time

import gdb

sys.path.insert(0, os.environ["QZN_REPO"])

from gdb_qznusnih.arm import target  # noqa: E402
from gdb_qznusnih.hit.kernel import KernelView  # noqa: E402
from gdb_qznusnih.options import qzn_watch_line  # noqa: E402
from gdb_qznusnih.record.access import Frame  # noqa: E402


def note(text: str) -> None:
    print(f"qzn-qemu: {text}", flush=True)


def elf_bytes(path: str, address: int, length: int) -> bytes | None:
    """The bytes a static ELF file loads at `address` (from its PT_LOAD segments)."""
    with open(path, "rb") as elf:
        head = elf.read(64)
        if head[:4] != b"\x7fELF":
            return None
        wide = head[4] == 2
        if wide:
            phoff, phentsize, phnum = (
                struct.unpack_from("<Q", head, 32)[0],
                *struct.unpack_from("<HH", head, 54),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from("<I", head, 28)[0],
                *struct.unpack_from("<HH", head, 42),
            )
        for index in range(phnum):
            elf.seek(phoff + index * phentsize)
            entry = elf.read(phentsize)
            if wide:
                kind, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", entry)
            else:
                kind, offset, vaddr, _, filesz = struct.unpack_from("<IIIII", entry)
            if kind == 1 and vaddr <= address and address + length <= vaddr + filesz:
                elf.seek(offset + address - vaddr)
                return elf.read(length)
    return None


class ReadyPoint(gdb.Breakpoint):
    """Stops at the program's ready function, only in the program itself.

    With kernel symbols the comm tells; without them (cr3 mode) the code at the
    address must be the program's own, since other static programs run other code
    at the same virtual address.
    """

    def __init__(self, spec: str, view: KernelView, comm: str, program: str) -> None:
        super().__init__(spec, type=gdb.BP_HARDWARE_BREAKPOINT, internal=True)
        self.silent = True
        self.view = view
        self.comm = comm[:15]  # TASK_COMM_LEN - 1
        self.expected = None
        if view.method == "cr3" and program:
            address = int(self.locations[0].address) if self.locations else None
            if address is not None:
                self.expected = (address, elf_bytes(program, address, 16))
        self.pid: int | None = None
        self.found = False

    def stop(self) -> bool:
        context = self.view.hit_context_unfiltered()
        if context is None or context.mode != "user":
            return False
        if self.view.method == "cr3":
            if self.expected is None or self.expected[1] is None:
                return False
            address, code = self.expected
            if bytes(gdb.selected_inferior().read_memory(address, len(code))) != code:
                return False  # another program's code at the same virtual address
        elif context.comm != self.comm:
            return False  # another program runs code at the same virtual address
        self.pid = context.pid
        self.found = True
        return True


class ProbeWatch(gdb.Breakpoint):
    """A plain access watchpoint that logs KernelView's view of every hit."""

    def __init__(self, expression: str, view: KernelView, log_fd: str, depth: int) -> None:
        super().__init__(expression, type=gdb.BP_WATCHPOINT, wp_class=gdb.WP_ACCESS, internal=True)
        self.view = view
        self.depth = depth
        self.log = open(int(log_fd), "w", encoding="utf-8") if log_fd else None
        self.hits = 0
        self.kept = 0
        self.bench_rounds = int(os.environ.get("QZN_PROBE_BENCH", "0"))
        self.work = os.environ.get("QZN_PROBE_WORK", "all")  # all | context | none
        self.bench: dict[str, float] = {}
        self.seconds = 0.0

    def stop(self) -> bool:
        started = time.perf_counter()
        self.hits += 1
        if self.work == "none":  # gdb's own floor per hit
            return False
        context = self.view.hit_context()
        if self.work == "context":  # the floor plus hit_context()
            self.kept += context is not None
            self.seconds += time.perf_counter() - started
            return False
        if context is None:
            self.seconds += time.perf_counter() - started
            self._log_filtered()
            return False
        self.kept += 1
        after_context = time.perf_counter()
        frames = []
        frame = gdb.newest_frame()
        while frame is not None and len(frames) < self.depth:
            frames.append({"pc": hex(frame.pc()), "func": frame.name()})
            try:
                frame = frame.older()
            except gdb.error:
                break
        after_frames = time.perf_counter()
        user = []
        if context.mode == "kernel":
            user = [
                {"pc": hex(f.pc), "func": f.func, "file": f.file, "line": f.line}
                for f in self.view.user_frames(self.depth, context)
            ]
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        if context.mode == "kernel" and os.environ.get("QZN_PROBE_DUMP"):
            self._dump_user_stack(context)
        if context.mode == "kernel" and self.bench_rounds and not self.bench:
            self.bench = self._bench(self.bench_rounds, context)
            note("bench (ms per call): " + json.dumps(self.bench))
        record = {
            "seq": self.kept,
            "mode": context.mode,
            "pid": context.pid,
            "tid": context.tid,
            "comm": context.comm,
            "frames": frames,
            "user_frames": user,
            "stitched": [f.func for f in self.view.stitch(self._gdb_frames(), self.depth, context)]
            if context.mode == "kernel"
            else [],
            "ms": round(elapsed * 1000, 3),
            "ms_context": round((after_context - started) * 1000, 3),
            "ms_frames": round((after_frames - after_context) * 1000, 3),
        }
        names = " <- ".join(str(f["func"]) for f in frames[:6])
        if user:
            names += " || " + " <- ".join(str(f["func"]) for f in user[:6])
        note(f"hit {self.kept}: {context.mode} pid {context.pid} {context.comm}: {names}")
        if self.log:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
        return False

    def _bench(self, rounds: int, context) -> dict[str, float]:
        """Time the per-hit calls, repeated at one kernel-mode hit."""

        def timed(call) -> float:
            started = time.perf_counter()
            for _ in range(rounds):
                call()
            return round((time.perf_counter() - started) * 1000 / rounds, 3)

        def walk() -> None:
            gdb.invalidate_cached_frames()  # as after a resume
            frame, depth = gdb.newest_frame(), 0
            while frame is not None and depth < self.depth:
                frame.name()
                frame, depth = frame.older(), depth + 1

        def fresh(call):
            def run():
                gdb.invalidate_cached_frames()
                call()

            return run

        return {
            "hit_context": timed(self.view.hit_context),
            "invalidate_only": timed(gdb.invalidate_cached_frames),
            "fresh_newest_frame": timed(fresh(gdb.newest_frame)),
            "fresh_eval_cs": timed(fresh(lambda: int(gdb.parse_and_eval("$cs")))),
            "fresh_hit_context": timed(fresh(self.view.hit_context)),
            "fresh_frame_pc": timed(fresh(lambda: gdb.newest_frame().pc())),
            "kernel_frames": timed(walk),
            "user_frames": timed(lambda: self.view.user_frames(self.depth, context)),
            "stitched": timed(lambda: self.view.stitch(self._gdb_frames(), self.depth, context)),
        }

    def _gdb_frames(self) -> list:
        gdb.invalidate_cached_frames()
        frames, frame = [], gdb.newest_frame()
        while frame is not None and len(frames) < self.depth:
            frames.append(Frame(len(frames), frame.pc(), frame.name()))
            frame = frame.older()
        return frames

    def _dump_user_stack(self, context) -> None:
        """Debug aid: the saved user registers and the stack words above sp."""
        regs = self.view.user_regs(context)
        if regs is None:
            note("dump: no user registers")
            return
        ip, sp, bp = regs
        note(f"dump: ip={ip:#x} sp={sp:#x} bp={bp:#x}")
        words = self.view._read_words(sp, 48) or []
        for index, word in enumerate(words):
            note(f"dump:   {sp + index * self.view._word:#x}: {gdb.format_address(word)}")

    def _log_filtered(self) -> None:
        context = self.view.hit_context_unfiltered()
        if context is None:
            return  # before paging
        note(f"filtered: {context.mode} pid {context.pid} {context.comm}")
        if self.log:
            record = {
                "filtered": True,
                "mode": context.mode,
                "pid": context.pid,
                "tid": context.tid,
                "comm": context.comm,
            }
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()


QEMU_GONE = 4  # exit status: the gdbstub went away; run_qemu_gdb.sh says how QEMU ended


def target_lost() -> bool:
    """Whether the connection to QEMU closed under gdb (gdb then drops the target)."""
    return gdb.selected_inferior().connection is None


def leave_if_target_lost() -> None:
    """Exit at once when QEMU is gone: the watch has already ended and written its
    records; gdb's own teardown of a dead remote target is not to be trusted."""
    if target_lost():
        sys.stdout.flush()
        os._exit(QEMU_GONE)


def resume() -> bool:
    """`continue`; False when the target is gone (QEMU quit)."""
    try:
        gdb.execute("continue")
    except gdb.error as error:
        note(f"target gone: {error}")
        return False
    return gdb.selected_inferior().pid != 0


def connect(socket_path: str) -> None:
    """`target remote` through gdbstub_guard.py (it turns remote File-I/O off, and turns
    QEMU's death into a clean "killed" stop reply) unless
    QZN_FILEIO_GUARD is "0", with one line and exit status 3 when the stub never answers."""
    guard = os.path.join(os.environ["QZN_REPO"], "scripts", "gdbstub_guard.py")
    relay = shlex.join(["exec", "/usr/bin/python3", "-I", guard, socket_path])
    where = f"| {relay}" if os.environ.get("QZN_FILEIO_GUARD", "1") != "0" else socket_path
    try:
        gdb.execute(f"target remote {where}")
    except gdb.error as error:
        print(
            f"run_qemu_gdb.sh: QEMU's gdbstub at {socket_path} never answered ({error})",
            file=sys.stderr,
            flush=True,
        )
        os._exit(3)
    gdb.execute(f"source {os.environ['QZN_REPO']}/gdb_qznusnih/loader.py")


def fail(message: str) -> None:
    """One line on stderr and exit status 1 (QEMU is stopped by run_qemu_gdb.sh)."""
    print(message, file=sys.stderr, flush=True)
    os._exit(1)


def main() -> None:
    connect(os.environ["QZN_GDBSTUB"])
    if os.environ.get("QZN_FLOW", "1") != "1":
        return
    batch = os.environ.get("QZN_BATCH") == "1"
    watcher = os.environ.get("QZN_WATCHER", "qzn")
    comm = os.environ.get("QZN_COMM", "")
    view = KernelView.detect(None, None)
    if view is None:
        fail("qzn-qemu: not connected to a whole-system target")
    ready_spec = os.environ.get("QZN_READY", "qzn_ready")
    try:
        ready = ReadyPoint(ready_spec, view, comm, os.environ.get("QZN_SYMBOLS", ""))
    except gdb.error as error:
        fail(f"qzn-qemu: cannot break at '{ready_spec}': {error}")
    note(f"booting; waiting for {comm} to reach {ready_spec}")
    started = time.monotonic()
    while not ready.found:
        if not resume():
            leave_if_target_lost()
            fail(f"qzn-qemu: the guest ended before {comm} reached {ready_spec}")
    who = (
        f"pid {ready.pid}" if ready.pid is not None else "running (no kernel symbols: pid unknown)"
    )
    note(f"{comm} is {who}, at {ready_spec} after {time.monotonic() - started:.1f} s")
    ready.delete()
    expression = os.environ.get("QZN_WATCH", "&qzn_byte")
    extra = shlex.split(os.environ.get("QZN_WATCH_OPTS", ""))
    go = os.environ.get("QZN_GO", "qzn_go")
    if go:
        gdb.execute(f"set var {go} = 1")
    # Without kernel symbols (cr3 mode) the space of the program, stopped here, is learned.
    ended: list[float] = []
    exit_point = KernelView.detect(ready.pid, None).break_on_exit(
        lambda: ended.append(time.monotonic())
    )
    probe = None
    armed_at = time.monotonic()
    if watcher == "probe":
        try:  # as qzn-watch does it: nothing that could write or call is evaluated
            address = target.evaluate_address(expression).value
        except target.WatchError as error:
            fail(f"qzn-qemu: --watch: {error}")
        probe = ProbeWatch(
            f"*(unsigned char *){address:#x}",
            KernelView.detect(ready.pid, None),
            os.environ.get("QZN_PROBE_LOG_FD", ""),
            int(os.environ.get("QZN_BT_DEPTH", "16")),
        )
        note(f"probe watch on {address:#x}; {probe.view.describe()}")
    else:
        # In batch mode qzn-watch itself runs the target until the watch ends.
        pid = ["--pid", str(ready.pid)] if ready.pid is not None else []
        try:
            gdb.execute(qzn_watch_line([*pid, *extra, expression]))
        except gdb.error as error:
            fail(f"qzn-watch: {error}")
    while gdb.selected_inferior().pid != 0 and not (exit_point and exit_point.hit):
        if not resume() or not (exit_point and exit_point.hit):
            break  # QEMU quit, or a stop for something else: --count, --stop, Ctrl-C
    if exit_point is not None and not exit_point.hit:  # without one, the guest's end is the end
        leave_if_target_lost()
    if probe is not None:
        per_hit = probe.seconds / probe.hits * 1000 if probe.hits else 0.0
        note(f"probe: {probe.kept} hits kept of {probe.hits}, {per_hit:.3f} ms per hit")
        probe.delete()
    if exit_point is not None:
        if exit_point.hit:
            note(f"pid {ready.pid} exited {ended[0] - armed_at:.3f} s after arming")
        exit_point.delete()
    if batch and gdb.selected_inferior().pid != 0:
        if watcher == "qzn":
            gdb.execute("qzn-unwatch all")
        gdb.execute("kill")


main()
