"""tests/c/branches.c watched by `qznusnih watch --engine ENGINE`, for the gdb and the perf
engine's tests (tests/gdb/test_branches.py, tests/perf/test_branch_hits.py): each mode's
records, and the addresses of the instructions that made them, read from the -no-pie binary."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import quiet_env
from tests.perf.perf_helpers import armed_launcher
from tests.records import read_jsonl

BUILD_FLAGS = ("-no-pie",)  # the instructions run at the addresses the binary says
WORD_MODES = {"pointer": 8, "slot": 8, "rep": 1, "cache": 1, "got": 8}  # --len per mode
_INSN_RE = re.compile(r"^\s*0x([0-9a-f]+) <\+\d+>:\s+(.*?)\s*$")


def watch_branches(program: Path, tmp_path: Path, engine: str, mode: str, *args: str):
    """Run `branches MODE ARGS`, watch what it names with ENGINE until it exits; its records."""
    target = subprocess.Popen(
        [str(program), mode, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        watched = target.stdout.readline().split()[1]
        if watched == "-":  # got: the slot getppid's PLT stub jumps through
            watched = hex(got_slot(program, "getppid"))
        pid = target.stdout.readline().split()[1]
        prefix = tmp_path / f"{engine}-{mode}"
        length = ("--len", str(WORD_MODES[mode]))
        with armed_launcher(watched, pid, prefix, *length, engine=engine) as (launcher, _):
            target.stdin.write("g")
            target.stdin.flush()
            _, err = launcher.communicate(timeout=120)
        assert launcher.returncode == 0, err
        target.communicate(timeout=30)
        assert target.returncode == 0
        assert "Traceback" not in err, err
    finally:
        if target.poll() is None:
            target.kill()
            target.communicate()
    return read_jsonl(prefix.with_suffix(".jsonl"))


def instructions(program: Path, function: str) -> list[tuple[int, str]]:
    """(address, text) of each instruction of `function`, as gdb disassembles it."""
    out = subprocess.run(
        ["gdb", "-nx", "-batch", "-ex", f"disassemble {function}", str(program)],
        capture_output=True, text=True, check=True, env=quiet_env(),
    ).stdout  # fmt: skip
    return [(int(m[1], 16), m[2]) for m in map(_INSN_RE.match, out.splitlines()) if m]


def address_of(program: Path, function: str, text_start: str, nth: int = 0) -> int:
    """The address of the nth (from the end, if negative) instruction of `function` whose
    text starts with text_start."""
    found = [addr for addr, text in instructions(program, function) if text.startswith(text_start)]
    return found[nth]


def got_slot(program: Path, function: str) -> int:
    """The GOT slot that `function@plt` jumps through (gdb's comment on the jmp)."""
    jump = next(text for _, text in instructions(program, f"'{function}@plt'") if "jmp" in text)
    return int(re.search(r"# 0x([0-9a-f]+)", jump)[1], 16)


def summary(records: list[dict]) -> list[tuple]:
    """(kind, kind_from, pc, frame 0's function) of each record, for exact comparisons."""
    return [
        (r["kind"], r["kind_from"], r["pc"] and int(r["pc"], 16), r["frames"][0]["func"])
        for r in records
    ]


def expected(program: Path, mode: str, clzero: bool = True) -> list[tuple]:
    """What `summary` of each mode's records must be, exactly, under either engine."""

    def at(function: str, text: str, nth: int = 0) -> int:
        return address_of(program, function, text, nth)

    if mode == "pointer":
        reads = [at("call_through_pointer", "call   *", n) for n in range(3)]
        insns = instructions(program, "pointer_mode")
        store_to_handler = next(
            a for a, text in insns if text.startswith("mov ") and text.endswith("<handler>")
        )
        return [
            *[("read", "insn", pc, "call_through_pointer") for pc in reads],
            ("read", "branch", None, "target_fn"),  # the jmp: frame 0 is where it went
            ("write", "insn", store_to_handler, "pointer_mode"),
        ]
    if mode == "slot":
        ret = ("read", "branch", None, "slot_round")
        calls = [at("slot_round", "call", n) for n in (-3, -2)]  # the two calls of callee
        exit_call = at("slot_round", "call", -1)
        return [
            ret,
            *[row for pc in calls for row in (("write", "insn", pc, "slot_round"), ret)],
            ("write", "insn", exit_call, "slot_round"),
        ]
    if mode == "got":
        jump = address_of(program, "'getppid@plt'", "jmp")
        return [("read", "insn", jump, "getppid@plt")] * 3
    if mode == "rep":
        return [
            ("read", "insn", at("load_before_rep", "movzbl"), "load_before_rep"),
            ("write", "insn", at("rep_through", "rep stos"), "rep_through"),
        ]
    flushes = [at("flush_line", name) for name in ("clflush ", "clflushopt", "clwb")]
    rows = [("read", "insn", pc, "flush_line") for pc in flushes]
    if clzero:  # the second clzero, of buf[40]'s line; the first zeroes the next line
        rows.append(("write", "insn", at("flush_line", "clzero", 1), "flush_line"))
    return rows


def cpu_has_clzero() -> bool:
    with open("/proc/cpuinfo") as cpuinfo:
        return any(line.startswith("flags") and "clzero" in line.split() for line in cpuinfo)
