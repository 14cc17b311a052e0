"""Shared fixtures: build the C targets, run a real gdb with the extension loaded, start the
tester (and any process a test starts) and reap it at teardown."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gdb_qznusnih.launcher.preflight import parse_status

REPO = Path(__file__).resolve().parent.parent
C_DIR = REPO / "tests" / "c"
LOADER = REPO / "gdb_qznusnih" / "loader.py"
# The extension from this checkout, its watches by the gdb engine (the default, auto, takes
# perf for a native process: tests of the perf engine inside gdb say --engine perf).
WITH_GDB_ENGINE = ("-x", str(LOADER), "-ex", "set qzn engine gdb")


def gdb_base_command() -> list[str]:
    """gdb without user init files, with the extension sourced from this checkout."""
    return ["gdb", "-nx", "-batch", "-ex", "set width 0", "-ex", "set height 0", *WITH_GDB_ENGINE]


def gdb_stopped_at_argv(
    program,
    *commands: str,
    stop_at: str = "ready",
    batch: bool = False,
    args=(),
    extension=WITH_GDB_ENGINE,
) -> list[str]:
    """gdb on `program ARGS`, run to `stop_at`, then `commands`; without -batch gdb reads its
    empty stdin after them and exits, as at a prompt (qzn-watch returns at once there)."""
    argv = ["gdb", "-nx", *(["-batch"] if batch else []), *extension]
    for command in ("set width 0", "set confirm off", f"tbreak {stop_at}", "run", *commands):
        argv += ["-ex", command]
    return [*argv, "--args", str(program), *args]


def run_gdb_stopped_at(
    program, *commands: str, wrapper=(), timeout: float = 120, **how
) -> subprocess.CompletedProcess:
    """gdb_stopped_at_argv run to its end (under `wrapper`, if any), its output captured."""
    return subprocess.run(
        [*wrapper, *gdb_stopped_at_argv(program, *commands, **how)],
        capture_output=True, text=True, env=quiet_env(), timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def quiet_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def c_build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cbin")


@pytest.fixture(scope="session")
def build_c(c_build_dir):
    """build_c("mix", m32=False, extra=()) -> path of the built program (cached per session;
    each set of extra gcc flags, e.g. ("-O2", "-no-pie"), is a program of its own)."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: install it with 'apt-get install gcc'")
    built: dict[tuple[str, bool, tuple[str, ...]], Path] = {}

    def build(name: str, m32: bool = False, extra: tuple[str, ...] = ()) -> Path:
        key = (name, m32, tuple(extra))
        if key not in built:
            variant = f"-{len(built)}" if extra else ""
            out = c_build_dir / (name + ("-32" if m32 else "") + variant)
            cmd = ["gcc", "-g", "-O0", "-pthread", "-o", str(out), str(C_DIR / f"{name}.c")]
            if m32:
                cmd[1:1] = ["-m32", "-msse2"]
            subprocess.run(cmd + list(extra), check=True)
            built[key] = out
        return built[key]

    return build


@pytest.fixture
def reap():
    """reap(proc) -> proc: a process the test started, killed if it still runs at teardown
    and waited for."""
    started: list[subprocess.Popen] = []

    def track(proc: subprocess.Popen) -> subprocess.Popen:
        started.append(proc)
        return proc

    yield track
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def tracer_pid(pid: int) -> int:
    """Who ptraces the process (0: nobody), by /proc/PID/status."""
    return parse_status(Path(f"/proc/{pid}/status").read_text()).tracer_pid


class Tester:
    """A running user_space_tester: its process, PID and the address of its byte."""

    def __init__(self, proc: subprocess.Popen, pid: int, addr: int) -> None:
        self.proc, self.pid, self.addr = proc, pid, addr

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tracer_pid(self) -> int:
        return tracer_pid(self.pid)

    def maps(self) -> list[str]:
        return Path(f"/proc/{self.pid}/maps").read_text().splitlines()

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def assert_completed(self, rounds: int) -> str:
        """The tester ran all its rounds and exited 0; its stdout."""
        code, out, err = self.finish()
        assert code == 0, f"tester exit {code}: {out} {err}"
        assert f"tester: {rounds} writes, {rounds} reads" in out
        return out


@pytest.fixture(scope="session")
def tester_bin(build_c) -> Path:
    return build_c("user_space_tester")


@pytest.fixture
def start_tester(tester_bin, reap):
    """start_tester("--rounds", "5") -> Tester, waiting for a tracer; killed at teardown."""

    def start(*args: str) -> Tester:
        proc = reap(
            subprocess.Popen(
                [str(tester_bin), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
        first = proc.stdout.readline().split()  # "pid 1234 byte 0x55..."
        assert first[:1] == ["pid"] and first[2:3] == ["byte"], first
        return Tester(proc, int(first[1]), int(first[3], 16))

    return start


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB file system (tmpfs, 16 pages) to fill: mounting needs root."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + done.stderr.decode().strip())
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
