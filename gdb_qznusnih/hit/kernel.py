"""Kernel awareness for whole-system mode (gdb on QEMU's gdbstub).  Needs gdb.

At each hit: user or kernel mode, and which task made (or caused) the access,
from the kernel's per-CPU `current_task`; without kernel symbols, which address
space (cr3).  For kernel-mode hits, the user frames of the process that made the
system call, from the pt_regs at the top of its kernel stack.

Every lookup that does not change between hits (symbol addresses, struct offsets,
the per-CPU layout) is probed once and forgotten on gdb.events.new_objfile; a hit
then costs a few register reads and one or two memory reads.  The pure parts live
in kernel_layout.py.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

import gdb

from gdb_qznusnih.arm.target import (
    WatchError,
    function_name,
    register,
    source_location,
    symbol_at,
)
from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.classify import kernel_layout as kl
from gdb_qznusnih.record.access import Frame

TASK = "task"
CR3 = "cr3"


@dataclass(slots=True)
class HitContext:
    """Who made one access: CPU mode and, when known, the task."""

    mode: str  # "user" | "kernel", from CS & 3
    pid: int | None  # tgid of the current task (None in cr3 mode)
    tid: int | None  # pid of the current task
    comm: str | None
    cr3: int | None = None  # address-space id (masked), in cr3 mode
    task: int | None = None  # address of the current task_struct, in task mode


@dataclass
class _TaskProbe:
    """What reading the current task needs, probed from the kernel's symbols."""

    current_addr: int  # address of the per-CPU pointer (an offset on SMP)
    source: str  # "current_task" (<= 6.1) or "pcpu_hot.current_task" (>= 6.2)
    smp: bool
    per_cpu_offset: int | None  # &__per_cpu_offset[0], SMP only
    task: kl.TaskLayout
    stack_offset: int  # task_struct.stack
    pt_regs_size: int
    pt_regs_fields: dict[str, int]  # ip, sp, bp, cs -> offset
    init_task: int | None  # &init_task, the head of the process list
    tasks_offset: int | None  # task_struct.tasks


def _symbol_address(expression: str) -> int | None:
    try:
        return int(gdb.parse_and_eval(expression))
    except gdb.error:
        return None


def _probe_task() -> _TaskProbe | None:
    """Probe the kernel's layout; None without kernel symbols."""
    # Up to 6.1 the current task is the per-CPU `current_task`; from 6.2 it is a
    # field of the per-CPU `pcpu_hot`.
    current = _symbol_address("&current_task")
    source = "current_task"
    if current is None:
        current = _symbol_address("&pcpu_hot.current_task")
        source = "pcpu_hot.current_task"
    if current is None:
        return None

    def offset(struct_name: str, member: str) -> int:
        return int(gdb.parse_and_eval(f"(unsigned long)&(({struct_name} *)0)->{member}"))

    try:
        task = kl.TaskLayout(
            pid=offset("struct task_struct", "pid"),
            tgid=offset("struct task_struct", "tgid"),
            comm=offset("struct task_struct", "comm"),
        )
        stack_offset = offset("struct task_struct", "stack")
        pt_regs_size = gdb.lookup_type("struct pt_regs").sizeof
        pt_regs_fields = {name: offset("struct pt_regs", name) for name in ("ip", "sp", "bp", "cs")}
    except gdb.error:
        return None
    per_cpu_offset = _symbol_address("&__per_cpu_offset[0]")  # absent on UP kernels
    init_task = _symbol_address("&init_task")
    try:
        tasks_offset = offset("struct task_struct", "tasks")
    except gdb.error:
        tasks_offset = None
    return _TaskProbe(
        current_addr=current,
        source=source,
        smp=per_cpu_offset is not None,
        per_cpu_offset=per_cpu_offset,
        task=task,
        stack_offset=stack_offset,
        pt_regs_size=pt_regs_size,
        pt_regs_fields=pt_regs_fields,
        init_task=init_task,
        tasks_offset=tasks_offset,
    )


class KernelView:
    """Per-hit kernel context for one watch in whole-system mode."""

    method: str  # TASK or CR3

    def __init__(
        self,
        arch: str,
        probe: _TaskProbe | None,
        want_pid: int | None,
        want_cr3: int | None,
        caches: CacheRegistry,
    ) -> None:
        self.arch = arch
        # An explicit --cr3 without --pid asks for address-space filtering.
        by_cr3 = probe is None or (want_cr3 is not None and want_pid is None)
        self.method = CR3 if by_cr3 else TASK
        self.want_pid = want_pid
        self.want_cr3 = kl.address_space_id(want_cr3, arch) if want_cr3 is not None else None
        self.cr3_learned = False
        self._probe = probe
        self._word = kl.WORD_SIZE[arch]
        self._ptr_fmt = "<Q" if self._word == 8 else "<I"
        self._address_mask = (1 << (8 * self._word)) - 1
        self._paging_on = False
        self._stack_layout: tuple[int, int] | None = None
        # Cleared with the watch's other caches when symbols change.
        self._per_cpu_offsets = caches.cache("per-CPU offsets")
        self._stacks = caches.cache("kernel stacks by task")  # task_struct -> its kernel stack
        self._call_sites = caches.cache("kernel call sites")
        self._function_starts = caches.cache("kernel function starts")
        self._frame_cache = caches.cache("kernel frames")
        self._inferior = gdb.selected_inferior()
        gdb.events.new_objfile.connect(self._on_new_objfile)

    # -- construction -------------------------------------------------------

    @classmethod
    def detect(
        cls, want_pid: int | None, want_cr3: int | None, caches: CacheRegistry | None = None
    ) -> KernelView | None:
        """A view for the selected whole-system target, or None when it is not one.

        Raises WatchError when --pid is asked for but there are no kernel symbols.
        """
        connection = getattr(gdb.selected_inferior(), "connection", None)
        if connection is None or connection.type not in ("remote", "extended-remote"):
            return None
        try:
            arch = kl.arch_from_gdb_name(gdb.newest_frame().architecture().name())
            register("cs")
        except (gdb.error, ValueError):
            return None  # not an x86 machine stub: no way to tell modes apart
        probe = _probe_task()
        if probe is None and want_pid is not None and want_cr3 is None:
            raise WatchError(
                "--pid needs kernel symbols (load vmlinux: 'file vmlinux'); "
                "without them use --cr3 ADDRESS_SPACE"
            )
        view = cls(arch, probe, want_pid, want_cr3, caches or CacheRegistry())
        if view.method == CR3 and view.want_cr3 is None:
            view._learn_cr3_now()
        if view.method == TASK and want_pid is not None:
            found = view.find_process(want_pid)
            if found is False:
                view.close()
                raise WatchError(
                    f"no process with pid {want_pid} in the guest; "
                    "check the pid (ps in the guest) and arm again"
                )
        return view

    def find_process(self, pid: int) -> str | bool | None:
        """The comm of process `pid` (a thread-group leader) in the kernel's task list;
        False when it is not there; None when the list cannot be read (early boot)."""
        probe = self._probe
        if probe.init_task is None or probe.tasks_offset is None:
            return None
        head = probe.init_task + probe.tasks_offset
        node = head
        for _ in range(100_000):
            raw = self._read(node, self._word)
            if raw is None:
                return None
            node = struct.unpack(self._ptr_fmt, raw)[0]
            if node == head:
                return False
            if node == 0:
                return None
            block = self._read(node - probe.tasks_offset + probe.task.start, probe.task.length)
            if block is None:
                return None
            tgid, _, comm = probe.task.decode(block)
            if tgid == pid:
                return comm
        return None

    def close(self) -> None:
        """Stop listening to gdb events (the watch ended)."""
        try:
            gdb.events.new_objfile.disconnect(self._on_new_objfile)
        except (RuntimeError, ValueError):
            pass

    def _on_new_objfile(self, _event) -> None:
        # Symbols changed (add-symbol-file, a new vmlinux): probe again, keep the method.
        # The caches went with the watch's registry.
        probe = _probe_task()
        if probe is not None:
            self._probe = probe
        self._stack_layout = None

    def break_on_exit(self, on_exit=None) -> gdb.Breakpoint | None:
        """A breakpoint that stops when the wanted process's main thread enters do_exit.

        In whole-system mode the machine goes on after the program ends, so this is
        how a watch learns that its target exited.  `on_exit()` runs inside stop()
        first (it may not resume the target).  None in cr3 mode or without --pid.
        Create it while the target is stopped (not from a stop() method); delete it
        when the watch ends.
        """
        if self.method != TASK or self.want_pid is None:
            return None
        return _TaskExitBreakpoint(self, self.want_pid, on_exit)

    @staticmethod
    def is_entry_frame(frame: Frame) -> bool:
        """The kernel's system call or exception entry: gdb's unwinding is garbage past it."""
        return kl.kernel_entry_index([frame.func]) == 0

    def describe(self) -> str:
        """One line for the output: what filters the hits, and how."""
        if self.method == TASK:
            via = self._probe.source + (" (per-CPU)" if self._probe.smp else "")
            if self.want_pid is None:
                return f"no --pid: keeping every task's hits, task pid/comm via {via}"
            return f"filtering by task pid {self.want_pid} via {via}"
        if self.want_cr3 is None:
            return (
                "no kernel symbols: filtering by address space, cr3 to be learned "
                "from the first user-mode hit (PTI bit masked)"
            )
        learned = " learned at arming" if self.cr3_learned else ""
        return f"filtering by address space cr3={self.want_cr3:#x}{learned} (PTI bit masked)"

    # -- per hit ------------------------------------------------------------

    def hit_context(self) -> HitContext | None:
        """The context of the current hit; None to ignore it (early boot, other task)."""
        context = self.hit_context_unfiltered()
        if context is None:
            return None
        if self.method == CR3:
            if self.want_cr3 is None:
                if context.mode != "user":
                    return None
                self.want_cr3 = context.cr3  # the first user-mode hit's space
            return context if context.cr3 == self.want_cr3 else None
        if self.want_pid is None or context.pid == self.want_pid:
            return context
        return None

    def hit_context_unfiltered(self) -> HitContext | None:
        """Like hit_context, without the --pid or cr3 filter; None only before paging."""
        if not self._paging_on:
            # Before paging (early boot with -S) a virtual address means nothing.
            if not kl.paging_enabled(register("cr0")):
                return None
            self._paging_on = True
        mode = kl.privilege_mode(register("cs"))
        if self.method == CR3:
            space = kl.address_space_id(register("cr3"), self.arch)
            return HitContext(mode=mode, pid=None, tid=None, comm=None, cr3=space)
        task = self._current_task(mode)
        if task is None:
            return None
        block = self._read(task + self._probe.task.start, self._probe.task.length)
        if block is None:
            return None
        tgid, pid, comm = self._probe.task.decode(block)
        return HitContext(mode=mode, pid=tgid, tid=pid, comm=comm, task=task)

    def _learn_cr3_now(self) -> None:
        """Stopped in user mode (e.g. at the program's ready point): that is its space."""
        try:
            if not kl.paging_enabled(register("cr0")):
                return
            if kl.privilege_mode(register("cs")) == "user":
                self.want_cr3 = kl.address_space_id(register("cr3"), self.arch)
                self.cr3_learned = True
        except gdb.error:
            pass

    def _current_task(self, mode: str) -> int | None:
        probe = self._probe
        source = kl.percpu_base_source(self.arch, probe.smp, mode)
        if source == "none":
            base = 0
        elif source == "per_cpu_offset":
            base = self._per_cpu_offset(gdb.selected_thread().num - 1)
            if base is None:
                return None
        else:
            base = register(source, self._word)
        raw = self._read(base + probe.current_addr, self._word)
        if raw is None:
            return None
        task = struct.unpack(self._ptr_fmt, raw)[0]
        return task or None

    def _per_cpu_offset(self, cpu: int) -> int | None:
        cached = self._per_cpu_offsets.get(cpu)
        if cached is None:
            raw = self._read(self._probe.per_cpu_offset + cpu * self._word, self._word)
            if raw is None:
                return None
            cached = struct.unpack(self._ptr_fmt, raw)[0]
            if cached:  # zero until setup_per_cpu_areas() has run
                self._per_cpu_offsets.remember(cpu, cached)
        return cached

    def _read(self, address: int, length: int) -> bytes | None:
        try:
            return bytes(self._inferior.read_memory(address & self._address_mask, length))
        except (gdb.MemoryError, gdb.error):
            return None

    # -- user frames of a system call ----------------------------------------

    def user_regs(self, context: HitContext | None = None) -> tuple[int, int, int] | None:
        """(ip, sp, bp) the current task entered the kernel with, from task_pt_regs().

        `context` is this hit's HitContext, to save reading the current task again.
        """
        if self.method != TASK:
            return None
        task = context.task if context is not None else None
        if task is None:
            task = self._current_task(kl.privilege_mode(register("cs")))
            if task is None:
                return None
        stack = self._stacks.get(task)
        regs = self._pt_regs(stack) if stack is not None else None
        if regs is None:
            # Not cached, or the task_struct was freed and reused with another stack.
            raw = self._read(task + self._probe.stack_offset, self._word)
            if raw is None:
                return None
            stack = struct.unpack(self._ptr_fmt, raw)[0]
            regs = self._pt_regs(stack)
            if regs is not None:
                self._stacks.remember(task, stack)
        return regs

    def _pt_regs(self, stack: int) -> tuple[int, int, int] | None:
        layouts = [self._stack_layout] if self._stack_layout else kl.STACK_LAYOUTS[self.arch]
        fields = self._probe.pt_regs_fields
        for thread_size, padding in layouts:
            at = kl.pt_regs_address(stack, thread_size, padding, self._probe.pt_regs_size)
            block = self._read(at, self._probe.pt_regs_size)
            if block is None:
                continue
            words = {
                name: struct.unpack_from(self._ptr_fmt, block, off)[0]
                for name, off in fields.items()
            }
            if kl.privilege_mode(words["cs"]) == "user" and words["ip"] < kl.USER_LIMIT[self.arch]:
                self._stack_layout = (thread_size, padding)
                return words["ip"], words["sp"], words["bp"]
        return None

    def user_frames(self, max_depth: int, context: HitContext | None = None) -> list[Frame]:
        """The user frames of the process in a system call, newest first; [] if unknown.

        Levels count from 0; the caller renumbers them after the kernel frames.
        """
        regs = self.user_regs(context)
        if regs is None or max_depth <= 0:
            return []
        ip, sp, bp = regs
        pcs = kl.walk_user_stack(
            ip,
            sp,
            bp,
            self._word,
            self._read_words,
            lambda value: self._is_return_address(value, sp),
            max_depth,
            target_of=self._call_target,
            function_start=self._function_start,
        )
        return [self._describe_pc(level, pc) for level, pc in enumerate(pcs)]

    def stitch(
        self, kernel_frames, max_depth: int, context: HitContext | None = None
    ) -> list[Frame]:
        """A kernel-mode hit's whole story: kernel frames up to the kernel entry, then
        the user frames of the system call, renumbered; at most max_depth frames.

        gdb's unwinder goes on past the entry point into garbage, so that part is cut.
        """
        frames = list(kernel_frames)
        cut = kl.kernel_entry_index([frame.func for frame in frames])
        if cut is not None:
            frames = frames[: cut + 1]
        if len(frames) >= max_depth:
            return frames[:max_depth]
        base = len(frames)
        for offset, frame in enumerate(self.user_frames(max_depth - base, context)):
            frames.append(dataclasses.replace(frame, level=base + offset))
        return frames

    def _read_words(self, address: int, count: int) -> list[int] | None:
        block = self._read(address, count * self._word)
        return kl.unpack_words(block, self._word) if block is not None else None

    def _is_return_address(self, value: int, sp: int) -> bool:
        if not 0x1000 <= value < kl.USER_LIMIT[self.arch] or abs(value - sp) < (1 << 20):
            return False  # not user space, or a stack address
        return self._call_site(value)[0]

    def _call_site(self, ret: int) -> tuple[bool, int | None]:
        """(ret follows a call, that call's direct target), cached per address."""
        known = self._call_sites.get(ret)
        if known is None:
            code = self._read(ret - 7, 7)
            if code is None or not kl.follows_call(code):
                known = (False, None)
            else:
                known = (True, kl.call_target(ret, code))
            self._call_sites.remember(ret, known)
        return known

    def _call_target(self, ret: int) -> int | None:
        return self._call_site(ret)[1] if ret is not None else None

    def _function_start(self, pc: int) -> int | None:
        """Entry of the function holding pc, from symbols (debug or minimal)."""
        if pc in self._function_starts:
            return self._function_starts[pc]
        symbol = symbol_at(pc)
        return self._function_starts.remember(pc, pc - symbol[1] if symbol else None)

    def _describe_pc(self, level: int, pc: int) -> Frame:
        cached = self._frame_cache.get((level > 0, pc))
        if cached is None:
            # A return address's call is the instruction before it.
            lookup = pc - 1 if level > 0 else pc
            func = function_name(lookup)
            file, line = source_location(gdb.find_pc_line(lookup))
            cached = Frame(level=level, pc=pc, func=func, file=file, line=line)
            self._frame_cache.remember((level > 0, pc), cached)
        if cached.level != level:
            cached = Frame(level, cached.pc, cached.func, cached.file, cached.line)
        return cached


class _TaskExitBreakpoint(gdb.Breakpoint):
    """do_exit of the process's main thread (tid == tgid)."""

    def __init__(self, view: KernelView, pid: int, on_exit) -> None:
        super().__init__("do_exit", type=gdb.BP_HARDWARE_BREAKPOINT, internal=True)
        self.silent = True
        self.view = view
        self.pid = pid
        self.on_exit = on_exit
        self.hit = False

    def stop(self) -> bool:
        context = self.view.hit_context_unfiltered()
        if context is None or context.pid != self.pid or context.tid != self.pid:
            return False
        self.hit = True
        if self.on_exit is not None:
            self.on_exit()
        return True
