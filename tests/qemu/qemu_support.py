"""Constants and helpers shared by the whole-system tests (no fixtures here)."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO, quiet_env  # noqa: F401 (re-exported)

BUILD_GUEST = REPO / "scripts" / "build_guest.sh"
RUN_QEMU_GDB = REPO / "scripts" / "run_qemu_gdb.sh"
ARCHES = ("x86_64", "i386")
QEMU = {"x86_64": "qemu-system-x86_64", "i386": "qemu-system-i386"}


TESTER_PID = re.compile(r"guest_tester: pid (\d+) byte (0x[0-9a-f]+)")
TESTER_DONE = re.compile(r"guest_tester: done: (.*)")
TESTER_CHILD = re.compile(r"guest_tester: child (\d+) wrote the byte")


def run_batch(guest, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RUN_QEMU_GDB), "--arch", guest.arch, "--batch", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=quiet_env(),
    )
