"""`qznusnih run --at LOCATION` and `--at-every`, a stripped program, and targets that die of a
signal, on tests/c/run_at.c (see its header for each mode's exact accesses)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from launcher_helpers import assert_one_line_error, run_launcher, start_launcher

from tests.records import read_jsonl

SIGSEGV_STATUS = 128 + signal.SIGSEGV


@pytest.fixture(scope="session")
def run_at(build_c) -> Path:
    return build_c("run_at")


@pytest.fixture(scope="session")
def stripped_run_at(build_c, c_build_dir) -> tuple[Path, int]:
    """run_at without PIE, stripped of every symbol, and its byte's (fixed) address."""
    built = build_c("run_at", extra=("-no-pie",))
    nm = subprocess.run(["nm", str(built)], capture_output=True, text=True, check=True).stdout
    byte = int(next(line.split()[0] for line in nm.splitlines() if line.endswith(" the_byte")), 16)
    stripped = c_build_dir / "run_at-stripped"
    subprocess.run(["strip", "-o", str(stripped), str(built)], check=True)
    return stripped, byte


def kinds(records) -> list[str]:
    return [r["kind"] for r in records]


def run_logged(prefix: Path, *options: str, target: tuple, code: int = 0):
    """`qznusnih run --quiet --no-html --log PREFIX OPTIONS -- TARGET`, exiting with `code`."""
    done = run_launcher(
        "run", "--quiet", "--no-html", "--log", str(prefix), *options, "--", *map(str, target)
    )
    assert done.returncode == code, done.stderr
    return done


def assert_use_slots_records(records) -> None:
    """One call of use_slot as its slot[2]'s watch logs it: its three stores, its read."""
    assert kinds(records) == ["write"] * 3 + ["read"]
    assert {r["frames"][0]["func"] for r in records} == {"use_slot"}


def test_at_every_rearms_on_each_new_heap_buffer(run_at, tmp_path):
    prefix = tmp_path / "h"
    done = run_logged(prefix, "--at-every", "fill_buf", "--watch", "buf+3", target=(run_at, "heap"))
    assert "run_at heap: 6" in done.stdout
    # Round r: r writes in fill_buf, its read, then main's read; each watch on its own buffer.
    logs = [read_jsonl(f"{prefix}{suffix}.jsonl") for suffix in ("", ".at2", ".at3")]
    for round_number, records in enumerate(logs, start=1):
        assert kinds(records) == ["write"] * round_number + ["read", "read"]
        assert [r["value"] for r in records] == [*range(1, round_number + 1)] + [round_number] * 2
        assert {r["watch"] for r in records} == {round_number}
        assert len({r["addr"] for r in records}) == 1
    assert len({log[0]["addr"] for log in logs}) == 3  # three buffers, three addresses
    assert not Path(f"{prefix}.at4.jsonl").exists()
    assert done.stdout.count("summary: ") == 3
    for counts in ("3 accesses: 2 reads, 1 write", "4 accesses: 2 reads, 2 writes",
                   "5 accesses: 2 reads, 3 writes"):  # fmt: skip
        assert f"summary: {counts}" in done.stdout
    ended = [line for line in done.stderr.splitlines() if " ended: " in line]
    assert ended == [
        "qzn: watch 1 ended: fill_buf reached again",
        "qzn: watch 2 ended: fill_buf reached again",
        "qzn: watch 3 ended: target exited with code 0",
    ]


def test_at_a_function_watches_a_field_of_the_struct_it_receives(run_at, tmp_path):
    prefix = tmp_path / "s"
    done = run_logged(
        prefix, "--at", "parse_header", "--watch", "&h->flags", target=(run_at, "struct")
    )
    records = read_jsonl(f"{prefix}.jsonl")
    # h->magic's store is not the field's; the caller's read after the return is.
    assert [(r["kind"], r["frames"][0]["func"]) for r in records] == [
        ("read", "parse_header"),
        ("write", "parse_header"),
        ("read", "struct_field"),
    ]
    assert [r["value"] for r in records] == [2, 3, 3]
    # h is struct_field's local: the watch lives until struct_field returns, not parse_header.
    assert "a stack slot of struct_field(): the watch ends when it returns" in done.stderr
    assert "qzn: watch 1 ended: struct_field() returned: its stack slot is gone" in done.stderr


def test_a_stack_slot_watch_ends_when_its_frame_returns(run_at, tmp_path):
    prefix = tmp_path / "k"
    done = run_logged(prefix, "--at", "use_slot", "--watch", "&slot[2]", target=(run_at, "stack"))
    # Without the scope, clobber()'s store of 0xee into the same bytes was logged too.
    assert_use_slots_records(read_jsonl(f"{prefix}.jsonl"))
    assert "qzn: watch 1 ended: use_slot() returned: its stack slot is gone" in done.stderr
    assert "run_at stack: 242" in done.stdout  # 2 + 0xee + 2: the program ran to its end


def test_at_every_waits_unwatched_between_a_stack_slots_frames(run_at, tmp_path):
    prefix = tmp_path / "e"
    done = run_logged(
        prefix, "--at-every", "use_slot", "--watch", "&slot[2]", target=(run_at, "stack")
    )
    # Each call of use_slot has its own watch; clobber() in between is nobody's.
    for suffix in ("", ".at2"):
        assert_use_slots_records(read_jsonl(f"{prefix}{suffix}.jsonl"))
    ended = [line for line in done.stderr.splitlines() if "ended: " in line or "no watch" in line]
    assert ended == [
        "qzn: watch 1 ended: use_slot() returned: its stack slot is gone",
        "qzn: watch 2 ended: use_slot() returned: its stack slot is gone",
        "qzn: no watch armed: target exited with code 0",
    ]
    assert "run_at stack: 242" in done.stdout


def test_a_stripped_program_is_armed_at_its_entry_and_its_sites_are_module_offsets(
    stripped_run_at, tmp_path
):
    program, byte = stripped_run_at
    nm = subprocess.run(["nm", str(program)], capture_output=True, text=True)
    assert "no symbols" in nm.stderr
    prefix = tmp_path / "n"
    done = run_logged(prefix, "--watch", hex(byte), target=(program, "global", "4"))
    records = read_jsonl(f"{prefix}.jsonl")
    assert kinds(records) == ["write"] * 4 + ["read"]
    assert [r["value"] for r in records] == [1, 2, 3, 4, 4]
    assert {r["frames"][0]["func"] for r in records} == {None}
    write_pc, read_pc = (int(r["pc"], 16) for r in (records[0], records[-1]))
    name = program.name
    # Not "__libc_start_call_main at ...": the program's own code, by offset from its base.
    assert f"  4  {name}+{write_pc - 0x400000:#x}\n" in done.stdout
    assert f"  1  {name}+{read_pc - 0x400000:#x}\n" in done.stdout
    assert "libc_start" not in done.stdout


def test_run_of_a_target_that_dies_of_sigsegv(run_at, tmp_path):
    prefix = tmp_path / "c"
    done = run_logged(
        prefix, "--watch", "&the_byte", target=(run_at, "crash", "3"), code=SIGSEGV_STATUS
    )
    assert kinds(read_jsonl(f"{prefix}.jsonl")) == ["write"] * 3 + ["read"]
    assert "summary: 4 accesses: 1 read, 3 writes" in done.stdout
    assert done.stderr.splitlines()[-1] == "qzn: watch 1 ended: target was killed by SIGSEGV"
    assert "Traceback" not in done.stderr


def test_watch_of_a_target_that_dies_of_sigsegv(run_at, tmp_path):
    target = subprocess.Popen(
        [str(run_at), "crash", "5", "--wait"], stdout=subprocess.PIPE, text=True
    )
    try:
        first = target.stdout.readline().split()  # "pid PID byte 0x55..."
        prefix = tmp_path / "w"
        watch = start_launcher(
            "watch", first[3], first[1], "--quiet", "--no-html", "--log", str(prefix)
        )
        out, err = watch.communicate(timeout=60)
        assert target.wait(timeout=10) == -signal.SIGSEGV
    finally:
        if target.poll() is None:
            target.kill()
        target.communicate()
    assert watch.returncode == SIGSEGV_STATUS, err
    assert kinds(read_jsonl(f"{prefix}.jsonl")) == ["write"] * 5 + ["read"]
    assert err.splitlines()[-1] == "qzn: watch 1 ended: target was killed by SIGSEGV"


@pytest.mark.parametrize(
    "location, fragments, code",
    [
        ("nosuch", ['nosuch: Function "nosuch" not defined', "give a function"], 1),
        ("run_at.c:9999", ['No line 9999 in file "run_at.c"'], 1),
        ("*0x1", ["cannot stop the program at *0x1", "Cannot access memory"], 1),
        ("crash_now", ["the program ended before reaching crash_now; nothing was watched"], 1),
        ("main if 1", ["is not a location this takes", "without spaces"], 2),
        ("main\nshell touch /tmp/x", ["the location contains control characters"], 2),
    ],
)
def test_a_bad_location_is_one_line_and_nothing_is_watched(run_at, location, fragments, code):
    done = run_launcher("run", "--at", location, "--watch", "&the_byte", "--", str(run_at), "heap")
    assert_one_line_error(done, *fragments, code=code)
    assert "qzn: watch" not in done.stderr
    if code == 2 or "nosuch" in location or "9999" in location:
        assert "run_at heap" not in done.stdout  # never started: it never ran unwatched


@pytest.mark.parametrize("flag", ["--at", "--at-every"])
def test_a_location_cannot_run_a_gdb_function(run_at, tmp_path, flag):
    planted = tmp_path / "ran"
    location = f'*$_shell("touch {planted}")'
    done = run_launcher("run", flag, location, "--watch", "&the_byte", "--", str(run_at), "heap")
    assert_one_line_error(done, "is not a location this takes", code=2)
    assert not planted.exists()
