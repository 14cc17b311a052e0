"""run_qemu_gdb.sh runs as root: each test here makes the attack and checks it fails.

The gdbstub (a socket nobody else can reach, remote File-I/O off), auto-loaded scripts,
the guest cache, and control characters in values pasted into gdb commands.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile

import pytest
from qemu_support import (
    AS_NOBODY,
    BUILD_GUEST,
    FAKE_STUB,
    QEMU,
    assert_one_line_error,
    fake_qemu,
    needs_root_and_setpriv,
    quiet_env,
    run_batch,
    run_script,
)

NOBODY = 65534


def _vault(tmp_path):
    """A directory only root can write, and the file the attacker wants root to create."""
    vault = tmp_path / "root-only"
    vault.mkdir(mode=0o700)
    return vault / "pwned"


# --- 1. the gdbstub -------------------------------------------------------------------


@pytest.mark.parametrize("guard", [[], ["--no-fileio-guard"]], ids=["guarded", "socket-only"])
def test_a_stub_of_another_user_racing_for_the_gdbstub_gets_no_file_written(guest, tmp_path, guard):
    needs_root_and_setpriv()
    target = _vault(tmp_path)
    racer = subprocess.Popen(
        [*AS_NOBODY, "/usr/bin/python3", str(FAKE_STUB), "race", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        done = run_batch(guest, "--watcher", "probe", *guard)
    finally:
        racer.kill()
        raced = racer.communicate()[0]
    assert not target.exists()
    assert "fake_stub: racing for unix:" in raced, raced  # it saw QEMU's -gdb and tried
    assert "fake_stub: took" not in raced, raced
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "probe: 5 hits kept" in done.stdout


def test_a_gdbstub_asking_for_host_file_io_is_cut_off(guest, tmp_path):
    """Even the stub run_qemu_gdb.sh started itself gets no File-I/O served."""
    target = _vault(tmp_path)
    done = run_script("--arch", guest.arch, "--batch", env=fake_qemu(tmp_path, guest.arch, target))
    assert not target.exists()
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gdbstub_guard: the gdbstub asked gdb for host File-I/O" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


# --- 2. auto-loaded scripts -----------------------------------------------------------


def test_scripts_planted_beside_the_symbols_and_vmlinux_are_not_run(guest, tmp_path):
    planted = tmp_path / "planted"
    planted.mkdir()
    shutil.copy(guest.tester, planted / "guest_tester")
    shutil.copy(guest.vmlinux, planted / "vmlinux")
    ran = tmp_path / "ran"
    for script in ("guest_tester-gdb.py", "vmlinux-gdb.py"):
        (planted / script).write_text(f"open({str(ran)!r} + '-{script}', 'w').close()\n")
    for script in ("guest_tester-gdb.gdb", "vmlinux-gdb.gdb"):
        (planted / script).write_text(f"shell touch {ran}-{script}\n")
    os.chown(planted, NOBODY, NOBODY)  # a directory another user can write
    done = run_script(
        "--kernel",
        str(guest.bzimage),
        "--initrd",
        str(guest.initrd),
        "--vmlinux",
        str(planted / "vmlinux"),
        "--symbols",
        str(planted / "guest_tester"),
        "--arch",
        guest.arch,
        "--batch",
        "--no-flow",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "add symbol table from file" in done.stdout  # the symbols were loaded
    assert sorted(path.name for path in tmp_path.glob("ran*")) == []


# --- 3. the guest cache ---------------------------------------------------------------


def _cache_copy(guest, tmp_path):
    """XDG_CACHE_HOME holding a copy of the built guest where build_guest.sh looks."""
    home = tmp_path / "xdg"
    copy = home / "qznusnih" / guest.dir.name
    copy.mkdir(parents=True, mode=0o755)
    for entry in guest.dir.iterdir():
        shutil.copy(entry, copy / entry.name)
    return home, copy


def _print_dir(guest, home) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BUILD_GUEST), "--arch", guest.arch, "--print-dir"],
        capture_output=True,
        text=True,
        env=quiet_env(XDG_CACHE_HOME=str(home)),
    )


def _plant_by_nobody(home, copy):
    for path in [copy.parent, copy, *copy.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    return "is owned by uid 65534, not by you"


def _file_writable_by_others(home, copy):
    (copy / "vmlinux").chmod(0o666)
    return "vmlinux is writable by others (mode 666)"


def _cache_dir_writable_by_others(home, copy):
    copy.parent.chmod(0o777)
    return "qznusnih is writable by others (mode 777)"


def _parent_owned_by_nobody(home, copy):
    os.chown(home, NOBODY, NOBODY)
    return f"{home} is owned by uid 65534"


def _file_is_a_symlink(home, copy):
    real = copy / "bzImage.real"
    (copy / "bzImage").rename(real)
    (copy / "bzImage").symlink_to(real)
    return "bzImage is a symlink"


@pytest.mark.parametrize(
    "plant",
    [
        _plant_by_nobody,
        _file_writable_by_others,
        _cache_dir_writable_by_others,
        _parent_owned_by_nobody,
        _file_is_a_symlink,
    ],
)
def test_a_guest_cache_others_could_write_is_refused(guest, tmp_path, plant):
    home, copy = _cache_copy(guest, tmp_path)
    assert _print_dir(guest, home).stdout.strip() == str(copy)  # the copy is a valid cache
    words = plant(home, copy)
    done = _print_dir(guest, home)
    assert done.returncode == 3 and done.stdout == ""
    assert_one_line_error(done, words)
    assert "set XDG_CACHE_HOME to a directory only you can write" in done.stderr


def test_run_qemu_gdb_refuses_a_planted_cache_in_one_line_before_boot(guest, tmp_path):
    home, copy = _cache_copy(guest, tmp_path)
    _plant_by_nobody(home, copy)
    done = run_script("--arch", guest.arch, "--batch", env=quiet_env(XDG_CACHE_HOME=str(home)))
    assert done.returncode == 3
    assert_one_line_error(done, "refusing the guest cache")


# --- 4. control characters in values pasted into gdb commands ------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("--watch", "&qzn_byte'\nshell touch {marker} #"),
        ("--go", "qzn_go = 1\nshell touch {marker} #"),
        ("--ready", "qzn_ready\nshell touch {marker}"),
        ("--comm", "guest_tester\r"),
        ("--gdb-ex", "echo\nshell touch {marker}"),
        ("--symbols", "/tmp/x\nshell touch {marker}"),
        ("--probe-log", "/tmp/x\x1b[2J"),
        ("--", "--count\nshell touch {marker}"),
    ],
)
def test_control_characters_are_refused_before_qemu_starts(guest, tmp_path, option, value):
    marker = tmp_path / "marker"
    value = value.format(marker=marker)
    args = ["--arch", guest.arch, "--batch", option, value]
    done = run_script(*args)
    assert not marker.exists()
    assert_one_line_error(done, "contains control characters")


# --- 5. files the script writes as root ------------------------------------------------


def _dir_of_nobody():
    """A directory under /tmp that nobody owns (and can reach), removed afterwards."""
    shared = tempfile.mkdtemp(prefix="qzn-nobody-", dir="/tmp")
    os.chmod(shared, 0o755)
    os.chown(shared, NOBODY, NOBODY)
    return shared


def _qemu_that_leaves_a_mark(directory, arch: str, mark) -> dict[str, str]:
    """An environment whose qemu-system-ARCH only records that it was started."""
    fake = directory / QEMU[arch]
    fake.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    fake.chmod(0o755)
    return quiet_env(PATH=f"{directory}:{quiet_env()['PATH']}")


@pytest.mark.parametrize("option", ["--serial-log", "--probe-log"])
def test_a_log_symlink_planted_by_another_user_is_refused_before_qemu_starts(
    guest, tmp_path, option
):
    needs_root_and_setpriv()
    precious = tmp_path / "root-only"
    precious.write_text("root's own data\n")
    shared = _dir_of_nobody()
    try:
        log = os.path.join(shared, "console.log")
        subprocess.run([*AS_NOBODY, "ln", "-s", str(precious), log], check=True)
        started = tmp_path / "qemu-started"
        env = _qemu_that_leaves_a_mark(tmp_path, guest.arch, started)
        done = run_script("--arch", guest.arch, "--batch", option, log, env=env)
    finally:
        shutil.rmtree(shared)
    assert precious.read_text() == "root's own data\n"
    assert not started.exists()
    assert done.returncode == 1
    assert_one_line_error(done, f"{option}: refusing to write through the symlink {log}")


def test_a_log_of_another_user_is_not_reused(guest, tmp_path):
    needs_root_and_setpriv()
    shared = _dir_of_nobody()
    try:
        log = os.path.join(shared, "console.log")
        subprocess.run([*AS_NOBODY, "sh", "-c", f"echo theirs > {log}"], check=True)
        started = tmp_path / "qemu-started"
        env = _qemu_that_leaves_a_mark(tmp_path, guest.arch, started)
        done = run_script("--arch", guest.arch, "--batch", "--serial-log", log, env=env)
        assert open(log).read() == "theirs\n"
    finally:
        shutil.rmtree(shared)
    assert not started.exists()
    assert_one_line_error(done, "refusing to reuse")


def test_the_console_log_is_private(guest, tmp_path):
    log = tmp_path / "console.log"
    done = run_batch(guest, "--no-flow", "--serial-log", str(log))
    assert done.returncode == 0, done.stderr[-2000:]
    info = log.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, os.geteuid())


# --- 6. names pasted into QEMU's -drive KEY=VALUE,... syntax ----------------------------


def _qemu_recording_argv(directory, arch: str, record) -> dict[str, str]:
    fake = directory / QEMU[arch]
    fake.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {record}\nexit 1\n")
    fake.chmod(0o755)
    return quiet_env(PATH=f"{directory}:{quiet_env()['PATH']}")


def _disk_qemu_opens(arch: str, drive: str) -> str:
    """What the real QEMU makes of a -drive argument: its `info block` line."""
    done = subprocess.run(
        [QEMU[arch], "-nodefaults", "-no-user-config", "-display", "none", "-S"]
        + ["-monitor", "stdio", "-drive", drive],
        input="info block\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def test_a_comma_in_the_rootfs_name_adds_no_drive_option(guest, tmp_path):
    decoy = tmp_path / "disk.img"
    rootfs = tmp_path / "disk.img,file.locking=off,if=none"
    for disk in (decoy, rootfs):
        disk.write_bytes(b"\0" * 65536)
    record = tmp_path / "argv"
    env = _qemu_recording_argv(tmp_path, guest.arch, record)
    run_script(
        *("--kernel", str(guest.bzimage), "--vmlinux", str(guest.vmlinux)),
        *("--rootfs", str(rootfs), "--arch", guest.arch, "--batch", "--no-flow"),
        env=env,
    )
    argv = record.read_text().split("\0")
    drive = argv[argv.index("-drive") + 1]
    opened = _disk_qemu_opens(guest.arch, drive)
    assert f'"filename": "{rootfs}"' in opened, opened
    assert "virtio0" in opened, opened  # if=virtio, as the script says, not the name's if=none


# --- 7. the probe watcher's expression --------------------------------------------------


@pytest.mark.parametrize(
    "expression, words",
    [
        ("qzn_go = 0x41", "assigns with '='"),
        ("qzn_ready()", "it would call a function in the target"),
    ],
    ids=["assignment", "call"],
)
def test_the_probe_watcher_refuses_an_expression_that_writes_or_calls(guest, expression, words):
    done = run_batch(guest, "--watcher", "probe", "--watch", expression)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    refusals = [line for line in done.stderr.splitlines() if line.startswith("qzn-qemu:")]
    assert len(refusals) == 1 and words in refusals[0], done.stderr[-2000:]
    assert "probe watch on" not in done.stdout


# --- 8. words pasted into gdb commands are quoted for gdb's splitter, not a shell's ----


def test_quotes_backslashes_and_spaces_reach_gdb_as_given(guest, tmp_path):
    odd = tmp_path / "it's a \\ dir"
    odd.mkdir()
    symbols = odd / "guest_tester"
    shutil.copy(guest.tester, symbols)
    prefix = odd / "guest"
    done = run_batch(
        guest,
        *("--symbols", str(symbols), "--watch", "&qzn_byte + '\\0'"),
        *("--", "--quiet", "--log", str(prefix)),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f'add symbol table from file "{symbols}"' in done.stdout
    lines = (odd / "guest.jsonl").read_text().splitlines()
    assert len(lines) == 5  # the tester's five accesses of qzn_byte: the address is right
