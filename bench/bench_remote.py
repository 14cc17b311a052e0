#!/usr/bin/env python3
"""Cost per hit: qzn-watch over a loopback gdbserver against the same watch native, in one run.

Each watches bench/hotloop.c's byte from main with complete records to every sink
(PREFIX.jsonl, the two .log files, the terminal stream into a pipe).  Native: `gdb -batch`
runs the program, watched by the gdb engine (as over gdbserver, where it is the only one) and,
for scale, by the perf engine.  Remote: `gdbserver 127.0.0.1:0 hotloop ROUNDS` runs it and
gdb reaches it with `target remote` (sysroot /, so libraries are read locally, as with
--sysroot on a host with the board's root file system).  The runs alternate; the median of
each is reported on the target's own clock (how long its rounds took under the watch), with
the ratios.

Usage: bench/bench_remote.py [--rounds N] [--repeat K]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOADER = REPO / "gdb_qznusnih" / "loader.py"
ENV = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
_ROUNDS_TOOK = re.compile(r"hotloop: \d+ rounds, sum \d+, ([0-9.]+) s")


def build(tmp: Path) -> Path:
    exe = tmp / "hotloop"
    subprocess.run(
        ["gcc", "-g", "-O0", "-o", str(exe), str(REPO / "bench" / "hotloop.c")], check=True
    )
    return exe


def watch_commands(prefix: Path, engine: str = "gdb") -> list[str]:
    return ["-ex", f"qzn-watch --engine {engine} --color never --no-html --log {prefix} &byte"]


def native(exe: Path, rounds: int, tmp: Path, engine: str) -> float:
    cmd = ["gdb", "-nx", "-batch", "-x", str(LOADER), "-ex", "tbreak main", "-ex", "run"]
    prefix = tmp / f"native-{engine}"
    cmd += watch_commands(prefix, engine) + ["--args", str(exe), str(rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    return rounds_took(done.returncode, done.stdout, done.stderr, prefix, rounds)


def remote(exe: Path, rounds: int, tmp: Path) -> float:
    server = subprocess.Popen(
        ["gdbserver", "127.0.0.1:0", str(exe), str(rounds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = None
        for line in server.stdout:
            found = re.search(r"Listening on port (\d+)", line)
            if found:
                port = found.group(1)
                break
        if port is None:
            sys.exit("bench: gdbserver did not listen")
        cmd = ["gdb", "-nx", "-batch", "-x", str(LOADER), "-ex", "set sysroot /"]
        cmd += ["-ex", f"target remote 127.0.0.1:{port}", "-ex", "tbreak main", "-ex", "continue"]
        cmd += watch_commands(tmp / "remote") + [str(exe)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        program_output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    return rounds_took(done.returncode, program_output, done.stderr, tmp / "remote", rounds)


def rounds_took(returncode: int, stdout: str, stderr: str, prefix: Path, rounds: int) -> float:
    found = _ROUNDS_TOOK.search(stdout)
    if returncode != 0 or found is None:
        sys.exit(f"bench: run failed ({prefix.name}):\n{stderr[-2000:]}")
    logged = sum(1 for _ in prefix.with_suffix(".jsonl").open())
    if logged != 2 * rounds:
        sys.exit(f"bench: {prefix.name} logged {logged} records, expected {2 * rounds}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    hits = 2 * args.rounds
    times: dict[str, list[float]] = {"native gdb": [], "native perf": [], "gdbserver": []}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        for _ in range(args.repeat):
            times["native gdb"].append(native(exe, args.rounds, tmp, "gdb"))
            times["native perf"].append(native(exe, args.rounds, tmp, "perf"))
            times["gdbserver"].append(remote(exe, args.rounds, tmp))
    print(f"{hits} hits ({args.rounds} rounds) each, median of {args.repeat} runs, target's clock")
    cost = {}
    for name, values in times.items():
        cost[name] = statistics.median(values) / hits
        print(f"  {name:12s} {cost[name] * 1e3:7.3f} ms per hit  {1 / cost[name]:7.0f} hits/s")
    for base in ("native gdb", "native perf"):
        ratio = cost["gdbserver"] / cost[base]
        print(f"  ratio gdbserver / {base} cost per hit: {ratio:.2f}x")


if __name__ == "__main__":
    main()
