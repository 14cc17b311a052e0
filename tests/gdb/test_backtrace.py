"""Backtraces stay exact when the same access is reached through different callers."""

from __future__ import annotations

import subprocess

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
