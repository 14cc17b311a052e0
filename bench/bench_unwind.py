#!/usr/bin/env python3
"""The offline CFI unwinder's costs: a cached 6-frame unwind, a rule for a new pc, a new module.

Builds tests/c/unwind_chain.c (-O2, no frame pointers), has a real gdb stop it inside libc's
vector memset on a write watchpoint and dump the registers and stack (tests/unwind/gdb_dump.py),
then times, on that sample:
  - the unwind of its first 6 frames (memset, level3, level2, level1, main,
    __libc_start_call_main) with every rule cached: the per-record hot path;
  - the rule for a new pc in libc once its CFI is loaded (over distinct FDEs of libc);
  - the first pc of a module: opening libc and indexing .eh_frame_hdr.

Usage: bench/bench_unwind.py [--rounds 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gdb_qznusnih.perf.modules import ModuleMap  # noqa: E402
from gdb_qznusnih.perf.unwind import Unwinder  # noqa: E402


def memset_sample(workdir: Path) -> dict:
    program = workdir / "unwind_chain"
    source = REPO / "tests" / "c" / "unwind_chain.c"
    flags = ["-g", "-O2", "-fomit-frame-pointer", "-Wl,-z,lazy"]
    subprocess.run(["gcc", *flags, "-o", str(program), str(source)], check=True)
    prefix = workdir / "dump"
    command = ["gdb", "-nx", "-batch", "-ex", f"python dump_prefix = {str(prefix)!r}"]
    command += ["-x", str(REPO / "tests" / "unwind" / "gdb_dump.py"), str(program)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return json.loads(Path(f"{prefix}.memset.json").read_text())


def module_map(record: dict) -> ModuleMap:
    vdso, start = bytes.fromhex(record["vdso"]), record["vdso_start"]
    return ModuleMap.from_maps(
        record["maps"], read_memory=lambda address, size: vdso[address - start :][:size]
    )


def cached_unwind_us(record: dict, rounds: int) -> tuple[float, list[int]]:
    unwinder = Unwinder(module_map(record))
    registers, stack = record["registers"], bytes.fromhex(record["stack"])
    backtrace = unwinder.unwind(registers, stack, max_frames=6)
    started = time.perf_counter()
    for _ in range(rounds):
        unwinder.unwind(registers, stack, max_frames=6)
    return (time.perf_counter() - started) / rounds * 1e6, backtrace.pcs


def new_module_and_new_pc_ms(record: dict) -> tuple[float, float, int]:
    """(first pc in libc: open + index, ms; a new pc once loaded, ms; pcs timed)."""
    modules = module_map(record)
    libc = next(m for m in modules.modules() if "libc.so" in m.path)
    started = time.perf_counter()
    libc.rule_at(record["frames"][0]["pc"])
    first = time.perf_counter() - started
    section, index = libc.cfi._eh_frame()  # the FDE starts libc's .eh_frame_hdr lists
    pcs = [start + libc.bias + 1 for start in index.starts[::4]]
    started = time.perf_counter()
    for pc in pcs:
        libc.rule_at(pc)
    each = (time.perf_counter() - started) / len(pcs)
    return first * 1e3, each * 1e3, len(pcs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qzn-bench-unwind-") as workdir:
        record = memset_sample(Path(workdir))  # the program must outlive the unwinds
        microseconds, pcs = cached_unwind_us(record, args.rounds)
        first_ms, new_pc_ms, count = new_module_and_new_pc_ms(record)
    if len(pcs) != 6:
        print(f"bench_unwind: the sample unwound to {len(pcs)} frames, not 6", file=sys.stderr)
        return 1
    print(f"cached unwind of {len(pcs)} frames: {microseconds:.2f} us ({args.rounds:,} rounds)")
    print(f"rule for a new pc in libc: {new_pc_ms:.3f} ms (mean over {count:,} FDEs)")
    print(f"first pc in libc (open, .eh_frame_hdr index, one FDE): {first_ms:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
