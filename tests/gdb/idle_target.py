"""The idle target (tests/c/idle.c) and snapshots of all its writable memory."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

from gdb_qznusnih.launcher.procfs import parse_maps
from tests.conftest import tracer_pid

# pause(2)'s number in /proc/PID/syscall: x86-64, else i386.
PAUSE_SYSCALL = "34" if platform.machine() == "x86_64" else "29"


class IdleTarget:
    """A running idle program: its process, PID and the address of its `buf`."""

    def __init__(self, program: Path) -> None:
        # Without rseq: the kernel writes the CPU number into it whenever the process moves.
        env = dict(os.environ, GLIBC_TUNABLES="glibc.pthread.rseq=0")
        self.proc = subprocess.Popen(
            [str(program)], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=env
        )
        words = self.proc.stdout.readline().split()  # "pid 1234 buf 0x55..."
        self.pid, self.buf = int(words[1]), int(words[3], 16)
        self._wait_until_paused()

    def _wait_until_paused(self) -> None:
        """Until it sleeps in pause(): the first call binds the symbol, which writes memory."""
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.pid}/syscall").read_text().split()[0] != PAUSE_SYSCALL:
            assert time.monotonic() < deadline, "the idle target never reached pause()"
            time.sleep(0.005)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tracer_pid(self) -> int:
        return tracer_pid(self.pid)

    def writable_memory(self) -> dict[str, bytes]:
        """Every writable mapping's bytes, read through /proc/PID/mem, by mapping."""
        maps = parse_maps(Path(f"/proc/{self.pid}/maps").read_text())
        snapshot = {}
        with open(f"/proc/{self.pid}/mem", "rb", buffering=0) as mem:
            for mapping in maps:
                if "w" not in mapping.perms:
                    continue
                mem.seek(mapping.start)
                snapshot[mapping.describe()] = mem.read(mapping.end - mapping.start)
        return snapshot

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def assert_memory_unchanged(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    assert after.keys() == before.keys(), "the target's mappings changed"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"the target's memory changed in {changed}"
