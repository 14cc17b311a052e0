"""Fixtures for the whole-system tests: the default guest, booted under QEMU + gdb.

Every test here carries the `qemu` marker (select with `-m qemu`, skip with
`-m "not qemu"`).  The x86_64 guest is built when it is not cached (2-3 minutes);
the i386 one too when CI is set or QZN_BUILD_I386=1, otherwise i386 tests run only
when the cache already has that guest.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from qemu_support import ARCHES, BUILD_GUEST, QEMU, TESTER_PID, quiet_env, run_batch


def pytest_configure(config):
    config.addinivalue_line("markers", "qemu: boots a real kernel under QEMU")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.qemu)


@dataclass
class Guest:
    arch: str
    dir: Path

    @property
    def bzimage(self) -> Path:
        return self.dir / "bzImage"

    @property
    def initrd(self) -> Path:
        return self.dir / "initramfs.cpio.gz"

    @property
    def vmlinux(self) -> Path:
        return self.dir / "vmlinux"

    @property
    def tester(self) -> Path:
        return self.dir / "guest_tester"


def _cached_guest(arch: str) -> Path | None:
    done = subprocess.run(
        [str(BUILD_GUEST), "--arch", arch, "--print-dir"], capture_output=True, text=True
    )
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def _build_guest(arch: str) -> Guest:
    cached = _cached_guest(arch)
    if cached is not None:
        return Guest(arch, cached)
    if arch == "i386" and not (os.environ.get("CI") or os.environ.get("QZN_BUILD_I386")):
        pytest.skip("no cached i386 guest (build it: scripts/build_guest.sh --arch i386)")
    done = subprocess.run(
        [str(BUILD_GUEST), "--arch", arch],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=quiet_env(CI="true"),
    )
    if done.returncode != 0:
        pytest.fail(f"building the {arch} guest failed:\n{done.stderr[-3000:]}")
    return Guest(arch, Path(done.stdout.strip().splitlines()[-1]))


_guests: dict[str, Guest] = {}


@pytest.fixture(scope="session", params=ARCHES)
def guest(request) -> Guest:
    """The default guest of one architecture, built when not cached."""
    arch = request.param
    if arch not in _guests:
        _guests[arch] = _build_guest(arch)
    return _guests[arch]


@dataclass
class Boot:
    console: str
    seconds_to_tester: float
    returncode: int


@pytest.fixture(scope="session")
def boot(guest, tmp_path_factory) -> Boot:
    """Boot the guest without gdb and keep its console."""
    log = tmp_path_factory.mktemp(f"boot-{guest.arch}") / "console.log"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            QEMU[guest.arch],
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-monitor",
            "none",
            "-m",
            "256M",
            "-accel",
            "tcg",
            "-no-reboot",
            "-kernel",
            str(guest.bzimage),
            "-initrd",
            str(guest.initrd),
            "-append",
            "console=ttyS0 nokaslr panic=-1",
            "-serial",
            f"file:{log}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen_at = None
    try:
        while proc.poll() is None and time.monotonic() - started < 120:
            if (
                seen_at is None
                and log.exists()
                and TESTER_PID.search(log.read_text(errors="replace"))
            ):
                seen_at = time.monotonic() - started
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    console = log.read_text(errors="replace")
    if seen_at is None and TESTER_PID.search(console):
        seen_at = time.monotonic() - started
    return Boot(console, seen_at if seen_at is not None else -1.0, proc.returncode)


@dataclass
class ProbeRun:
    """run_qemu_gdb.sh --batch --watcher probe: KernelView's view of every hit."""

    stdout: str
    stderr: str
    returncode: int
    hits: list[dict] = field(default_factory=list)  # kept by --pid
    filtered: list[dict] = field(default_factory=list)  # dropped by --pid
    seconds: float = 0.0

    @property
    def console(self) -> str:
        return self.stderr


@pytest.fixture(scope="session")
def probe_run(guest, tmp_path_factory) -> ProbeRun:
    log = tmp_path_factory.mktemp(f"probe-{guest.arch}") / "probe.jsonl"
    started = time.monotonic()
    done = run_batch(guest, "--watcher", "probe", "--probe-log", str(log))
    run = ProbeRun(done.stdout, done.stderr, done.returncode, seconds=time.monotonic() - started)
    if log.exists():
        for line in log.read_text().splitlines():
            record = json.loads(line)
            (run.filtered if record.get("filtered") else run.hits).append(record)
    return run
