"""A real gdbserver on loopback, on a free port, killed at teardown."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

_LISTENING = re.compile(r"Listening on port (\d+)")


class Gdbserver:
    """One gdbserver process: its port, and what it printed."""

    def __init__(self, options, then, stdin) -> None:
        # Port 0: the kernel picks a free one and gdbserver says which.
        self.proc = subprocess.Popen(
            ["gdbserver", *options, "127.0.0.1:0", *map(str, then)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.port = self._wait_for_port()
        self.address = f"127.0.0.1:{self.port}"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            found = _LISTENING.search(line)
            if found:
                return int(found.group(1))
        self.stop()
        raise AssertionError("gdbserver did not listen: " + "".join(self.output))

    def rest_of_output(self, timeout: float = 30) -> str:
        out, _ = self.proc.communicate(timeout=timeout)
        return "".join(self.output) + (out or "")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def gdbserver():
    """gdbserver(*OPTIONS, then=ARGS): runs `gdbserver OPTIONS 127.0.0.1:0 ARGS`, e.g.
    gdbserver("--attach", then=[pid]), gdbserver(then=[prog, "wait"]), gdbserver("--multi")."""
    if shutil.which("gdbserver") is None:
        pytest.fail("gdbserver is missing: install it with 'apt-get install gdbserver'")
    started: list[Gdbserver] = []

    def start(*options: str, then=(), stdin=subprocess.DEVNULL) -> Gdbserver:
        server = Gdbserver(options, then, stdin)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
