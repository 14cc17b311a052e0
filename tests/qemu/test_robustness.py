"""run_qemu_gdb.sh when QEMU dies under a watch, and options that must fail before boot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from qemu_support import QEMU, RUN_QEMU_GDB, assert_one_line_error, quiet_env, run_script

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
    assert "qzn: watch 1 ended: lost the connection to the target" in both
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line whole
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    summary = re.search(r"summary: (\d+) accesses", out)
    assert summary and int(summary.group(1)) == len(records) >= 20


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
