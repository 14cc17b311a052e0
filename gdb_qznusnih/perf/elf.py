"""The few parts of an ELF64 x86-64 image that unwinding needs: its PT_LOAD segments, where
its CFI lies (.eh_frame_hdr through PT_GNU_EH_FRAME, .eh_frame, .debug_frame) and symbols.

An image is read through a `read(offset, size) -> bytes` callable, so a file (pread on an fd
opened read-only) and an image copied from memory (the vdso) are read the same way.  Nothing
is mapped: a file truncated under us gives short reads and an ElfError, never a SIGBUS.
Sizes come from the image, which the target controls, so every read is bounded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

PT_LOAD = 1
PT_GNU_EH_FRAME = 0x6474E550
ET_EXEC = 2
ET_DYN = 3
EM_X86_64 = 62
SHT_NOBITS = 8
MAX_READ = 256 << 20  # no CFI or symbol table of a real program is near this

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")

Reader = Callable[[int, int], bytes]


class ElfError(ValueError):
    """Not an ELF64 x86-64 image we can read, or one cut short."""


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD program header."""

    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int

    def covers_offset(self, offset: int) -> bool:
        return self.offset <= offset < self.offset + max(self.filesz, 1)


@dataclass(frozen=True)
class Section:
    """One section header: its link-time address, where it is in the file, its size."""

    name: str
    addr: int
    offset: int
    size: int
    kind: int


class ElfImage:
    """Headers of one ELF image, read once; section contents read on demand."""

    def __init__(self, read: Reader, name: str = "?"):
        self.name = name
        self._read = read
        header = self.read(0, _EHDR.size)
        ident, self.kind, machine = header[:16], *_EHDR.unpack(header)[1:3]
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1 or machine != EM_X86_64:
            raise ElfError(f"{name}: not a little-endian ELF64 x86-64 image")
        fields = _EHDR.unpack(header)
        self._phoff, self._shoff = fields[5], fields[6]
        self._phnum, self._shnum, self._shstrndx = fields[10], fields[12], fields[13]
        self.loads, self.eh_frame_hdr_vaddr = self._program_headers()
        self._sections: dict[str, Section] | None = None

    def read(self, offset: int, size: int) -> bytes:
        """Exactly `size` bytes at file offset `offset`, or ElfError."""
        if offset < 0 or not 0 <= size <= MAX_READ:
            raise ElfError(f"{self.name}: bad read of {size} bytes at {offset:#x}")
        data = self._read(offset, size)
        if len(data) != size:
            raise ElfError(f"{self.name}: cut short at {offset + len(data):#x}")
        return data

    def _program_headers(self) -> tuple[tuple[Segment, ...], int | None]:
        table = self.read(self._phoff, self._phnum * _PHDR.size)
        loads, eh_frame_hdr = [], None
        for kind, flags, offset, vaddr, _paddr, filesz, memsz, _align in _PHDR.iter_unpack(table):
            if kind == PT_LOAD:
                loads.append(Segment(vaddr, offset, filesz, memsz, flags))
            elif kind == PT_GNU_EH_FRAME:
                eh_frame_hdr = vaddr
        return tuple(loads), eh_frame_hdr

    def sections(self) -> dict[str, Section]:
        """Sections by name; empty when the image has no section headers (stripped of them)."""
        if self._sections is None:
            self._sections = self._section_headers() if self._shnum else {}
        return self._sections

    def _section_headers(self) -> dict[str, Section]:
        table = self.read(self._shoff, self._shnum * _SHDR.size)
        rows = list(_SHDR.iter_unpack(table))
        if self._shstrndx >= len(rows):
            return {}
        names_row = rows[self._shstrndx]
        names = self.read(names_row[4], names_row[5])
        sections = {}
        for name_at, kind, _flags, addr, offset, size, *_rest in rows:
            name = names[name_at : names.find(b"\0", name_at)].decode("ascii", "replace")
            sections.setdefault(name, Section(name, addr, offset, size, kind))
        return sections

    def section_data(self, name: str) -> tuple[Section, bytes] | None:
        """A section's header and contents, or None if absent or without file contents."""
        section = self.sections().get(name)
        if section is None or section.kind == SHT_NOBITS:
            return None
        return section, self.read(section.offset, section.size)

    def offset_of_vaddr(self, vaddr: int) -> tuple[int, int]:
        """(file offset, bytes of file contents from there) for a link-time address."""
        for load in self.loads:
            if load.vaddr <= vaddr < load.vaddr + load.filesz:
                return load.offset + vaddr - load.vaddr, load.vaddr + load.filesz - vaddr
        raise ElfError(f"{self.name}: address {vaddr:#x} is in no PT_LOAD segment")

    def read_vaddr(self, vaddr: int, size: int | None = None) -> bytes:
        """Bytes at a link-time address; to the end of its segment when size is None."""
        offset, available = self.offset_of_vaddr(vaddr)
        return self.read(offset, available if size is None else min(size, available))

    def load_bias(self, map_start: int, map_offset: int) -> int:
        """Run-time minus link-time address, from one mapping of this file (start, offset)."""
        for load in self.loads:
            if load.covers_offset(map_offset):
                return map_start - map_offset - (load.vaddr - load.offset)
        raise ElfError(f"{self.name}: file offset {map_offset:#x} is in no PT_LOAD segment")

    def symbol(self, wanted: str) -> int | None:
        """Link-time address of a defined function or object `wanted` (.symtab, then .dynsym)."""
        for table, strings in ((".symtab", ".strtab"), (".dynsym", ".dynstr")):
            found = self._find_symbol(table, strings, wanted.encode())
            if found is not None:
                return found
        return None

    def _find_symbol(self, table: str, strings: str, wanted: bytes) -> int | None:
        symbols, names = self.section_data(table), self.section_data(strings)
        if symbols is None or names is None:
            return None
        name_bytes = names[1]
        for name_at, _info, _other, shndx, value, _size in _SYM.iter_unpack(
            symbols[1][: len(symbols[1]) // _SYM.size * _SYM.size]
        ):
            if shndx and name_bytes.startswith(wanted + b"\0", name_at):
                return value
        return None


def file_reader(fd: int) -> Reader:
    """A Reader over an open file descriptor (pread: no shared file position)."""
    return lambda offset, size: os.pread(fd, size, offset)


def bytes_reader(data: bytes) -> Reader:
    """A Reader over an image already in memory (the vdso copied from the process)."""
    return lambda offset, size: data[offset : offset + size]
