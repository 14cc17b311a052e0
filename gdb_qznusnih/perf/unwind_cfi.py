"""DWARF call frame information of one ELF image (.eh_frame, .debug_frame): find the FDE that
covers a pc and run its CIE's and its own CFA program up to that pc, giving the Rule there.

Loading is lazy and indexed: `.eh_frame_hdr` already holds a sorted table of every FDE's
start, so an FDE is found by binary search and only that FDE (and its CIE) is decoded.  Only a
section without such a table (.debug_frame, or an .eh_frame without a header) is scanned, once,
entry headers only.  Addresses here are link-time ones; the caller adds the load bias.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from dataclasses import dataclass
from typing import NamedTuple

from gdb_qznusnih.perf.elf import ElfImage
from gdb_qznusnih.perf.unwind_expr import read_sleb, read_uleb

REG_RBP, REG_RSP, REG_RA = 6, 7, 16
TRACKED_REGISTERS = 17  # DWARF 0..15 are the general registers, 16 the return address

# How a register of the caller is found (DWARF 6.4.1 register rules).
OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION, UNDEFINED, SAME_VALUE = range(7)

_DW_EH_PE_OMIT = 0xFF
_DW_EH_PE_PCREL, _DW_EH_PE_DATAREL = 0x10, 0x30
_EH_HDR_SORTED_TABLE = 0x3B  # datarel | sdata4: the table ld writes
_MAX_REMEMBERED = 64
# CFA instructions whose first operand is a register number
_REGISTER_OPS = frozenset((0x05, 0x06, 0x07, 0x08, 0x09, 0x10, 0x11, 0x14, 0x15, 0x16, 0x2F))
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_FIXED = {0x00: "<Q", 0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i", 0x0C: "<q"}


class CfiError(ValueError):
    """CFI this reader cannot use (malformed, or a form it does not handle)."""


class Rule(NamedTuple):
    """How to find the caller's registers at one pc: CFA = register + offset, or an expression;
    `saved` lists (DWARF register, rule kind, offset or expression) for every register whose
    rule is not "same value"."""

    cfa_register: int  # -1 when the CFA is an expression
    cfa_offset: int
    cfa_expression: bytes | None
    saved: tuple[tuple[int, int, int | bytes], ...]
    ra_column: int
    signal_frame: bool  # CIE augmentation 'S': the caller's pc is not a return address
    function_start: int
    function_end: int


@dataclass(frozen=True)
class Cie:
    code_align: int
    data_align: int
    ra_column: int
    fde_encoding: int
    augmented: bool  # 'z': FDEs carry an augmentation data length
    signal_frame: bool
    instructions: bytes


@dataclass(frozen=True)
class Fde:
    start: int
    end: int
    cie: Cie
    instructions: bytes


def _read_encoded(data: bytes, pos: int, encoding: int, vaddr: int, datarel: int = 0):
    """(value, next pos) of a DW_EH_PE-encoded pointer; vaddr: link-time address of data[0]."""
    form, application = encoding & 0x0F, encoding & 0x70
    if form == 0x01:
        value, end = read_uleb(data, pos)
    elif form == 0x09:
        value, end = read_sleb(data, pos)
    elif form in _FIXED:
        layout = _FIXED[form]
        (value,), end = struct.unpack_from(layout, data, pos), pos + struct.calcsize(layout)
    else:
        raise CfiError(f"pointer encoding {encoding:#x} is not supported")
    if encoding & 0x80 or application not in (0, _DW_EH_PE_PCREL, _DW_EH_PE_DATAREL):
        raise CfiError(f"pointer encoding {encoding:#x} is not supported")
    if application == _DW_EH_PE_PCREL:
        value += vaddr + pos
    elif application == _DW_EH_PE_DATAREL:
        value += datarel
    return value & 0xFFFF_FFFF_FFFF_FFFF, end


class CfiSection:
    """The entries of one .eh_frame or .debug_frame, decoded on demand (CIEs cached)."""

    def __init__(self, data: bytes, vaddr: int, is_eh_frame: bool):
        self.data, self.vaddr, self.is_eh_frame = data, vaddr, is_eh_frame
        self._cies: dict[int, Cie] = {}

    def _entry(self, offset: int) -> tuple[int, int, int, int]:
        """(id field position, CIE id or pointer, end of entry, offset size); end 0: terminator."""
        (length,) = _U32.unpack_from(self.data, offset)
        size, pos = 4, offset + 4
        if length == 0xFFFF_FFFF:
            (length,), size, pos = _U64.unpack_from(self.data, pos), 8, pos + 8
        if length == 0:
            return pos, 0, 0, size
        end = pos + length
        if end > len(self.data):
            raise CfiError(f"CFI entry at {offset:#x} runs past its section")
        pointer = (_U64 if size == 8 else _U32).unpack_from(self.data, pos)[0]
        return pos, pointer, end, size

    def _is_cie(self, pointer: int, size: int) -> bool:
        return pointer == 0 if self.is_eh_frame else pointer == (1 << (8 * size)) - 1

    def fde_at(self, offset: int) -> Fde | None:
        """The FDE at offset, or None when the entry there is a CIE or the terminator."""
        id_pos, pointer, end, size = self._entry(offset)
        if end == 0 or self._is_cie(pointer, size):
            return None
        cie_offset = id_pos - pointer if self.is_eh_frame else pointer
        cie = self._cies.get(cie_offset) or self._cie_at(cie_offset)
        pos = id_pos + size
        if self.is_eh_frame:
            start, pos = _read_encoded(self.data, pos, cie.fde_encoding, self.vaddr)
            span, pos = _read_encoded(self.data, pos, cie.fde_encoding & 0x0F, self.vaddr)
        else:
            start, span = struct.unpack_from("<QQ", self.data, pos)
            pos += 16
        if cie.augmented:
            skip, pos = read_uleb(self.data, pos)
            pos += skip
        return Fde(start, start + span, cie, self.data[pos:end])

    def _cie_at(self, offset: int) -> Cie:
        id_pos, pointer, end, size = self._entry(offset)
        if end == 0 or not self._is_cie(pointer, size):
            raise CfiError(f"no CIE at {offset:#x}")
        data, pos = self.data, id_pos + size
        version = data[pos]
        augmentation = data[pos + 1 : data.index(b"\0", pos + 1)]
        pos += 2 + len(augmentation)
        if version >= 4:
            if data[pos] != 8:
                raise CfiError(f"CIE at {offset:#x}: address size {data[pos]} is not 8")
            pos += 2  # address size, segment selector size
        code_align, pos = read_uleb(data, pos)
        data_align, pos = read_sleb(data, pos)
        if version == 1:
            ra_column, pos = data[pos], pos + 1
        else:
            ra_column, pos = read_uleb(data, pos)
        fde_encoding, signal_frame, pos = self._augmentation(augmentation, pos, offset)
        cie = Cie(
            code_align,
            data_align,
            ra_column,
            fde_encoding,
            augmentation.startswith(b"z"),
            signal_frame,
            data[pos:end],
        )
        self._cies[offset] = cie
        return cie

    def _augmentation(self, augmentation: bytes, pos: int, offset: int) -> tuple[int, bool, int]:
        """(FDE pointer encoding, signal frame?, position of the initial instructions)."""
        if not augmentation:
            return 0x00, False, pos
        if not augmentation.startswith(b"z"):
            raise CfiError(f"CIE at {offset:#x}: augmentation {augmentation!r} is not supported")
        length, pos = read_uleb(self.data, pos)
        after, fde_encoding, signal_frame = pos + length, 0x00, False
        for letter in augmentation[1:].decode("ascii", "replace"):
            if letter == "R":
                fde_encoding, pos = self.data[pos], pos + 1
            elif letter == "L":
                pos += 1
            elif letter == "P":
                encoding = self.data[pos]
                _ignored, pos = _read_encoded(self.data, pos + 1, encoding & 0x7F, self.vaddr)
            elif letter == "S":
                signal_frame = True
            elif letter not in "BG":  # aarch64 pointer-auth and MTE letters carry no data
                raise CfiError(f"CIE at {offset:#x}: augmentation letter {letter!r}")
        return fde_encoding, signal_frame, after

    def scan(self) -> FdeIndex:
        """Index every FDE of the section by its start (for sections without a search table)."""
        rows, offset = [], 0
        while offset + 4 <= len(self.data):
            id_pos, pointer, end, size = self._entry(offset)
            if end == 0:
                if self.is_eh_frame:
                    break  # .eh_frame ends with a zero-length entry
                offset = id_pos
                continue
            if not self._is_cie(pointer, size):
                fde = self.fde_at(offset)
                if fde is not None and fde.end > fde.start:
                    rows.append((fde.start, offset))
            offset = end
        rows.sort()
        return FdeIndex([start for start, _ in rows], [offset for _, offset in rows])


class FdeIndex:
    """FDE starts in ascending order, with where each FDE is in its section."""

    def __init__(self, starts, offsets):
        self.starts, self.offsets = starts, offsets

    def candidate(self, pc: int) -> int | None:
        """Offset of the last FDE starting at or below pc (it may still end before pc)."""
        i = bisect.bisect_right(self.starts, pc) - 1
        return self.offsets[i] if i >= 0 else None


def hdr_index(image: ElfImage, hdr_vaddr: int) -> tuple[int, FdeIndex | None]:
    """(.eh_frame address, index from .eh_frame_hdr's table or None if it has no usable one)."""
    head = image.read_vaddr(hdr_vaddr, 32)
    version, pointer_encoding, count_encoding, table_encoding = head[:4]
    if version != 1:
        raise CfiError(f"{image.name}: .eh_frame_hdr version {version}")
    eh_frame, pos = _read_encoded(head, 4, pointer_encoding, hdr_vaddr)
    if count_encoding == _DW_EH_PE_OMIT or table_encoding != _EH_HDR_SORTED_TABLE:
        return eh_frame, None
    count, pos = _read_encoded(head, pos, count_encoding, hdr_vaddr)
    table = array("i", image.read_vaddr(hdr_vaddr + pos, 8 * count))
    if len(table) != 2 * count:
        raise CfiError(f"{image.name}: .eh_frame_hdr table cut short")
    starts = [hdr_vaddr + start for start in table[0::2]]
    offsets = [hdr_vaddr + fde - eh_frame for fde in table[1::2]]
    return eh_frame, FdeIndex(starts, offsets)


class CfiTable:
    """The CFI of one image: .eh_frame (searched through .eh_frame_hdr), then .debug_frame."""

    def __init__(self, image: ElfImage):
        self.image = image
        self._eh: tuple[CfiSection, FdeIndex] | None = None
        self._debug: tuple[CfiSection, FdeIndex] | None = None
        self._loaded_eh = self._loaded_debug = False

    def fde_for(self, pc: int) -> Fde | None:
        """The FDE covering link-time pc, or None."""
        for source in (self._eh_frame, self._debug_frame):
            loaded = source()
            if loaded is None:
                continue
            section, index = loaded
            offset = index.candidate(pc)
            fde = section.fde_at(offset) if offset is not None else None
            if fde is not None and fde.start <= pc < fde.end:
                return fde
        return None

    def rule_at(self, pc: int) -> Rule | None:
        fde = self.fde_for(pc)
        return None if fde is None else rule_in_fde(fde, pc)

    def _eh_frame(self) -> tuple[CfiSection, FdeIndex] | None:
        if not self._loaded_eh:
            self._loaded_eh = True
            self._eh = self._load_eh_frame()
        return self._eh

    def _debug_frame(self) -> tuple[CfiSection, FdeIndex] | None:
        if not self._loaded_debug:
            self._loaded_debug = True
            found = self.image.section_data(".debug_frame")
            if found is not None:
                section = CfiSection(found[1], found[0].addr, is_eh_frame=False)
                self._debug = section, section.scan()
        return self._debug

    def _load_eh_frame(self) -> tuple[CfiSection, FdeIndex] | None:
        image, index = self.image, None
        section = image.sections().get(".eh_frame")
        if image.eh_frame_hdr_vaddr is not None:
            vaddr, index = hdr_index(image, image.eh_frame_hdr_vaddr)
        elif section is not None:
            vaddr = section.addr
        else:
            return None
        if section is not None and section.addr == vaddr:
            data = image.read(section.offset, section.size)
        else:  # no section headers (the vdso may lack them): read to the segment's end
            data = image.read_vaddr(vaddr)
        cfi = CfiSection(data, vaddr, is_eh_frame=True)
        return cfi, index or cfi.scan()


class _Row:
    """The rules while a CFA program runs."""

    __slots__ = ("cfa_register", "cfa_offset", "cfa_expression", "registers")

    def __init__(self):
        self.cfa_register, self.cfa_offset, self.cfa_expression = REG_RSP, 0, None
        self.registers: dict[int, tuple[int, int | bytes]] = {}

    def copy(self) -> _Row:
        row = _Row()
        row.cfa_register, row.cfa_offset = self.cfa_register, self.cfa_offset
        row.cfa_expression, row.registers = self.cfa_expression, dict(self.registers)
        return row


def rule_in_fde(fde: Fde, pc: int) -> Rule:
    """Run the CIE's initial instructions, then the FDE's up to pc, and freeze the result."""
    row = _Row()
    try:
        _run(fde.cie.instructions, fde.cie, fde.start, None, row, None)
        initial = dict(row.registers)
        _run(fde.instructions, fde.cie, fde.start, pc, row, initial)
    except (IndexError, struct.error):
        raise CfiError(f"CFA program of the FDE at {fde.start:#x} is cut short") from None
    saved = tuple(
        (number, kind, argument)
        for number, (kind, argument) in sorted(row.registers.items())
        if number < TRACKED_REGISTERS and kind != SAME_VALUE
    )
    cfa_register = -1 if row.cfa_expression is not None else row.cfa_register
    return Rule(
        cfa_register,
        row.cfa_offset,
        row.cfa_expression,
        saved,
        fde.cie.ra_column,
        fde.cie.signal_frame,
        fde.start,
        fde.end,
    )


def _run(program: bytes, cie: Cie, loc: int, pc: int | None, row: _Row, initial) -> None:
    """Execute CFA instructions until the location passes pc (None: the whole program)."""
    data, pos, remembered = program, 0, []
    while pos < len(data):
        op = data[pos]
        pos += 1
        kind, low = op & 0xC0, op & 0x3F
        delta = None
        if kind == 0x40:  # DW_CFA_advance_loc
            delta = low
        elif kind == 0x80:  # DW_CFA_offset
            offset, pos = read_uleb(data, pos)
            row.registers[low] = (OFFSET, offset * cie.data_align)
        elif kind == 0xC0:  # DW_CFA_restore
            _restore(row, low, initial)
        elif op in (0x02, 0x03, 0x04):  # DW_CFA_advance_loc1/2/4
            size = 1 << (op - 2)
            delta, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        elif op == 0x0A:  # DW_CFA_remember_state
            if len(remembered) >= _MAX_REMEMBERED:
                raise CfiError("too many DW_CFA_remember_state")
            remembered.append(row.copy())
        elif op == 0x0B:  # DW_CFA_restore_state
            if not remembered:
                raise CfiError("DW_CFA_restore_state without remember_state")
            saved = remembered.pop()
            row.cfa_register, row.cfa_offset = saved.cfa_register, saved.cfa_offset
            row.cfa_expression, row.registers = saved.cfa_expression, saved.registers
        else:
            pos = _run_other(op, data, pos, cie, row, initial)
        if delta is not None:
            loc += delta * cie.code_align
            if pc is not None and loc > pc:
                return


def _run_other(op: int, data: bytes, pos: int, cie: Cie, row: _Row, initial) -> int:
    """The CFA instructions with operands other than advance/offset/restore."""
    if op == 0x00:  # DW_CFA_nop
        return pos
    if op == 0x2E:  # DW_CFA_GNU_args_size: only for exception handling
        return read_uleb(data, pos)[1]
    if op in (0x0C, 0x12):  # DW_CFA_def_cfa, def_cfa_sf
        row.cfa_register, pos = read_uleb(data, pos)
        row.cfa_offset, pos = (read_sleb if op == 0x12 else read_uleb)(data, pos)
        if op == 0x12:
            row.cfa_offset *= cie.data_align
        row.cfa_expression = None
        return pos
    if op == 0x0D:  # DW_CFA_def_cfa_register
        row.cfa_register, pos = read_uleb(data, pos)
        row.cfa_expression = None
        return pos
    if op in (0x0E, 0x13):  # DW_CFA_def_cfa_offset, def_cfa_offset_sf
        row.cfa_offset, pos = (read_sleb if op == 0x13 else read_uleb)(data, pos)
        if op == 0x13:
            row.cfa_offset *= cie.data_align
        return pos
    if op == 0x0F:  # DW_CFA_def_cfa_expression
        length, pos = read_uleb(data, pos)
        row.cfa_expression = data[pos : pos + length]
        return pos + length
    if op not in _REGISTER_OPS:
        raise CfiError(f"CFA instruction {op:#x} is not supported")
    number, pos = read_uleb(data, pos)
    if op == 0x06:  # DW_CFA_restore_extended
        _restore(row, number, initial)
    elif op == 0x07:  # DW_CFA_undefined
        row.registers[number] = (UNDEFINED, 0)
    elif op == 0x08:  # DW_CFA_same_value
        row.registers[number] = (SAME_VALUE, 0)
    elif op == 0x09:  # DW_CFA_register
        other, pos = read_uleb(data, pos)
        row.registers[number] = (REGISTER, other)
    elif op in (0x10, 0x16):  # DW_CFA_expression, val_expression
        length, pos = read_uleb(data, pos)
        kind = EXPRESSION if op == 0x10 else VAL_EXPRESSION
        row.registers[number] = (kind, data[pos : pos + length])
        pos += length
    else:
        pos = _offset_rule(op, number, data, pos, cie, row)
    return pos


def _offset_rule(op: int, number: int, data: bytes, pos: int, cie: Cie, row: _Row) -> int:
    """DW_CFA_offset_extended(_sf), val_offset(_sf), GNU_negative_offset_extended."""
    signed = op in (0x11, 0x15)
    value, pos = (read_sleb if signed else read_uleb)(data, pos)
    if op == 0x2F:
        value = -value
    kind = VAL_OFFSET if op in (0x14, 0x15) else OFFSET
    row.registers[number] = (kind, value * cie.data_align)
    return pos


def _restore(row: _Row, number: int, initial) -> None:
    if initial is not None and number in initial:
        row.registers[number] = initial[number]
    else:
        row.registers.pop(number, None)
