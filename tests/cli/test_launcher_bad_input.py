"""Bad input: one line on stderr, a non-zero exit, no traceback, the target untouched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from launcher_helpers import (
    assert_one_line_error,
    process_state,
    quiet_env,
    run_launcher,
    start_launcher,
    wait_for,
    watch_gdb_of,
)

pytestmark = pytest.mark.gdb

WAITING = ("--rounds", "3", "--timeout", "60")


def assert_untouched(tester) -> None:
    assert tester.alive(), "the target died"
    assert tester.tracer_pid() == 0, "the target is still traced"


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
        (["--duration", "nan"], "positive number of seconds"),
        (["--duration", "1e308"], "more than a year"),
        (["--log", ""], "--log: is empty; give a file prefix"),
        (["--log", "/tmp/"], "/tmp/ names a directory; give a file prefix"),
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
    done = run_launcher("watch", "0x" + addr, str(tester.pid), "--duration", "0.2", "--quiet")
    warnings = [line for line in done.stderr.splitlines() if "read-only mapping" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("qznusnih: warning: ") and "faults anyway" in warnings[0]
    assert "Traceback" not in done.stderr
    tester.assert_completed(3)


@pytest.mark.parametrize(
    "addr, fragment",
    [("0x" + "f" * 40, "does not fit in 64 bits"), ("1" * 5000, "does not fit in 64 bits")],
)
def test_huge_address_is_one_line(start_tester, addr, fragment):
    tester = start_tester(*WAITING)
    line = assert_one_line_error(run_launcher("watch", addr, str(tester.pid)), fragment, code=1)
    assert len(line) < 200
    assert_untouched(tester)


@pytest.mark.parametrize("addr", ["\u00ff", "&donn\u00e9es", "\u2603"])
def test_unicode_address_is_one_line(start_tester, addr):
    tester = start_tester(*WAITING)
    done = run_launcher("watch", addr, str(tester.pid))
    assert_one_line_error(done, addr, code=1, prefixed=False)  # qzn-watch's own error
    assert_untouched(tester)


# ---- attach failures: gdb is frozen before it attaches, the world changes, gdb goes on

SEIZE = """\
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:  # PTRACE_SEIZE: no stop
    sys.exit("seize failed")
print("seized", flush=True)
time.sleep(60)
"""


def frozen_gdb(launcher) -> int:
    """Wait for the launcher's gdb and SIGSTOP it before it attaches."""
    wait_for(lambda: watch_gdb_of(launcher.pid) is not None, what="gdb to start")
    gdb = watch_gdb_of(launcher.pid)
    os.kill(gdb, signal.SIGSTOP)
    wait_for(lambda: process_state(gdb) == "T", what="gdb to stop")
    return gdb


def finish_launcher(launcher, gdb) -> subprocess.CompletedProcess:
    os.kill(gdb, signal.SIGCONT)
    out, err = launcher.communicate(timeout=60)
    return subprocess.CompletedProcess(launcher.args, launcher.returncode, out, err)


def test_another_tracer_during_attach_is_named(start_tester):
    tester = start_tester("--no-wait", "--rounds", "100000", "--interval-ms", "10")
    launcher = start_launcher("watch", hex(tester.addr), str(tester.pid))
    gdb = frozen_gdb(launcher)
    assert tester.tracer_pid() == 0, "gdb attached before it could be frozen"
    tracer = subprocess.Popen(
        [sys.executable, "-c", SEIZE, str(tester.pid)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert tracer.stdout.readline() == "seized\n"
        done = finish_launcher(launcher, gdb)
        assert_one_line_error(
            done,
            f"gdb cannot attach to process {tester.pid} (",
            "Operation not permitted",
            f"is already traced by process {tracer.pid}",
            "detach that debugger first",
            code=1,
        )
    finally:
        tracer.kill()
        tracer.wait()
    wait_for(lambda: tester.tracer_pid() == 0, what="the tracer to let go")
    assert tester.alive()


def test_target_exiting_during_attach_is_named(start_tester):
    tester = start_tester(*WAITING)
    launcher = start_launcher("watch", hex(tester.addr), str(tester.pid))
    gdb = frozen_gdb(launcher)
    tester.proc.kill()
    tester.proc.wait()
    done = finish_launcher(launcher, gdb)
    assert_one_line_error(
        done,
        f"gdb cannot attach to process {tester.pid} (ptrace: No such process)",
        "it exited before gdb could attach; start it again",
        code=1,
    )


UNDUMPABLE = """\
import ctypes, os, time
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: only root may ptrace it now
print(os.getpid(), flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_ptrace_not_permitted_is_gdbs_reason_and_the_fix():
    """nobody watching nobody's process, which made itself non-dumpable: gdb's EPERM."""
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    target = subprocess.Popen(
        [*as_nobody, "/usr/bin/python3", "-c", UNDUMPABLE], stdout=subprocess.PIPE, text=True
    )
    try:
        pid = int(target.stdout.readline())
        done = subprocess.run(
            [*as_nobody, "/usr/bin/python3", "-m", "gdb_qznusnih", "watch", "0x1000", str(pid)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=120,
            env=quiet_env(),
        )
        assert_one_line_error(
            done,
            f"gdb cannot attach to process {pid} (ptrace: Operation not permitted)",
            "run as root",
            "non-dumpable",
            code=1,
        )
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()
