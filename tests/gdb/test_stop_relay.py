"""arm/batch.StopRelay inside a real gdb: one stop signal is one SIGINT to gdb, never two.

gdb hands a SIGINT that lands while Python runs to Python (PyErr_SetInterrupt), which also
writes it on Python's signal wakeup fd, the fd the relay reads SIGTERM and SIGHUP from.  A
second SIGINT made from that byte could land after the watch had ended and turn `qzn-watch`
into gdb's "Quit", exit status 1 under -batch.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import gdb_base_command, quiet_env

pytestmark = pytest.mark.gdb

# Sends itself SIGNAL while Python runs, then counts the KeyboardInterrupts gdb's Python gets
# (each SIGINT that reaches gdb is one) over the next 0.3 s.
PROBE = """\
import os, signal, time
from gdb_qznusnih.arm.batch import StopRelay

relay = StopRelay()
relay.install(None)
interrupts, sent = 0, False
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    try:
        if not sent:
            sent = True
            os.kill(os.getpid(), signal.{signal})
        time.sleep(0.005)
    except KeyboardInterrupt:
        interrupts += 1
relay.uninstall()
print(f"interrupts {{interrupts}} reason {{relay.reason}}")
"""


@pytest.mark.parametrize(
    "signal_name, reason",
    [("SIGINT", "None"), ("SIGTERM", "SIGTERM received"), ("SIGHUP", "SIGHUP received")],
)
def test_one_stop_signal_reaches_gdb_as_one_sigint(tmp_path, signal_name, reason):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE.format(signal=signal_name))
    done = subprocess.run(
        [*gdb_base_command(), "-x", str(probe)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=quiet_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"interrupts 1 reason {reason}", done.stdout
