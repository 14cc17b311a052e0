"""perf/kernel_symbols.py: kernel pcs named from /proc/kallsyms' lines."""

from __future__ import annotations

from gdb_qznusnih.perf.kernel_symbols import KernelSymbols
from gdb_qznusnih.perf.symbolizer import SymbolFrame

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff816bab70 T vfs_read
ffffffff816bb820 T ksys_read
ffffffff816bb900 t helper_after
ffffffff81d35f00 t read_zero
ffffffff81d36000 W weak_one
ffffffff82000000 D some_data
ffffffffc0a00000 t nf_hook [nf_tables]
ffffffffc0a00100 T nf_exit\t[nf_tables]
not a line
zzzz T bad_address
"""
HIDDEN = """\
0000000000000000 T _stext
0000000000000000 T vfs_read
"""


def test_the_function_holding_a_pc():
    symbols = KernelSymbols.parse(KALLSYMS)
    assert symbols.visible
    assert symbols.function(0xFFFFFFFF816BAB70) == "vfs_read"  # its first byte
    assert symbols.function(0xFFFFFFFF816BB81F) == "vfs_read"  # its last, before ksys_read
    assert symbols.function(0xFFFFFFFF816BB820) == "ksys_read"
    assert symbols.function(0xFFFFFFFF81D35F79) == "read_zero"  # t: a local function
    assert symbols.function(0xFFFFFFFF81D36001) == "weak_one"  # W: weak code
    assert symbols.function(0xFFFFFFFFC0A00010) == "nf_hook"  # a module's, without [module]
    assert symbols.function(0xFFFFFFFFC0A00200) == "nf_exit"


def test_no_name_before_the_first_symbol_nor_in_data():
    symbols = KernelSymbols.parse(KALLSYMS)
    assert symbols.function(0xFFFFFFFF80000000) is None
    assert symbols.function(0xFFFFFFFF82000010) is None  # data ends the code before it


def test_hidden_addresses_name_nothing():
    """kptr_restrict: every address reads 0 to an unprivileged reader."""
    symbols = KernelSymbols.parse(HIDDEN)
    assert not symbols.visible
    assert symbols.function(0xFFFFFFFF816BAB80) is None
    assert not KernelSymbols.parse("").visible


def test_frames_are_named_at_pc_minus_one_and_shown_at_pc():
    """The trap ip follows the accessing instruction, a return address its call: a call
    that ends a function returns to the first byte of the next one."""
    symbols = KernelSymbols.parse(KALLSYMS)
    pcs = (0xFFFFFFFF81D35F79, 0xFFFFFFFF816BB820)
    assert symbols.frames(pcs) == (
        SymbolFrame(0xFFFFFFFF81D35F79, "read_zero", None, None),
        SymbolFrame(0xFFFFFFFF816BB820, "vfs_read", None, None),
    )


def test_an_unreadable_file_gives_no_symbols(tmp_path):
    assert not KernelSymbols.load(str(tmp_path / "missing")).visible
