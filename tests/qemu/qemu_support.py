"""Constants and helpers shared by the whole-system tests (no fixtures here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO, quiet_env  # noqa: F401 (re-exported)

BUILD_GUEST = REPO / "scripts" / "build_guest.sh"
FAKE_STUB = REPO / "tests" / "qemu" / "fake_stub.py"
GDBSTUB_GUARD = REPO / "scripts" / "gdbstub_guard.py"
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
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


def run_script(*args: str, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """run_qemu_gdb.sh ARGS, its output captured."""
    return subprocess.run(
        [str(RUN_QEMU_GDB), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or quiet_env(),
    )


def assert_one_line_error(done: subprocess.CompletedProcess, words: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def needs_root_and_setpriv() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (to run the attacker as nobody)")


def fake_qemu(directory, arch: str, target_file) -> dict[str, str]:
    """An environment whose qemu-system-ARCH is fake_stub.py serving on QEMU's -gdb socket."""
    fake = directory / QEMU[arch]
    fake.write_text(f'#!/bin/sh\nexec /usr/bin/python3 {FAKE_STUB} qemu {target_file} "$@"\n')
    fake.chmod(0o755)
    return quiet_env(PATH=f"{directory}:{quiet_env()['PATH']}", QZN_REMOTE_TIMEOUT="2")
