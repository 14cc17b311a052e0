"""kernel_layout: the pure side of whole-system mode."""

import struct

import pytest

from gdb_qznusnih.classify import kernel_layout as kl


def test_arch_from_gdb_name():
    assert kl.arch_from_gdb_name("i386:x86-64") == kl.X86_64
    assert kl.arch_from_gdb_name("i386") == kl.I386
    assert kl.arch_from_gdb_name("i386:intel") == kl.I386


@pytest.mark.parametrize(
    "cs, mode", [(0x10, "kernel"), (0x33, "user"), (0x60, "kernel"), (0x73, "user")]
)
def test_privilege_mode(cs, mode):
    assert kl.privilege_mode(cs) == mode


def test_paging_enabled():
    assert not kl.paging_enabled(0x10)  # right after reset, with -S
    assert kl.paging_enabled(0x80050033)  # a running x86_64 kernel


def test_address_space_id_masks_pti_and_pcid_bits():
    kernel_half = 0x3E1A000
    user_half = kernel_half | kl.PTI_USER_BIT
    assert kl.address_space_id(kernel_half, kl.X86_64) == kl.address_space_id(user_half, kl.X86_64)
    assert kl.address_space_id(user_half | 0x5 | kl.CR3_NOFLUSH, kl.X86_64) == 0x3E1A000
    assert kl.address_space_id(0x1F3C020, kl.I386) == 0x1F3C020  # PAE: 32-byte aligned
    assert kl.address_space_id(0x1F3D020 | 0x18, kl.I386) == 0x1F3C020  # PTI bit, PCD/PWT


@pytest.mark.parametrize(
    "arch, smp, mode, source",
    [
        (kl.X86_64, False, "user", "none"),
        (kl.I386, False, "kernel", "none"),
        (kl.X86_64, True, "kernel", "gs_base"),
        (kl.X86_64, True, "user", "k_gs_base"),
        (kl.I386, True, "user", "per_cpu_offset"),
        (kl.I386, True, "kernel", "per_cpu_offset"),
    ],
)
def test_percpu_base_source(arch, smp, mode, source):
    assert kl.percpu_base_source(arch, smp, mode) == source


def test_task_layout_reads_one_block():
    layout = kl.TaskLayout(pid=0x4A0, tgid=0x4A4, comm=0x6C8)
    assert layout.start == 0x4A0
    assert layout.length == 0x6C8 + 16 - 0x4A0
    block = bytearray(layout.length)
    struct.pack_into("<ii", block, 0, 43, 42)
    block[0x6C8 - 0x4A0 : 0x6C8 - 0x4A0 + 13] = b"guest_tester\0"
    assert layout.decode(bytes(block)) == (42, 43, "guest_tester")


def test_decode_comm_full_length_and_garbage():
    assert kl.decode_comm(b"0123456789abcdef") == "0123456789abcdef"
    assert kl.decode_comm(b"sh\0junk\xff") == "sh"


def test_pt_regs_address():
    # x86_64: 16 KiB stack, no padding, 168-byte pt_regs.
    assert kl.pt_regs_address(0xFFFFC90000010000, 16384, 0, 168) == 0xFFFFC90000013F58
    # i386: 8 KiB stack, 8 bytes of padding, 68-byte pt_regs.
    assert kl.pt_regs_address(0xC1234000, 8192, 8, 68) == 0xC1235FB4


def test_follows_call():
    assert kl.follows_call(bytes([0x90, 0x90, 0xE8, 1, 2, 3, 4]))  # call rel32
    assert kl.follows_call(bytes([0x90, 0x90, 0x90, 0x90, 0x90, 0xFF, 0xD0]))  # call *%rax
    assert kl.follows_call(bytes([0x65, 0xFF, 0x15, 0x10, 0, 0, 0]))  # call *%gs:0x10
    assert not kl.follows_call(bytes([0x90] * 7))
    assert not kl.follows_call(bytes([0x90, 0x90, 0x90, 0x90, 0x90, 0xFF, 0xE0]))  # jmp *%rax


class FakeStack:
    """Word-addressed memory for walk_user_stack."""

    def __init__(self, word, words):
        self.word = word
        self.words = words  # address -> value

    def read_words(self, address, count):
        return [self.words.get(address + i * self.word, 0) for i in range(count)]


CODE = {0x401100, 0x401200, 0x401300, 0x401400}  # return addresses after calls


def test_walk_x86_64_syscall_wrapper_then_frame_pointers():
    # read() is a leaf without a frame: [sp] returns into fill_from_zero, whose rbp
    # is still in bp; above it kernel_accesses and main chain by frame pointers.
    sp, bp = 0x7FFF0000, 0x7FFF0020
    stack = FakeStack(
        8,
        {
            sp: 0x401100,  # into fill_from_zero
            sp + 8: 3,  # fd, a local
            bp: 0x7FFF0040,
            bp + 8: 0x401200,  # into kernel_accesses
            0x7FFF0040: 0x7FFF0060,
            0x7FFF0048: 0x401300,  # into main
            0x7FFF0060: 0,
            0x7FFF0068: 0x401400,  # into libc's start
        },
    )
    pcs = kl.walk_user_stack(0x439ABD, sp, bp, 8, stack.read_words, CODE.__contains__, 16)
    assert pcs == [0x439ABD, 0x401100, 0x401200, 0x401300, 0x401400]


def test_walk_i386_vdso_scans_to_first_frame_record():
    # __kernel_vsyscall pushed ebp, edx, ecx: bp is no frame record; the scan finds
    # the return into the libc stub, then the frame record of fill_from_zero.
    sp = 0xBF000000
    stack = FakeStack(
        4,
        {
            sp: 0xBF000040,
            sp + 4: 1,
            sp + 8: 0x4A7100,
            sp + 12: 0x401100,  # into __libc_read
            sp + 16: 7,
            sp + 20: 0x401200,  # into fill_from_zero
            0xBF000040: 0xBF000060,
            0xBF000044: 0x401300,  # into kernel_accesses
            0xBF000060: 0,
            0xBF000064: 0x401400,  # into main
        },
    )
    pcs = kl.walk_user_stack(0xB7FFF549, sp, sp, 4, stack.read_words, CODE.__contains__, 16)
    assert pcs == [0xB7FFF549, 0x401100, 0x401200, 0x401300, 0x401400]


def test_walk_respects_max_depth_and_unreadable_memory():
    assert kl.walk_user_stack(
        0x1234, 0x7FFF0000, 0, 8, lambda a, n: None, CODE.__contains__, 4
    ) == [0x1234]
    stack = FakeStack(8, {0x7FFF0000: 0x401100, 0x7FFF0008: 0x401200})
    pcs = kl.walk_user_stack(0x1234, 0x7FFF0000, 0, 8, stack.read_words, CODE.__contains__, 2)
    assert pcs == [0x1234, 0x401100]


def test_kernel_entry_index():
    names = ["read_zero", "vfs_read", "do_syscall_64", "entry_SYSCALL_64", None, None]
    assert kl.kernel_entry_index(names) == 3
    assert kl.kernel_entry_index(["pipe_write", "entry_SYSENTER_32", "x"]) == 1
    assert kl.kernel_entry_index(["pipe_write", "vfs_write", None]) is None


def test_call_target():
    # e8 rel32 at 0x8049744, returning to 0x8049749: target 0x8049749 + 0x2c367.
    assert kl.call_target(0x8049749, bytes([0xE8, 0x67, 0xC3, 0x02, 0x00])) == 0x8075AB0
    assert kl.call_target(0x401200, bytes([0xE8, 0xFB, 0xFF, 0xFF, 0xFF])) == 0x4011FB
    assert kl.call_target(0x8075AE3, bytes([0x65, 0xFF, 0x15, 0x10, 0x00])) is None


def test_walk_skips_stale_return_addresses_with_call_targets():
    # The i386 dump seen under QEMU: between the real return addresses (into read,
    # into fill_from_zero) lie stale ones from earlier calls (setbuf, printf).
    sp, record = 0xBFA04290, 0xBFA042E8
    read, fill, kernel_accesses, main = 0x8075AB0, 0x80497AD, 0x80498B6, 0x804994B
    rets = {
        0x8075AE3: (read, None),  # read+51, `call *%gs:0x10` into the vDSO
        0x805B817: (0x805B810, 0x8075000),  # stale: setbuf calling something else
        0x80497E0: (fill, read),  # fill_from_zero+51: call read
        0x8052B05: (0x8052AE0, 0x8050000),  # stale: printf
        0x80497A7: (0x8049785, 0x80522E0),  # stale: user_accesses calling printf
        0x80498C1: (kernel_accesses, fill),  # kernel_accesses+11: call fill_from_zero
        0x80499CF: (main, kernel_accesses),
    }
    stack = FakeStack(
        4,
        {
            sp: record,
            sp + 4: 1,
            sp + 8: 0x80EF080,
            sp + 12: 0x8075AE3,
            sp + 16: 0x805B817,
            sp + 44: 0x80497E0,
            sp + 60: 0x8052B05,
            sp + 80: 0x80497A7,
            record: 0xBFA042F8,
            record + 4: 0x80498C1,
            0xBFA042F8: 0,
            0xBFA042FC: 0x80499CF,
        },
    )
    pcs = kl.walk_user_stack(
        0xB7FF4545,
        sp,
        record,
        4,
        stack.read_words,
        rets.__contains__,
        16,
        target_of=lambda ret: rets.get(ret, (None, None))[1],
        function_start=lambda pc: rets[pc][0] if pc in rets else None,
    )
    assert pcs == [0xB7FF4545, 0x8075AE3, 0x80497E0, 0x80498C1, 0x80499CF]


def test_user_limit_is_the_first_kernel_address_of_each_pointer_size():
    assert kl.user_limit(8) == 0x0000_8000_0000_0000 == kl.USER_LIMIT[kl.X86_64]
    assert kl.user_limit(4) == 0xC000_0000 == kl.USER_LIMIT[kl.I386]
