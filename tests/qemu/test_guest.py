"""The default guest boots to the tester, and KernelView sees its accesses right."""

from __future__ import annotations

import re
import subprocess

from qemu_support import (
    TESTER_CHILD,
    TESTER_DONE,
    TESTER_PID,
    assert_one_line_error,
    quiet_env,
    run_batch,
    run_script,
)

from tests.records import read_jsonl

EXPECTED_DONE = "user writes 2, user reads 1, kernel writes 1, kernel reads 1, child writes 1"


def test_guest_boots_to_the_tester_and_powers_off(boot):
    assert TESTER_PID.search(boot.console), boot.console[-2000:]
    done = TESTER_DONE.search(boot.console)
    assert done and done.group(1).strip() == EXPECTED_DONE
    assert "guest_init: done, rebooting" in boot.console
    assert boot.returncode == 0  # -no-reboot: the guest's reboot ends QEMU
    assert 0 < boot.seconds_to_tester < 30


def _tester_pid(text: str) -> int:
    match = TESTER_PID.search(text)
    assert match, text[-3000:]
    return int(match.group(1))


def test_probe_run_ends_cleanly(probe_run):
    assert probe_run.returncode == 0, probe_run.stdout[-3000:] + probe_run.stderr[-3000:]
    assert "Traceback" not in probe_run.stdout + probe_run.stderr
    assert re.search(r"qzn-qemu: pid \d+ exited", probe_run.stdout), probe_run.stdout[-3000:]
    done = TESTER_DONE.search(probe_run.console)
    assert done and done.group(1).strip() == EXPECTED_DONE


def test_hits_kept_are_the_testers_five(probe_run):
    pid = _tester_pid(probe_run.console)
    modes = [hit["mode"] for hit in probe_run.hits]
    assert modes == ["user", "user", "user", "kernel", "kernel"], probe_run.stdout[-3000:]
    for hit in probe_run.hits:
        assert hit["pid"] == pid and hit["tid"] == pid
        assert hit["comm"] == "guest_tester"


def test_childs_write_is_filtered_out(probe_run):
    child = int(TESTER_CHILD.search(probe_run.console).group(1))
    children = [hit for hit in probe_run.filtered if hit["pid"] == child]
    assert [hit["mode"] for hit in children] == ["user"], probe_run.filtered
    assert children[0]["comm"] == "guest_tester"


def _funcs(frames: list[dict]) -> list[str]:
    return [frame["func"] for frame in frames]


def test_user_hits_have_user_frames(probe_run):
    first, read, same = probe_run.hits[:3]
    assert _funcs(first["frames"])[:3] == ["poke_byte", "user_accesses", "main"]
    assert _funcs(read["frames"])[:3] == ["peek_byte", "user_accesses", "main"]
    assert _funcs(same["frames"])[:3] == ["poke_byte", "user_accesses", "main"]
    assert all(not hit["user_frames"] for hit in (first, read, same))


def test_kernel_write_from_read_of_dev_zero(probe_run):
    hit = probe_run.hits[3]
    funcs = _funcs(hit["frames"])
    for name in ("read_zero", "vfs_read", "ksys_read"):
        assert name in funcs, funcs
    assert funcs.index("read_zero") < funcs.index("vfs_read") < funcs.index("ksys_read")
    user = _funcs(hit["user_frames"])
    at = user.index("fill_from_zero") if "fill_from_zero" in user else -1
    assert at > 0 and user[at : at + 3] == ["fill_from_zero", "kernel_accesses", "main"], user
    assert user[at - 1] in ("read", "__libc_read"), user  # the syscall stub, then the vDSO
    assert any(f["file"] and f["file"].endswith("guest_tester.c") for f in hit["user_frames"])


def test_kernel_read_from_write_to_a_pipe(probe_run):
    hit = probe_run.hits[4]
    funcs = _funcs(hit["frames"])
    assert "pipe_write" in funcs and "vfs_write" in funcs, funcs
    user = _funcs(hit["user_frames"])
    at = user.index("send_to_pipe") if "send_to_pipe" in user else -1
    assert at > 0 and user[at : at + 3] == ["send_to_pipe", "kernel_accesses", "main"], user
    assert user[at - 1] in ("write", "__libc_write"), user


def test_cost_per_hit(probe_run):
    # hit_context + kernel frames + user frames, measured inside stop().
    costs = [hit["ms"] for hit in probe_run.hits]
    assert max(costs) < 200, costs  # generous: the first hits also read debug info


# --- run_qemu_gdb.sh errors --------------------------------------------------------


def test_error_missing_kernel(tmp_path):
    assert_one_line_error(
        run_script("--kernel", str(tmp_path / "bzImage"), "--vmlinux", "x"),
        "kernel image not found",
    )


def test_error_missing_qemu(guest, tmp_path):
    # A PATH with gdb and the basic tools but no QEMU.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (
        "gdb",
        "tail",
        "sed",
        "head",
        "basename",
        "dirname",
        "file",
        "readelf",
        "mktemp",
        "sha256sum",
        "cut",
        "cat",
        "dpkg-query",
        "stat",
        "ls",
        "grep",
        "rm",
    ):
        path = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if path:
            (bin_dir / tool).symlink_to(path)
    env = quiet_env(PATH=str(bin_dir))
    done = run_script(
        "--kernel",
        str(guest.bzimage),
        "--initrd",
        str(guest.initrd),
        "--vmlinux",
        str(guest.vmlinux),
        "--arch",
        guest.arch,
        env=env,
    )
    assert_one_line_error(done, "not found: apt-get install qemu-system-x86")


def test_help():
    done = run_script("--help")
    assert done.returncode == 0 and "--batch" in done.stdout and "--yocto" in done.stdout


def test_batch_qzn_watch_logs_every_access_with_mode(guest, tmp_path):
    """End to end: run_qemu_gdb.sh --batch with qzn-watch --pid, its JSON Lines log."""
    prefix = tmp_path / "guest"
    done = run_batch(guest, "--", "--color", "never", "--quiet", "--log", str(prefix))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    pid = _tester_pid(done.stderr)
    records = read_jsonl(tmp_path / "guest.jsonl")
    assert [(r["kind"], r["mode"]) for r in records] == [
        ("write", "user"),
        ("read", "user"),
        ("write", "user"),  # same value
        ("write", "kernel"),  # read() from /dev/zero
        ("read", "kernel"),  # write() into a pipe
    ]
    assert all(r["pid"] == pid and r["comm"] == "guest_tester" for r in records)
    kernel_write = [f["func"] for f in records[3]["frames"]]
    assert "read_zero" in kernel_write and "fill_from_zero" in kernel_write, kernel_write
    kernel_read = [f["func"] for f in records[4]["frames"]]
    assert "pipe_write" in kernel_read and "send_to_pipe" in kernel_read, kernel_read
    assert kernel_read.index("pipe_write") < kernel_read.index("send_to_pipe")


FAKE_QEMU = """#!/usr/bin/python3
# A QEMU whose gdbstub socket accepts connections and never answers.
import socket, sys
path = sys.argv[sys.argv.index("-gdb") + 1].removeprefix("unix:").split(",")[0]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()
held = []
while True:
    held.append(server.accept()[0])
"""


def test_error_gdbstub_never_answers(guest, tmp_path):
    fake = tmp_path / {"x86_64": "qemu-system-x86_64", "i386": "qemu-system-i386"}[guest.arch]
    fake.write_text(FAKE_QEMU)
    fake.chmod(0o755)
    env = quiet_env(PATH=f"{tmp_path}:{quiet_env()['PATH']}", QZN_REMOTE_TIMEOUT="1")
    done = run_script("--arch", guest.arch, "--batch", env=env)
    assert done.returncode == 3
    assert "never answered" in done.stderr.strip().splitlines()[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_yocto_build_dir_layout(guest, tmp_path):
    """--yocto finds bzImage, the initramfs and vmlinux where a Yocto build puts them."""
    machine = {"x86_64": "qemux86-64", "i386": "qemux86"}[guest.arch]
    deploy = tmp_path / "tmp" / "deploy" / "images" / machine
    deploy.mkdir(parents=True)
    (deploy / "bzImage").symlink_to(guest.bzimage)
    (deploy / f"core-image-minimal-{machine}.cpio.gz").symlink_to(guest.initrd)
    build = (
        tmp_path
        / "tmp"
        / "work"
        / f"{machine.replace('-', '_')}-poky-linux"
        / "linux-yocto"
        / "6.1.38+gitAUTOINC-r0"
        / f"linux-{machine.replace('-', '_')}-standard-build"
    )
    build.mkdir(parents=True)
    (build / "vmlinux").symlink_to(guest.vmlinux)
    done = run_script(
        "--yocto",
        str(tmp_path),
        "--symbols",
        str(guest.tester),
        "--batch",
        "--watcher",
        "probe",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"symbols {build / 'vmlinux'}" in done.stderr
    assert "probe: 5 hits kept" in done.stdout, done.stdout[-2000:]


def test_cr3_fallback_without_kernel_symbols(guest, tmp_path):
    """No vmlinux: hits are kept by address space, learned at the ready point."""
    log = tmp_path / "probe.jsonl"
    done = run_batch(guest, "--no-kernel-symbols", "--watcher", "probe", "--probe-log", str(log))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"filtering by address space cr3=0x[0-9a-f]+ learned at arming", done.stdout)
    records = read_jsonl(log)
    kept = [r for r in records if not r.get("filtered")]
    assert [r["mode"] for r in kept] == ["user", "user", "user", "kernel", "kernel"]
    assert "probe: 5 hits kept of 6" in done.stdout  # the child's write, another space


def test_error_no_such_pid_in_the_guest(guest):
    done = run_batch(guest, "--", "--pid", "9999")  # the last --pid wins over the flow's
    assert done.returncode == 1
    assert "no process with pid 9999 in the guest" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
