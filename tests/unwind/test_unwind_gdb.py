"""The offline CFI unwinder against gdb's own backtrace, frame by frame.

tests/c/unwind_chain.c is built at -O0/-O1/-O2, with and without frame pointers, PIE and not
(and once with its own CFI only in .debug_frame).  A real gdb stops it in a PLT stub, in a qsort
callback, inside libc's vector memset (a write watchpoint: the trap the perf engine samples)
and under a signal handler, and dumps what a perf sample holds: the registers, the stack from
$rsp, /proc/PID/maps and the vdso.  The unwinder, given only that, must find gdb's frame pcs
exactly.  gdb's inlined and tail-call frames are not on the stack, so they are left out.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from gdb_qznusnih.perf.elf import ElfImage, bytes_reader
from gdb_qznusnih.perf.modules import ModuleMap
from gdb_qznusnih.perf.unwind import OUTERMOST, STACK_CUT, STOP, Unwinder
from gdb_qznusnih.perf.unwind_cfi import CfiSection

pytestmark = pytest.mark.gdb

HERE = Path(__file__).resolve().parent
STOPS = ("plt", "qsort", "memset", "signal")
BUILDS = {
    f"{level}-{fp}-{pie}": (
        f"-{level}",
        "-fno-omit-frame-pointer" if fp == "fp" else "-fomit-frame-pointer",
        "-pie" if pie == "pie" else "-no-pie",
        "-Wl,-z,lazy",  # the first qsort call goes through the PLT's lazy-binding path
    )
    for level, fp, pie in itertools.product(("O0", "O1", "O2"), ("fp", "nofp"), ("pie", "nopie"))
}
# The program's own functions described in .debug_frame only (libc's stay in .eh_frame).
BUILDS["O2-debug-frame"] = ("-O2", "-fno-asynchronous-unwind-tables", "-Wl,-z,lazy")


@pytest.fixture(scope="module")
def dumps(build_c, tmp_path_factory):
    """dumps(build) -> (program, {stop: record}), one gdb run per build."""
    done: dict[str, tuple[Path, dict]] = {}

    def run(build: str):
        if build not in done:
            program = build_c("unwind_chain", extra=BUILDS[build])
            prefix = tmp_path_factory.mktemp("unwind") / build
            command = ["gdb", "-nx", "-batch", "-ex", f"python dump_prefix = {str(prefix)!r}"]
            command += ["-x", str(HERE / "gdb_dump.py"), str(program)]
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
            records = {}
            for stop in STOPS:
                path = Path(f"{prefix}.{stop}.json")
                assert path.exists(), f"gdb made no {stop} dump:\n{result.stdout}{result.stderr}"
                records[stop] = json.loads(path.read_text())
            done[build] = program, records
        return done[build]

    return run


def modules_of(record: dict) -> ModuleMap:
    """The module map of the dumped process: files by path, the vdso from the dump."""
    vdso, vdso_start = bytes.fromhex(record["vdso"]), record["vdso_start"]
    return ModuleMap.from_maps(
        record["maps"],
        read_memory=lambda address, size: vdso[address - vdso_start : address - vdso_start + size],
    )


def gdb_pcs(record: dict) -> list[int]:
    return [frame["pc"] for frame in record["frames"] if not frame["virtual"]]


def unwind(record: dict, stack: bytes | None = None, stop_at_main: bool = True):
    modules = modules_of(record)
    executable = modules.find(record["frames"][-1]["pc"])  # gdb's last frame: main
    stop_at = {executable.symbol("main")} if stop_at_main else set()
    stack = bytes.fromhex(record["stack"]) if stack is None else stack
    return Unwinder(modules).unwind(record["registers"], stack, stop_at=stop_at), modules


def check_scenario(stop: str, record: dict) -> None:
    """The stop is the one planned, so the comparison tests what it claims to."""
    names = [frame["name"] for frame in record["frames"]]
    assert names[-4:] == ["level3", "level2", "level1", "main"]
    if stop == "plt":
        assert names[0] == "qsort@plt"
    elif stop == "qsort":
        assert names[:2] == ["at_bottom", "compare_ints"] and "msort_with_tmp" in names
    elif stop == "memset":
        assert names[0].startswith("__memset_") and names[1] == "level3"
    else:
        assert any(frame["sigtramp"] for frame in record["frames"])


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("build", BUILDS)
def test_unwind_equals_gdb_backtrace(build, stop, dumps):
    _program, records = dumps(build)
    record = records[stop]
    check_scenario(stop, record)
    backtrace, _modules = unwind(record)
    assert [hex(pc) for pc in backtrace.pcs] == [hex(pc) for pc in gdb_pcs(record)]
    assert backtrace.end == STOP


@pytest.mark.parametrize("build", ["O0-fp-pie", "O2-nofp-nopie", "O2-debug-frame"])
def test_unwind_past_main_ends_in_start(build, dumps):
    """Without a stop, the unwind goes on through libc's start code to _start, whose return
    address is undefined: the clean end of every main-thread stack."""
    _program, records = dumps(build)
    record = records["qsort"]
    backtrace, modules = unwind(record, stop_at_main=False)
    gdb = gdb_pcs(record)
    assert backtrace.pcs[: len(gdb)] == gdb
    assert len(backtrace.pcs) == len(gdb) + 3  # __libc_start_call_main, __libc_start_main, _start
    assert backtrace.end == OUTERMOST
    executable = modules.find(gdb[-1])
    assert modules.function_start(backtrace.pcs[-1] - 1) == executable.symbol("_start")


def test_debug_frame_build_has_its_cfi_only_there(dumps):
    """The O2-debug-frame case really unwinds the program's frames from .debug_frame."""
    program, records = dumps("O2-debug-frame")
    image = ElfImage(bytes_reader(program.read_bytes()), str(program))
    eh_section, eh_data = image.section_data(".eh_frame")
    eh_starts = CfiSection(eh_data, eh_section.addr, is_eh_frame=True).scan().starts
    debug_section, debug_data = image.section_data(".debug_frame")
    debug_starts = CfiSection(debug_data, debug_section.addr, is_eh_frame=False).scan().starts
    for name in ("level1", "level2", "level3", "compare_ints", "main"):
        assert image.symbol(name) in debug_starts and image.symbol(name) not in eh_starts


@pytest.mark.parametrize("build", ["O0-fp-pie", "O2-nofp-nopie"])
def test_cut_stack_ends_cleanly_and_says_so(build, dumps):
    """A stack copy too short for the next frame ends the unwind with "stack-cut" and the
    frames found so far, never an exception: at every length, in steps of 8 bytes."""
    _program, records = dumps(build)
    record = records["memset"]
    stack = bytes.fromhex(record["stack"])
    full, _modules = unwind(record, stop_at_main=False)
    assert full.end == OUTERMOST
    for length in range(0, len(stack) + 1, 8):
        cut, _modules = unwind(record, stack[:length], stop_at_main=False)
        assert cut.pcs == full.pcs[: len(cut.pcs)]
        assert cut.end == (OUTERMOST if cut.pcs == full.pcs else STACK_CUT), length
    # 512 bytes reach main's frame but not past its 1 KiB of locals (DESIGN's measurement).
    cut, _modules = unwind(record, stack[:512], stop_at_main=False)
    assert (cut.pcs, cut.end) == (gdb_pcs(record), STACK_CUT)
    nothing, _modules = unwind(record, b"", stop_at_main=False)
    assert (nothing.pcs, nothing.end) == ([record["registers"]["rip"]], STACK_CUT)
