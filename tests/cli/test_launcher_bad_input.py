"""Bad input: one line on stderr, a non-zero exit, no traceback, the target untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from launcher_helpers import assert_one_line_error, needs_qzn_watch, quiet_env, run_launcher

pytestmark = pytest.mark.gdb

WAITING = ("--rounds", "3", "--timeout", "60")


def assert_untouched(tester) -> None:
    assert tester.alive(), "the target died"
    assert tester.tracer_pid() == 0, "the target is still traced"


def assert_finishes_normally(tester, rounds: int = 3) -> None:
    """A target gdb did attach to: once traced it runs its rounds; they must all complete."""
    code, out, err = tester.finish()
    assert code == 0, (out, err)
    assert f"tester: {rounds} writes, {rounds} reads" in out


def free_pid() -> int:
    pid = 4 * 1024 * 1024 - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def test_no_such_pid():
    pid = free_pid()
    done = run_launcher("watch", "0x1000", str(pid))
    assert_one_line_error(done, f"no process with PID {pid}", code=1)


def test_zombie():
    child = subprocess.Popen(["true"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        for _ in range(500):
            if stat.read_text().rpartition(")")[2].split()[0] == "Z":
                break
            subprocess.run(["sleep", "0.01"])
        done = run_launcher("watch", "0x1000", str(child.pid))
        assert_one_line_error(done, "is a zombie", code=1)
    finally:
        child.wait()


def test_kernel_thread():
    stat = Path("/proc/2/stat")
    if not stat.exists() or "(kthreadd)" not in stat.read_text():
        pytest.skip("no kthreadd visible in this PID namespace")
    done = run_launcher("watch", "0x1000", "2")
    assert_one_line_error(done, "kernel thread", code=1)


def test_already_traced(start_tester):
    tester = start_tester(*WAITING)
    tracer = subprocess.Popen(
        ["gdb", "-nx", "-batch", "-p", str(tester.pid), "-ex", "shell sleep 60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(3000):
            if tester.tracer_pid() == tracer.pid:
                break
            subprocess.run(["sleep", "0.01"])
        done = run_launcher("watch", hex(tester.addr), str(tester.pid))
        assert_one_line_error(done, f"already traced by process {tracer.pid} (gdb)", code=1)
        assert tester.alive()
    finally:
        tracer.terminate()
        tracer.wait()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_ptrace_not_permitted_for_another_user(start_tester):
    tester = start_tester(*WAITING)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-m",
            "gdb_qznusnih",
            "watch",
            hex(tester.addr),
            str(tester.pid),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env=quiet_env(),
    )
    assert_one_line_error(done, "cannot trace", "uid 0", "root", code=1)
    assert_untouched(tester)


def test_unmapped_address_names_the_mappings(start_tester):
    tester = start_tester(*WAITING)
    done = run_launcher("watch", "0x1000", str(tester.pid))
    assert_one_line_error(done, "0x1000 is not mapped", "before 0x", code=1)
    assert_untouched(tester)


def test_kernel_address(start_tester):
    tester = start_tester(*WAITING)
    done = run_launcher("watch", "ffffffff81000000", str(tester.pid))
    assert_one_line_error(done, "kernel address", code=1)
    assert_untouched(tester)


def test_misaligned_address(start_tester):
    tester = start_tester(*WAITING)
    done = run_launcher("watch", hex(tester.addr + 1), str(tester.pid), "--len", "4")
    assert_one_line_error(done, "not aligned to --len 4", code=1)
    assert_untouched(tester)


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--len", "3"], "1, 2, 4 or 8"),
        (["--count", "0"], "greater than zero"),
        (["--count", "-3"], "--count"),
        (["--duration", "0"], "positive number of seconds"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_options_exit_2(start_tester, options, fragment):
    tester = start_tester(*WAITING)
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), *options)
    assert_one_line_error(done, fragment, code=2)
    assert_untouched(tester)


@pytest.mark.parametrize(
    "prefix, fragment",
    [("missing-dir/w", "does not exist"), ("/proc/qzn-watch", "cannot create files")],
)
def test_log_prefix_that_cannot_be_written(start_tester, tmp_path, prefix, fragment):
    tester = start_tester(*WAITING)
    prefix = prefix if prefix.startswith("/") else str(tmp_path / prefix)
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), "--log", prefix)
    assert_one_line_error(done, "--log", fragment, code=1)
    assert_untouched(tester)


def test_gdb_missing(start_tester, tmp_path):
    tester = start_tester(*WAITING)
    env = quiet_env(PATH=str(tmp_path))
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), env=env)
    line = assert_one_line_error(done, code=1)
    assert line == "qznusnih: gdb not found on PATH; install it with 'apt-get install gdb'"
    assert_untouched(tester)


def test_gdb_without_python(start_tester, tmp_path):
    tester = start_tester(*WAITING)
    fake = tmp_path / "gdb"
    fake.write_text(
        "#!/bin/sh\necho 'Python scripting is not supported in this copy of GDB.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    env = quiet_env(PATH=f"{tmp_path}:{os.environ['PATH']}")
    done = run_launcher("watch", hex(tester.addr), str(tester.pid), env=env)
    assert_one_line_error(done, "cannot run Python", "apt-get install gdb", code=1)
    assert_untouched(tester)


def test_control_characters_cannot_smuggle_a_command(start_tester, tmp_path):
    tester = start_tester(*WAITING)
    marker = tmp_path / "pwned"
    done = run_launcher("watch", f"&the_data\nshell touch {marker}", str(tester.pid))
    assert_one_line_error(done, "control characters", code=2)
    assert not marker.exists()
    assert_untouched(tester)


def test_semicolon_expression_stays_an_expression(start_tester, tmp_path):
    """`;` and quotes reach qzn-watch inside its one quoted argument: gdb never runs them."""
    tester = start_tester(*WAITING)
    marker = tmp_path / "pwned"
    for expr in (f"0; shell touch {marker}", f"x' ; shell touch {marker} '"):
        done = run_launcher("watch", expr, str(tester.pid), "--duration", "1")
        assert done.returncode != 0
        assert not marker.exists()
        assert "Traceback" not in done.stderr
    assert_untouched(tester)  # gdb attached and left before the tester even saw it


@needs_qzn_watch
def test_bad_expression_is_one_line(start_tester):
    tester = start_tester(*WAITING)
    done = run_launcher("watch", "no_such_symbol_here", str(tester.pid))
    assert_one_line_error(done, "no_such_symbol_here", code=1, prefixed=False)
    assert_untouched(tester)


def test_read_only_mapping_warns_and_goes_on(start_tester):
    tester = start_tester(*WAITING)
    exe = os.path.realpath(f"/proc/{tester.pid}/exe")
    ro = next(line for line in tester.maps() if line.split()[1].startswith("r--") and exe in line)
    addr = ro.split("-")[0]
    done = run_launcher("watch", "0x" + addr, str(tester.pid), "--duration", "1", "--quiet")
    warnings = [line for line in done.stderr.splitlines() if "read-only mapping" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("qznusnih: warning: ") and "faults anyway" in warnings[0]
    assert "Traceback" not in done.stderr
    assert_finishes_normally(tester)
