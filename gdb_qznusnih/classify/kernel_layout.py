"""Pure helpers for whole-system (QEMU) mode: x86 registers, task layout, user stacks.

No gdb here: kernel.py reads registers and memory and hands the numbers to these.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

X86_64 = "x86_64"
I386 = "i386"

CR0_PG = 1 << 31
PTI_USER_BIT = 1 << 12  # PTI: the user half of a PGD pair is the kernel one plus 4 KiB
CR3_NOFLUSH = 1 << 63

# Lowest kernel address, to tell user code pointers from kernel ones.  i386 assumes the
# usual 3G/1G split (CONFIG_PAGE_OFFSET=0xC0000000).
USER_LIMIT = {X86_64: 0x0000_8000_0000_0000, I386: 0xC000_0000}
WORD_SIZE = {X86_64: 8, I386: 4}

# Where pt_regs sits under the top of a task's kernel stack, by arch:
# (THREAD_SIZE, TOP_OF_KERNEL_STACK_PADDING) pairs, likeliest first.  x86_64: 16 KiB,
# 32 KiB with KASAN, no padding.  i386 (6.1): 8 KiB, padding 8, or 16 with CONFIG_VM86.
STACK_LAYOUTS = {
    X86_64: ((16384, 0), (32768, 0)),
    I386: ((8192, 8), (8192, 16), (8192, 0)),
}


# Where a task enters the kernel: a backtrace past these is the unwinder guessing
# through an interrupt frame, so kernel frames end here and the user frames follow.
KERNEL_ENTRY_PREFIXES = (
    "entry_SYSCALL",  # x86_64 syscall, and entry_SYSCALL_compat
    "entry_SYSENTER",  # i386 sysenter, x86_64 entry_SYSENTER_compat
    "entry_INT80",  # int $0x80, both
    "asm_exc_",  # exceptions (page faults, debug traps)
    "asm_sysvec_",
    "asm_common_interrupt",
    "handle_exception",  # i386
    "ret_from_fork",
)


def kernel_entry_index(names: list[str | None]) -> int | None:
    """Index of the first frame that is a kernel entry point, or None."""
    for index, name in enumerate(names):
        if name and name.startswith(KERNEL_ENTRY_PREFIXES):
            return index
    return None


def user_limit(word_size: int) -> int:
    """The lowest kernel address where pointers are `word_size` bytes (8: x86_64, 4: i386)."""
    return USER_LIMIT[X86_64 if word_size == 8 else I386]


def kernel_limit_of(pcs) -> int:
    """Where kernel addresses start for the pcs of one record's backtrace, read from a log
    that names no architecture: any pc above 4 GiB means x86_64, else i386's 3G split."""
    return user_limit(8 if any(pc > 0xFFFF_FFFF for pc in pcs) else 4)


def arch_from_gdb_name(name: str) -> str:
    """'i386:x86-64' -> x86_64, 'i386' / 'i386:intel' -> i386."""
    return X86_64 if "x86-64" in name else I386


def privilege_mode(cs: int) -> str:
    """'user' for CPL 3, else 'kernel'."""
    return "user" if cs & 3 == 3 else "kernel"


def paging_enabled(cr0: int) -> bool:
    return bool(cr0 & CR0_PG)


def address_space_id(cr3: int, arch: str) -> int:
    """The page-table root of cr3, the same for a process's user and kernel halves.

    Masks the PCID / flag bits (low 12 on x86_64; low 5 for i386 PAE) and bit 12,
    which PTI flips between the user and the kernel copy of the PGD.
    """
    if arch == X86_64:
        return cr3 & ~(CR3_NOFLUSH | 0xFFF | PTI_USER_BIT)
    return cr3 & 0xFFFF_FFFF & ~(0x1F | PTI_USER_BIT)


def percpu_base_source(arch: str, smp: bool, mode: str) -> str:
    """Which value the per-CPU offset comes from.

    - "none": a UP kernel; per-CPU variables are plain globals.
    - "gs_base" / "k_gs_base": x86_64 SMP; the kernel's GS base, swapped out to
      KERNEL_GS_BASE while in user mode.
    - "per_cpu_offset": i386 SMP, __per_cpu_offset[cpu].
    """
    if not smp:
        return "none"
    if arch == X86_64:
        return "gs_base" if mode == "kernel" else "k_gs_base"
    return "per_cpu_offset"


@dataclass(frozen=True)
class TaskLayout:
    """Offsets of the task_struct fields a hit needs, read as one block."""

    pid: int
    tgid: int
    comm: int
    comm_len: int = 16

    @property
    def start(self) -> int:
        return min(self.pid, self.tgid, self.comm)

    @property
    def length(self) -> int:
        return max(self.pid + 4, self.tgid + 4, self.comm + self.comm_len) - self.start

    def decode(self, block: bytes) -> tuple[int, int, str]:
        """(tgid, pid, comm) from the block read at task + start."""
        base = self.start
        (pid,) = struct.unpack_from("<i", block, self.pid - base)
        (tgid,) = struct.unpack_from("<i", block, self.tgid - base)
        raw = block[self.comm - base : self.comm - base + self.comm_len]
        return tgid, pid, decode_comm(raw)


def decode_comm(raw: bytes) -> str:
    """task_struct.comm: NUL-terminated, at most 16 bytes."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def pt_regs_address(stack: int, thread_size: int, padding: int, sizeof_pt_regs: int) -> int:
    """task_pt_regs(task): the user registers saved at the top of the kernel stack."""
    return stack + thread_size - padding - sizeof_pt_regs


def unpack_words(block: bytes, word_size: int) -> list[int]:
    fmt = f"<{len(block) // word_size}{'Q' if word_size == 8 else 'I'}"
    return list(struct.unpack_from(fmt, block))


def follows_call(code: bytes) -> bool:
    """Whether `code` (the bytes just before a return address) ends with a call.

    Checks `call rel32` (e8) and the indirect `call r/m` forms (ff /2) of 2, 3, 6 and 7
    bytes, the last with a segment prefix as in i386 glibc's `call *%gs:0x10`.
    """
    n = len(code)
    if n >= 5 and code[n - 5] == 0xE8:
        return True
    for size in (2, 3, 6, 7):
        if n >= size and code[n - size] == 0xFF and (code[n - size + 1] >> 3) & 7 == 2:
            return True
    return False


def call_target(return_address: int, code: bytes) -> int | None:
    """Where the `call rel32` ending at return_address goes; None for other calls.

    `code` is the 5 bytes before the return address.
    """
    if len(code) >= 5 and code[-5] == 0xE8:
        (rel,) = struct.unpack_from("<i", code, len(code) - 4)
        return return_address + rel
    return None


def walk_user_stack(
    ip: int,
    sp: int,
    bp: int,
    word_size: int,
    read_words: Callable[[int, int], list[int] | None],
    is_return_address: Callable[[int], bool],
    max_depth: int,
    scan_words: int = 64,
    target_of: Callable[[int], int | None] = lambda ret: None,
    function_start: Callable[[int], int | None] = lambda pc: None,
) -> list[int]:
    """The pcs of a user stack, newest first, from its saved ip, sp and bp.

    Frame-pointer walk with one extension: stubs without a frame pointer (glibc's
    syscall wrappers, the i386 vDSO) are found by scanning from sp for return
    addresses up to the first frame record (a slot holding a higher stack address,
    then a return address).  Stale return addresses left in that stretch are told
    apart when `target_of(ret)` (the callee of a direct call) and
    `function_start(pc)` are known: a real one calls the function of the frame
    below it, and the scan ends at the function that owns the frame record.
    read_words(addr, n) gives n words or None when unreadable.
    """
    pcs = [ip]
    if max_depth <= 1:
        return pcs[:max_depth]
    window = read_words(sp, scan_words) or []

    def word_at(addr: int) -> int | None:
        index, rem = divmod(addr - sp, word_size)
        if rem == 0 and 0 <= index < len(window):
            return window[index]
        words = read_words(addr, 1)
        return words[0] if words else None

    def is_record(slot: int) -> bool:
        saved_bp, ret = word_at(slot), word_at(slot + word_size)
        return (
            saved_bp is not None
            and ret is not None
            and (saved_bp == 0 or slot < saved_bp < slot + (1 << 20))
            and is_return_address(ret)
        )

    def calls_into(ret: int, pc: int) -> bool:
        callee, start = target_of(ret), function_start(pc)
        return callee is None or start is None or callee == start

    # The first frame record is at bp (x86_64: syscall stubs leave rbp alone), or at
    # the ebp that i386's vDSO pushed at [sp] before `mov %esp,%ebp; sysenter`.
    record = None
    for candidate in (bp, window[0] if window else None):
        if candidate is not None and sp <= candidate < sp + (1 << 20) and is_record(candidate):
            record = candidate
            break
    owner = target_of(word_at(record + word_size)) if record is not None else None
    for index, value in enumerate(window):
        slot = sp + index * word_size
        if record is not None and slot >= record:
            break
        if record is None and is_record(slot):
            record = slot
            break
        if is_return_address(value) and calls_into(value, pcs[-1]):
            pcs.append(value)
            if len(pcs) >= max_depth:
                return pcs
            if owner is not None and function_start(value) == owner:
                break  # reached the function whose frame record is next
    while record and len(pcs) < max_depth:
        ret = word_at(record + word_size)
        if ret is None or not is_return_address(ret):
            break
        pcs.append(ret)
        saved_bp = word_at(record)
        if saved_bp is None or not record < saved_bp < record + (1 << 20):
            break
        record = saved_bp
    return pcs
