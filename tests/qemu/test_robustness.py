"""run_qemu_gdb.sh when QEMU dies under a watch, and options that must fail before boot."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from qemu_support import (
    FAKE_STUB,
    GDBSTUB_GUARD,
    QEMU,
    RUN_QEMU_GDB,
    assert_one_line_error,
    quiet_env,
    run_script,
)

from tests.records import read_jsonl

# --- 5. QEMU dies mid-watch -----------------------------------------------------------


def _process_in_group(group: int, name: str) -> int | None:
    """The pid of a process called `name` in process group `group`, if any."""
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getpgid(int(entry)) == group:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name[:15]:
                    return int(entry)
        except OSError:
            continue  # gone meanwhile
    return None


def _wait_for_lines(path: Path, count: int, proc: subprocess.Popen, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"{path} never had {count} records")


def test_qemu_killed_mid_watch_ends_it_in_one_line_with_the_records_kept(guest, tmp_path):
    prefix = tmp_path / "w"
    log = tmp_path / "w.jsonl"
    proc = subprocess.Popen(
        [str(RUN_QEMU_GDB), "--arch", guest.arch, "--batch", "--append", "qzn_rounds=100000"]
        + ["--", "--quiet", "--color", "never", "--no-html", "--log", str(prefix)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=quiet_env(),
        start_new_session=True,  # its own process group, to find QEMU in and to clean up
    )
    try:
        _wait_for_lines(log, 20, proc, 120)
        qemu = _process_in_group(proc.pid, QEMU[guest.arch])
        assert qemu is not None
        os.kill(qemu, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    both = out + err
    assert proc.returncode == 4, both[-3000:]
    assert err.strip().splitlines()[-1] == "run_qemu_gdb.sh: QEMU exited: killed by SIGKILL"
    assert both.count("QEMU exited") == 1
    for crash in ("double free", "internal problem", "Traceback"):
        assert crash not in both, both[-3000:]
    assert not re.search(r"line \d+: +\d+ Killed", both)  # bash's own notice of QEMU's end
    ended = [line for line in both.splitlines() if "watch 1 ended:" in line]
    assert ended == ["qzn: watch 1 ended: lost the connection to the target"], ended
    records = read_jsonl(log)  # every line whole
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    summary = re.search(r"summary: (\d+) accesses", out)
    assert summary and int(summary.group(1)) == len(records) >= 20


# gdb's requests while it handles a watchpoint hit, from the resume (1) to the next one
# (11): a register read, the watched byte, the thread list, breakpoint removal, the code
# at the pc, the watched byte again, breakpoint insertion, the resume.
REQUESTS_OF_ONE_HIT = range(1, 12)


@pytest.mark.parametrize("after", REQUESTS_OF_ONE_HIT)
def test_a_gdbstub_gone_at_any_request_of_a_hit_ends_gdb_cleanly(tmp_path, after):
    """QEMU killed while gdb handles a hit: whichever request of gdb's it dies in, gdb (behind
    gdbstub_guard.py) reports the target killed, once, and does not crash.  Without the
    guard's answers for the dead stub gdb 13 aborts at requests 6-8 (a failed read while
    it prints the stop) and loses the target in an error elsewhere."""
    socket_path = tmp_path / "gdbstub.sock"
    stub = subprocess.Popen(
        ["/usr/bin/python3", str(FAKE_STUB), "vanish", str(socket_path), str(after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        end = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < end:
            time.sleep(0.01)
        relay = f"| exec /usr/bin/python3 -I {GDBSTUB_GUARD} {socket_path}"
        done = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", "set architecture i386:x86-64",
             "-ex", f"target remote {relay}", "-ex", "awatch *(char *)0x3000",
             "-ex", "continue",
             "-ex", "python if gdb.selected_inferior().pid: gdb.execute('continue')"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            env=quiet_env(), cwd=tmp_path,  # a crashing gdb's core lands there
        )  # fmt: skip
    finally:
        stub.kill()
        hung_up = stub.communicate()[0]
    both = done.stdout + done.stderr
    assert f"fake_stub: hung up at request {after}:" in hung_up, hung_up
    for crash in ("internal problem", "internal-error", "double free"):
        assert crash not in both, both[-3000:]
    assert done.returncode == 0, both[-3000:]
    assert both.count("Program terminated with signal SIGKILL, Killed.") == 1, both[-3000:]


# --- 6. options that must fail before boot ---------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--timeout", "abc"], "--timeout must be a number > 0, not 'abc'"),
        (["--timeout", "0"], "--timeout must be a number > 0, not '0'"),
        (["--port", "0"], "--port is no longer supported"),
        (["--port", "99999"], "--port is no longer supported"),
        (["--arch", "sparc"], "--arch must be x86_64 or i386, not 'sparc'"),
        (["--smp", "two"], "--smp must be a number of CPUs"),
        (["--machine", "qemuarm"], "--machine must be qemux86 or qemux86-64"),
        (["--watcher", "perf"], "--watcher must be qzn or probe, not 'perf'"),
    ],
)
def test_bad_options_fail_in_one_line_before_boot(args, words):
    started = time.monotonic()
    assert_one_line_error(run_script("--batch", *args), words)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("not_a_kernel", ["bzimage", "tester", "text"])
def test_a_vmlinux_that_is_not_an_elf_kernel_fails_before_boot(guest, tmp_path, not_a_kernel):
    text = tmp_path / "vmlinux.txt"
    text.write_text("not an ELF\n")
    vmlinux = {"bzimage": guest.bzimage, "tester": guest.tester, "text": text}[not_a_kernel]
    done = run_script(
        "--kernel", str(guest.bzimage), "--initrd", str(guest.initrd),
        "--vmlinux", str(vmlinux), "--arch", guest.arch, "--batch",
    )  # fmt: skip
    assert_one_line_error(done, f"is not an ELF Linux kernel for {guest.arch}")


def test_a_vmlinux_of_the_other_architecture_fails_before_boot(guest):
    other = {"x86_64": "i386", "i386": "x86_64"}[guest.arch]
    done = run_script(
        "--kernel", str(guest.bzimage), "--initrd", str(guest.initrd),
        "--vmlinux", str(guest.vmlinux), "--arch", other, "--batch",
    )  # fmt: skip
    assert_one_line_error(done, f"is not an ELF Linux kernel for {other}")
