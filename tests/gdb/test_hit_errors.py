"""An error inside a hit never stops or kills the target: one line, the watch ends cleanly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_gdb_stopped_at
from tests.records import read_jsonl

pytestmark = pytest.mark.gdb

BREAK_A_SINK = Path(__file__).with_name("break_a_sink.py")
MESSAGE = (
    "qzn: watch 1: error in a hit (RuntimeError: injected fault); that access is not logged, "
    "the 4 before it are; the watch ends"
)


def gdb_run(program, *commands: str, batch: bool) -> subprocess.CompletedProcess:
    return run_gdb_stopped_at(program, *commands, batch=batch)


@pytest.mark.parametrize("batch", [False, True], ids=["interactive", "batch"])
def test_an_error_in_a_hit_ends_the_watch_in_one_line_and_the_program_runs_on(
    build_c, tmp_path, batch
):
    prefix = tmp_path / "w"
    commands = [f"qzn-watch --quiet --no-html --log {prefix} &area[11]"]
    if batch:
        # The fault goes in before the watch: in batch mode qzn-watch runs the program.
        commands.insert(0, f"source {BREAK_A_SINK}")
    else:
        commands += [f"source {BREAK_A_SINK}", "continue", "qzn-status"]
    result = gdb_run(build_c("mix"), *commands, batch=batch)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "watch 1: error" in line]
    assert errors == [MESSAGE]
    assert "qzn: watch 1 ended: error in a hit" in result.stderr
    assert [r["seq"] for r in read_jsonl(prefix.with_suffix(".jsonl"))] == [1, 2, 3, 4]
    assert "mix done" in result.stdout  # the program ran to its end
    if not batch:
        assert "[Inferior 1 (process" in result.stdout and "exited normally]" in result.stdout
        assert "No watches armed." in result.stdout
