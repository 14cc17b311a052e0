"""`qznusnih watch ADDR PID` with an ADDR that would write or call: refused, target untouched."""

from __future__ import annotations

import pytest
from launcher_helpers import assert_one_line_error, run_launcher

from tests.gdb.idle_target import IdleTarget, assert_memory_unchanged

pytestmark = pytest.mark.gdb


@pytest.fixture
def idle(build_c):
    target = IdleTarget(build_c("idle"))
    yield target
    target.kill()


@pytest.mark.parametrize(
    "expression, message",
    [
        ("buf[0]=65", "assigns with '='"),
        ("buf[0]++", "assigns with '++'"),
        ("$rax=1", "assigns with '='"),
        ("$pc=0", "assigns with '='"),  # would crash the target once detached
        ("malloc(16)", "would call a function in the target"),
        ('system("touch {marker}")', "would call a function in the target"),
    ],
)
def test_launcher_refuses_an_address_that_writes_or_calls(idle, tmp_path, expression, message):
    marker = tmp_path / "ran"
    before = idle.writable_memory()
    done = run_launcher("watch", expression.format(marker=marker), str(idle.pid))
    assert idle.alive() and idle.tracer_pid() == 0
    assert_memory_unchanged(before, idle.writable_memory())
    assert not marker.exists(), "the command in ADDR ran"
    assert_one_line_error(done, message, code=1, prefixed=False)
