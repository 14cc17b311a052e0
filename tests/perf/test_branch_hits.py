"""The perf engine (`qznusnih watch --engine perf`) on tests/c/branches.c: the same exact
records as the gdb engine's (tests/gdb/test_branches.py) for branches through memory, the
load before a rep op, cache-line flushes and clzero."""

from __future__ import annotations

import pytest

from tests.branch_runs import BUILD_FLAGS, cpu_has_clzero, expected, summary, watch_branches

pytestmark = pytest.mark.perf
ENGINE = "perf"


@pytest.fixture(scope="module")
def program(build_c):
    return build_c("branches", extra=BUILD_FLAGS)


@pytest.mark.parametrize("mode", ["pointer", "slot", "got", "rep"])
def test_branch_and_rep_accesses(program, tmp_path, mode):
    records = watch_branches(program, tmp_path, ENGINE, mode)
    assert summary(records) == expected(program, mode)
    if mode == "pointer":
        assert [r["frames"][1]["func"] for r in records[:4]] == ["pointer_mode"] * 3 + [
            "jump_through_pointer"
        ]


def test_cache_line_flushes_read_and_clzero_writes(program, tmp_path):
    clzero = cpu_has_clzero()
    records = watch_branches(program, tmp_path, ENGINE, "cache", *([] if clzero else ["noclzero"]))
    assert summary(records) == expected(program, "cache", clzero)
    assert [r["value_from"] for r in records[:3]] == [None] * 3  # a flush moves no value
