#!/usr/bin/env python3
"""The symbolizer's costs: gdb's start with a process's modules loaded, and a unique pc.

Builds tests/c/symbols.c (-O2) and its dlopen'ed plugin, starts it (it waits on stdin, never
attached), takes its module map and times:
  - Symbolizer(map): gdb -nx -batch started, the program, the plugin, libc (with its separate
    debug info), ld.so and the vdso loaded;
  - a return address in libc (frames only), one per round trip and in one batch;
  - a trap ip in libc (the instruction ending there, decoded from the FDE start, and frames).
Pcs are distinct FDEs of libc, so every lookup is a miss of the client's cache.

Usage: bench/bench_symbolizer.py [--pcs 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gdb_qznusnih.perf.modules import ModuleMap  # noqa: E402
from gdb_qznusnih.perf.symbolizer import Symbolizer  # noqa: E402

TRAP_OFFSET = 24  # into the function: a few instructions to decode


def build(workdir: Path) -> tuple[Path, Path]:
    program, plugin = workdir / "symbols", workdir / "symbols_plugin.so"
    source = REPO / "tests" / "c"
    gcc = ["gcc", "-g", "-O2"]
    subprocess.run([*gcc, "-o", str(program), str(source / "symbols.c")], check=True)
    plugin_flags = ["-shared", "-fPIC", "-o", str(plugin)]
    subprocess.run([*gcc, *plugin_flags, str(source / "symbols_plugin.c")], check=True)
    return program, plugin


def libc_function_starts(modules: ModuleMap, count: int) -> list[int]:
    """Run-time starts of libc functions at least TRAP_OFFSET + 8 bytes long."""
    libc = next(m for m in modules.modules() if "libc.so" in m.path)
    libc.function_start(libc.start)  # loads its CFI
    _section, index = libc.cfi._eh_frame()
    starts = index.starts
    long_enough = [a for a, b in zip(starts, starts[1:]) if b - a >= TRAP_OFFSET + 8]
    step = max(1, len(long_enough) // count)
    return [start + libc.bias for start in long_enough[::step][:count]]


def per_pc_ms(lookup, pcs: list[int]) -> float:
    started = time.perf_counter()
    lookup(pcs)
    return (time.perf_counter() - started) / len(pcs) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qzn-bench-symbolizer-") as workdir:
        program, plugin = build(Path(workdir))
        target = subprocess.Popen(
            [str(program), str(plugin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            target.stdout.readline()
            modules = ModuleMap.from_pid(target.pid)
            starts = libc_function_starts(modules, 3 * args.pcs)
            started = time.perf_counter()
            symbolizer = Symbolizer(modules)
            start_s = time.perf_counter() - started
            with symbolizer:
                one, batch, traps = starts[::3], starts[1::3], starts[2::3]
                single_ms = per_pc_ms(lambda pcs: [symbolizer.caller(pc + 1) for pc in pcs], one)
                batch_ms = per_pc_ms(lambda pcs: symbolizer.resolve(callers=pcs), batch)
                ips = [pc + TRAP_OFFSET for pc in traps]
                trap_ms = per_pc_ms(lambda pcs: symbolizer.resolve(traps=pcs), ips)
                found = sum(symbolizer.site(ip).start is not None for ip in ips)
                notes = symbolizer.notes
        finally:
            target.communicate("g", timeout=30)
    print(f"gdb start with {len(modules.modules())} modules loaded: {start_s:.2f} s")
    for note in notes:
        print(f"  note: {note}")
    print(f"return address, one per round trip: {single_ms:.3f} ms a pc ({len(one):,} pcs)")
    print(f"return address, one batch:          {batch_ms:.3f} ms a pc ({len(batch):,} pcs)")
    print(
        f"trap ip, one batch (decode + frames): {trap_ms:.3f} ms a pc ({len(ips):,} pcs, "
        f"an instruction ends at {found:,} of them)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
