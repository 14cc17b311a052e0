#!/usr/bin/env python3
"""Reads and writes on tests/c/mix.c: plain gdb (`watch` + `rwatch`) against gdb-qznusnih.

The truth is known from the program: 10 reads and 9 writes of area[11].
Usage: bench/compare_split.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOADER = REPO / "gdb_qznusnih" / "loader.py"
TRUTH = {"read": 10, "write": 9}


def build(tmp: Path) -> Path:
    exe = tmp / "mix"
    subprocess.run(
        ["gcc", "-g", "-O0", "-pthread", "-o", str(exe), str(REPO / "tests" / "c" / "mix.c")],
        check=True,
    )
    return exe


def plain_gdb(exe: Path, tmp: Path) -> dict[str, int]:
    script = tmp / "plain.gdb"
    script.write_text(
        "tbreak ready\nrun\n"
        "watch area[11]\ncommands\nsilent\necho PLAIN-WRITE\\n\ncontinue\nend\n"
        "rwatch area[11]\ncommands\nsilent\necho PLAIN-READ\\n\ncontinue\nend\n"
        "continue\n"
    )
    out = subprocess.run(
        ["gdb", "-nx", "-batch", "-x", str(script), str(exe)], capture_output=True, text=True
    ).stdout
    return {"read": out.count("PLAIN-READ"), "write": out.count("PLAIN-WRITE")}


def qznusnih(exe: Path, tmp: Path) -> dict[str, int]:
    prefix = tmp / "q"
    subprocess.run(
        ["gdb", "-nx", "-batch", "-x", str(LOADER), "-ex", "tbreak ready", "-ex", "run",
         "-ex", f"qzn-watch --quiet --log {prefix} &area[11]", str(exe)],
        capture_output=True, text=True,
    )  # fmt: skip
    kinds = [json.loads(x)["kind"] for x in prefix.with_suffix(".jsonl").read_text().splitlines()]
    return {"read": kinds.count("read"), "write": kinds.count("write")}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        rows = {
            "truth": TRUTH,
            "plain gdb": plain_gdb(exe, tmp),
            "gdb-qznusnih": qznusnih(exe, tmp),
        }
    print(f"{'':14s} {'reads':>6s} {'writes':>7s} {'total':>6s}")
    for name, counts in rows.items():
        total = counts["read"] + counts["write"]
        print(f"{name:14s} {counts['read']:6d} {counts['write']:7d} {total:6d}")
    sys.exit(0 if rows["gdb-qznusnih"] == TRUTH else 1)


if __name__ == "__main__":
    main()
