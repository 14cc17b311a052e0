"""The module map of a process: which ELF file holds a code address, at which load bias, and
its CFI.  Built from /proc/PID/maps, or mapping by mapping from the ring's MMAP2 records.

Files are the target's own, opened read-only and never executed.  For a live process they are
opened through /proc/PID/map_files (the very file that is mapped, even when it was deleted or
replaced since); otherwise by path without following a final symlink, and only if its device
and inode are those the mapping names.  The vdso has no file: its image is read from the
process's memory.  A module whose image cannot be read stays in the map without CFI, with the
reason in `problem`, so an unwind through it ends cleanly.
"""

from __future__ import annotations

import bisect
import os
import stat
import struct
from collections.abc import Callable

from gdb_qznusnih.launcher.procfs import MapsLine, parse_maps
from gdb_qznusnih.perf.elf import ElfError, ElfImage, bytes_reader, file_reader
from gdb_qznusnih.perf.unwind_cfi import CfiError, CfiTable, Rule

VDSO = "[vdso]"
MAX_VDSO_BYTES = 1 << 20
_BAD_CFI = (CfiError, ElfError, IndexError, struct.error, OSError)

ReadMemory = Callable[[int, int], bytes]


class ModuleError(OSError):
    """A module's image cannot be opened as the file that is mapped."""


def open_mapped_file(mapping: MapsLine, pid: int | None) -> int:
    """A read-only fd of the file a mapping maps, checked to be that file (device, inode)."""
    fd = None
    if pid is not None:
        try:  # the kernel's own link to the mapped file: right even if deleted or replaced
            fd = os.open(f"/proc/{pid}/map_files/{mapping.start:x}-{mapping.end:x}", os.O_RDONLY)
        except OSError:
            fd = None
    if fd is None:
        if mapping.deleted:
            raise ModuleError(f"{mapping.path} was deleted and the process is gone")
        fd = os.open(mapping.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    info = os.fstat(fd)
    device = (os.major(info.st_dev), os.minor(info.st_dev))
    if not stat.S_ISREG(info.st_mode) or (info.st_ino, device) != (mapping.inode, mapping.device):
        os.close(fd)
        raise ModuleError(f"{mapping.path} is no longer the file that is mapped")
    return fd


class Module:
    """One executable mapping: the ELF image behind it, its load bias and CFI (all lazy)."""

    def __init__(self, mapping: MapsLine, open_image: Callable[[], tuple[ElfImage, int | None]]):
        self.mapping = mapping
        self.start, self.end, self.path = mapping.start, mapping.end, mapping.path
        self.problem: str | None = None  # why this module has no CFI
        self._open_image = open_image
        self._loaded = False
        self._fd: int | None = None
        self.image: ElfImage | None = None
        self.bias = 0
        self.cfi: CfiTable | None = None

    def _load(self) -> bool:
        if not self._loaded:
            self._loaded = True
            try:
                self.image, self._fd = self._open_image()
                self.bias = self.image.load_bias(self.start, self.mapping.offset)
                self.cfi = CfiTable(self.image)
            except _BAD_CFI as error:
                self.problem = f"{self.path}: {error}"
                self.cfi = None
        return self.cfi is not None

    def rule_at(self, pc: int) -> Rule | None:
        """The CFI rule at run-time pc, its function bounds in run-time addresses."""
        if not self._load():
            return None
        try:
            rule = self.cfi.rule_at(pc - self.bias)
        except _BAD_CFI as error:
            self.problem = f"{self.path}: CFI at {pc:#x}: {error}"
            return None
        if rule is None:
            return None
        return rule._replace(
            function_start=rule.function_start + self.bias,
            function_end=rule.function_end + self.bias,
        )

    def function_start(self, pc: int) -> int | None:
        """Run-time start of the function holding pc, from its FDE (present even if stripped)."""
        if not self._load():
            return None
        try:
            fde = self.cfi.fde_for(pc - self.bias)
        except _BAD_CFI:
            return None
        return None if fde is None else fde.start + self.bias

    def symbol(self, name: str) -> int | None:
        """Run-time address of a symbol of this module's file (e.g. main), or None."""
        if not self._load():
            return None
        try:
            found = self.image.symbol(name)
        except _BAD_CFI:
            return None
        return None if found is None else found + self.bias

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ModuleMap:
    """The executable mappings of one process, by address."""

    def __init__(self, pid: int | None = None, read_memory: ReadMemory | None = None):
        self.pid = pid
        self.read_memory = read_memory
        self.generation = 0  # bumped on every change: per-pc caches keyed on it
        self._starts: list[int] = []
        self._modules: list[Module] = []

    @classmethod
    def from_pid(cls, pid: int) -> ModuleMap:
        """The map of a live process (the vdso read from its memory)."""
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as maps:
            text = maps.read()
        return cls.from_maps(text, pid, process_memory_reader(pid))

    @classmethod
    def from_maps(
        cls, text: str, pid: int | None = None, read_memory: ReadMemory | None = None
    ) -> ModuleMap:
        """A map from the text of /proc/PID/maps (pid None: files by path only)."""
        modules = cls(pid, read_memory)
        for mapping in parse_maps(text):
            modules.add_mapping(mapping)
        return modules

    def add_mapping(self, mapping: MapsLine) -> None:
        """Add one mapping (an MMAP2 record or a maps line); it replaces what it overlaps."""
        if not mapping.executable or mapping.end <= mapping.start:
            return
        if not mapping.path.startswith("/") and mapping.path != VDSO:
            return  # anonymous code (JIT), [vsyscall]: no CFI to read
        self.remove_range(mapping.start, mapping.end)
        module = Module(mapping, self._opener(mapping))
        at = bisect.bisect_left(self._starts, mapping.start)
        self._starts.insert(at, mapping.start)
        self._modules.insert(at, module)
        self.generation += 1

    def remove_range(self, start: int, end: int) -> None:
        """Forget every module overlapping [start, end) (munmap, exec, a new mapping)."""
        keep = [m for m in self._modules if m.end <= start or m.start >= end]
        if len(keep) != len(self._modules):
            for module in self._modules:
                if module not in keep:
                    module.close()
            self._modules = keep
            self._starts = [m.start for m in keep]
            self.generation += 1

    def _opener(self, mapping: MapsLine):
        if mapping.path == VDSO:
            return lambda: (self._vdso_image(mapping), None)

        def open_file() -> tuple[ElfImage, int]:
            fd = open_mapped_file(mapping, self.pid)
            try:
                return ElfImage(file_reader(fd), mapping.path), fd
            except ElfError:
                os.close(fd)
                raise

        return open_file

    def _vdso_image(self, mapping: MapsLine) -> ElfImage:
        size = mapping.end - mapping.start
        if self.read_memory is None or size > MAX_VDSO_BYTES:
            raise ModuleError("the vdso cannot be read (no process memory)")
        return ElfImage(bytes_reader(self.read_memory(mapping.start, size)), VDSO)

    def find(self, pc: int) -> Module | None:
        at = bisect.bisect_right(self._starts, pc) - 1
        if at >= 0 and pc < self._modules[at].end:
            return self._modules[at]
        return None

    def function_start(self, pc: int) -> int | None:
        module = self.find(pc)
        return None if module is None else module.function_start(pc)

    def modules(self) -> list[Module]:
        return list(self._modules)

    def close(self) -> None:
        for module in self._modules:
            module.close()


def process_memory_reader(pid: int) -> ReadMemory:
    """Read a live process's memory through /proc/PID/mem (opened per read, read-only)."""

    def read(address: int, size: int) -> bytes:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, address)
        finally:
            os.close(fd)

    return read
