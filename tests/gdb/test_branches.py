"""The gdb engine (`qznusnih watch --engine gdb`) on tests/c/branches.c: accesses made by
branches through memory, a load before a rep op, cache-line flushes and clzero, each with its
exact kind and instruction pc, or pc null where a branch cannot be located."""

from __future__ import annotations

import pytest

from tests.branch_runs import (
    BUILD_FLAGS,
    address_of,
    cpu_has_clzero,
    expected,
    instructions,
    summary,
    watch_branches,
)

pytestmark = pytest.mark.gdb
ENGINE = "gdb"


@pytest.fixture(scope="module")
def program(build_c):
    return build_c("branches", extra=BUILD_FLAGS)


def test_calls_and_jump_through_a_watched_function_pointer(program, tmp_path):
    records = watch_branches(program, tmp_path, ENGINE, "pointer")
    assert summary(records) == expected(program, "pointer")
    calls, jump = records[:3], records[3]
    assert [r["insn"].split()[0] for r in calls] == ["call"] * 3
    # Frame 0 is the caller at the call, not the callee the trap stopped in.
    assert [r["frames"][1]["func"] for r in calls] == ["pointer_mode"] * 3
    assert jump["insn"] is None
    assert int(jump["frames"][0]["pc"], 16) == instructions(program, "target_fn")[0][0]
    assert jump["frames"][1]["func"] == "jump_through_pointer"


def test_calls_and_rets_on_a_watched_return_address_slot(program, tmp_path):
    records = watch_branches(program, tmp_path, ENGINE, "slot")
    assert summary(records) == expected(program, "slot")
    # Each ret's frame 0 is where it returned: right after the call that pushed the slot.
    read_call = address_of(program, "slot_round", "call", -5)  # read(), before _exit(3)
    after_calls = [read_call + 5] + [int(r["pc"], 16) + 5 for r in records[1:5:2]]
    assert [int(r["frames"][0]["pc"], 16) for r in records[0:6:2]] == after_calls


def test_plt_stub_jumps_through_a_watched_got_slot(program, tmp_path):
    records = watch_branches(program, tmp_path, ENGINE, "got")
    assert summary(records) == expected(program, "got")
    assert [r["frames"][1]["func"] for r in records] == ["got_mode"] * 3


def test_load_before_rep_stos_is_the_loads(program, tmp_path):
    records = watch_branches(program, tmp_path, ENGINE, "rep")
    assert summary(records) == expected(program, "rep")


def test_cache_line_flushes_read_and_clzero_writes(program, tmp_path):
    if not cpu_has_clzero():
        pytest.skip("this CPU has no clzero (no 'clzero' in /proc/cpuinfo flags)")
    records = watch_branches(program, tmp_path, ENGINE, "cache")
    assert summary(records) == expected(program, "cache")
