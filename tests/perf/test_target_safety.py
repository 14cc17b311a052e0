"""The target is never harmed: not when the capture closes mid-run, not when the capturing
process is SIGKILLed at full speed, and the capture ends by itself when the target exits."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import pytest

from gdb_qznusnih.perf.capture import Capture

pytestmark = pytest.mark.perf
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOT_WRITES = 100_000  # about 1.5 s watched: long enough to be killed mid-run

CAPTURER = textwrap.dedent(
    """
    import sys, time
    from gdb_qznusnih.perf.capture import Capture
    capture = Capture(int(sys.argv[1]), int(sys.argv[2], 16))
    capture.start()
    print("armed", flush=True)
    seen = 0
    while True:
        seen += len(capture.read(0.1))
        if seen >= 1000:
            print("hits", flush=True)
            seen = -10**9
    """
)


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_of_the_capturing_process_at_full_speed_leaves_the_target_running(
    start_target, trial
):
    target = start_target(HOT_WRITES, 0, 0, early=1)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO}
    capturer = subprocess.Popen(
        ["/usr/bin/python3", "-c", CAPTURER, str(target.pid), hex(target.address)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert capturer.stdout.readline() == b"armed\n"
        target.go()
        assert capturer.stdout.readline() == b"hits\n"  # the hot loop is under way
        capturer.send_signal(signal.SIGKILL)
        assert capturer.wait(timeout=10) == -signal.SIGKILL
    finally:
        if capturer.poll() is None:
            capturer.kill()
        capturer.communicate()
    target.wait_done()
    assert target.status().tracer_pid == 0
    assert target.finish() == (HOT_WRITES - 1) % 256  # exit 0, not killed by SIGTRAP


def test_closing_the_capture_mid_run_leaves_the_target_running(start_target):
    target = start_target(HOT_WRITES, 0, 0)
    capture = Capture(target.pid, target.address)
    capture.start()
    target.go()
    seen, deadline = 0, time.monotonic() + 10
    while seen < 100:
        assert time.monotonic() < deadline, "no hits within 10 s"
        seen += len(capture.read(0.05))
    capture.close()
    counts, _ = capture.counters()
    assert 100 <= counts["rw"] < HOT_WRITES  # closed while it ran
    target.wait_done()
    assert target.finish() == (HOT_WRITES - 1) % 256


def test_the_capture_drains_by_itself_when_the_target_exits(start_target):
    target = start_target(200, 100, 10, early=1, late=1)
    with Capture(target.pid, target.address) as capture:
        target.go()
        target.wait_done()
        assert target.exit_now() == 0  # its final read of the byte is watched too
        deadline = time.monotonic() + 10
        while not capture.drained:
            assert time.monotonic() < deadline, "the capture did not see the target exit"
            capture.read(0.1)
        accounting = capture.accounting()
    assert accounting.hardware == {"rw": 3 * 310 + 1, "w": 3 * 210}
    assert accounting.delivered == accounting.hardware
