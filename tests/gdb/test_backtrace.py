"""Backtraces stay exact when the same access is reached through different callers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import gdb_base_command, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb


def test_alternating_callers_get_their_own_frames(build_c, tmp_path):
    prefix = tmp_path / "c"
    cmd = gdb_base_command() + [
        "-ex",
        "tbreak main",
        "-ex",
        "run",
        "-ex",
        f"qzn-watch --quiet --access w --log {prefix} &the_data",
        str(build_c("callers")),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120)
    assert "callers done" in result.stdout
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert len(records) == 20
    callers = [r["frames"][1]["func"] for r in records]
    assert callers == ["via_a", "via_b"] * 10
    assert all(r["frames"][0]["func"] == "touch" for r in records)
    assert all(r["frames"][2]["func"] == "main" for r in records)


# mix's 17 accesses from main are 3 frames deep, its thread's 2 are 4 deep (to clone3).
@pytest.mark.parametrize(
    "depth, cut",
    [(2, [True] * 19), (3, [False] * 17 + [True] * 2), (4, [False] * 19)],
)
def test_a_backtrace_cut_at_bt_depth_says_so(build_c, tmp_path, depth, cut):
    prefix = tmp_path / "cut"
    cmd = gdb_base_command() + [
        "-ex", "tbreak ready", "-ex", "run",
        "-ex", f"qzn-watch --quiet --no-html --bt-depth {depth} --log {prefix} &area[11]",
        str(build_c("mix")),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(), timeout=120, check=True)
    records = read_jsonl(prefix.with_suffix(".jsonl"))
    assert [r.get("more_frames", False) for r in records] == cut
    assert [len(r["frames"]) for r in records] == [min(depth, 3)] * 17 + [min(depth, 4)] * 2
    marker = f"#{depth:<2} …more frames"
    text = Path(f"{prefix}.reads.log").read_text() + Path(f"{prefix}.writes.log").read_text()
    assert text.count(marker) == cut.count(True)
