"""Bad input and refusals: one line that says what to do, nothing left open, target untouched."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.events import EventConfig, PerfError

pytestmark = pytest.mark.perf
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def refused(pid, address, length=1, config=None) -> str:
    """The one-line message of a capture that cannot start; checks nothing was left open."""
    before = open_fds()
    with pytest.raises(PerfError) as error:
        Capture(pid, address, length, config).start()
    assert open_fds() == before
    message = str(error.value)
    assert "\n" not in message
    return message


def test_no_such_process():
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert refused(gone.pid, 0x1000) == f"no process {gone.pid}: check the PID (it may have exited)"


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (1, 2, "is not aligned to 2 bytes: watch an address that is a multiple of 2"),
        (4, 8, "is not aligned to 8 bytes"),
        (0, 3, "watch length must be 1, 2, 4 or 8 bytes, not 3"),
    ],
)
def test_bad_address_or_length(start_target, offset, length, expected):
    target = start_target(5, 5, 0)
    assert expected in refused(target.pid, target.address + offset, length)
    check_target_unharmed(target, 5, 0)


def test_kernel_address_when_kernel_accesses_are_excluded(start_target):
    target = start_target(5, 5, 0)
    message = refused(target.pid, 0xFFFFFFFF81000000)
    assert message == (
        "0xffffffff81000000 is a kernel address: watch a user-space address (below 0x800000000000)"
    )
    check_target_unharmed(target, 5, 0)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (CaptureConfig(events=EventConfig(stack_bytes=100)), "stack bytes must be a multiple of 8"),
        (CaptureConfig(events=EventConfig(threads="all")), "threads must be one of inherit, per"),
        (CaptureConfig(ring_pages=3), "ring pages must be a power of 2, not 3"),
    ],
)
def test_bad_settings(start_target, config, expected):
    target = start_target(5, 5, 0, early=2)
    assert expected in refused(target.pid, target.address, 1, config)
    check_target_unharmed(target, 5, 0)


def test_no_debug_register_left_after_two_watches(start_target):
    """x86 has 4 debug registers and a watch takes 2: the third watch is refused whole."""
    target = start_target(5, 5, 0, early=1)
    with Capture(target.pid, target.address), Capture(target.pid, target.address + 8):
        message = refused(target.pid, target.address + 16)
        assert message.startswith(
            f"no hardware debug register left to watch {target.address + 16:#x} (1 byte) in "
            f"process {target.pid}: x86 has 4 and each watch takes 2"
        )
        assert message.endswith("; remove a watch")
    check_target_unharmed(target, 5, 0)


NOBODY_SCRIPT = textwrap.dedent(
    """
    import subprocess, sys
    from gdb_qznusnih.perf.capture import Capture, CaptureConfig
    from gdb_qznusnih.perf.events import EventConfig, PerfError
    pid, address, kernel = int(sys.argv[1]), int(sys.argv[2], 16), sys.argv[3] == "kernel"
    own = None
    if pid == 0:  # watch a process of our own
        own = subprocess.Popen(["sleep", "30"])
        pid = own.pid
    config = CaptureConfig(events=EventConfig(exclude_kernel=not kernel))
    try:
        Capture(pid, address, 1, config).start()
    except PerfError as error:
        sys.exit(f"refused: {error}")
    finally:
        if own:
            own.kill()
    print("armed")
    """
)


def run_as_nobody(*args: str) -> subprocess.CompletedProcess:
    command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    command += ["/usr/bin/python3", "-c", NOBODY_SCRIPT, *args]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)


def test_another_users_process_is_refused(start_target):
    target = start_target(5, 5, 0)
    result = run_as_nobody(str(target.pid), hex(target.address), "user")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"refused: not permitted to watch process {target.pid} ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    check_target_unharmed(target, 5, 0)


def test_kernel_accesses_need_privilege_even_on_your_own_process():
    paranoid = int(open("/proc/sys/kernel/perf_event_paranoid").read())
    assert paranoid >= 2, "this test needs kernel.perf_event_paranoid >= 2 (the default)"
    result = run_as_nobody("0", "0x1000", "kernel")
    assert result.returncode == 1
    assert result.stderr == (
        f"refused: watching kernel-mode accesses needs root or CAP_PERFMON "
        f"(kernel.perf_event_paranoid is {paranoid}): run as root, or watch user-mode accesses "
        "only\n"
    )


def check_target_unharmed(target, writes, rmws):
    """It runs to the end, exits 0, and its byte holds what it wrote (every thread writes
    0..writes-1, so the last store is writes-1 whichever thread made it)."""
    target.go()
    target.wait_done()
    assert target.status().tracer_pid == 0
    assert target.finish() == (writes - 1 + rmws) % 256
