"""The perf engine's kernel mode, on real processes: the kernel's own accesses to the byte
(read() from /dev/zero into it, a pipe write() of it, a pipe read() back into it) are
records of their own, with the kernel frames then the user frames of the system call down
to main, counted exactly; where kernel mode may not be watched, one note and the user
records go on."""

from __future__ import annotations

import collections
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.events import EventConfig, PerfError
from tests.conftest import REPO, quiet_env
from tests.records import read_jsonl

pytestmark = pytest.mark.perf
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
KERNEL_SPACE = 1 << 63
# The kernel function that touches the byte is the kernel version's choice; the rest of each
# chain (vfs_*, the syscall entry) has kept its names since Linux 4.17.
ZEROING = r"read_zero|iov_iter_zero|_?_?clear_user\w*|rep_stos_alternative"
COPYING_IN = r"_?copy_from_iter\w*|copy_page_from_iter|_?copy_from_user|rep_movs_alternative"
COPYING_OUT = r"_?copy_to_iter\w*|copy_page_to_iter|_?copy_to_user|rep_movs_alternative"
LIBC = r"(__GI_)?(__libc_)?{}"


class KernelIo:
    """tests/c/kernel_io.c waiting on stdin: armed, then go()."""

    def __init__(self, program: Path, rounds: int, name: str | None = None, wrapper=()):
        self.rounds = rounds
        self.proc = subprocess.Popen(
            [*wrapper, str(program), str(rounds), *([name] if name else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        first = self.proc.stdout.readline().decode().split()  # "pid 1234 addr 0x55..."
        assert first[:1] == ["pid"], first
        self.pid, self.address = int(first[1]), int(first[3], 16)

    def go(self) -> None:
        self.proc.stdin.write(b"g")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == b"done\n"

    def finish(self) -> int:
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0
        return int(out.split()[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def kernel_io(build_c):
    started: list[KernelIo] = []

    def start(rounds: int, name: str | None = None, program=None, wrapper=()) -> KernelIo:
        target = KernelIo(program or build_c("kernel_io"), rounds, name, wrapper)
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()


def watch(target: KernelIo, *options: str, wrapper=(), python=None, cwd=REPO):
    """`qznusnih watch ADDR PID --engine perf OPTIONS` while the target does its rounds;
    (exit status, stdout, stderr)."""
    command = [python or sys.executable, "-m", "gdb_qznusnih"]
    command += ["watch", hex(target.address), str(target.pid), "--engine", "perf", *options]
    proc = subprocess.Popen(
        [*wrapper, *command],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=quiet_env(),
    )
    try:
        before_armed = ""  # notes come before the armed line
        while "qzn: watch 1: " not in before_armed:
            line = proc.stderr.readline()
            assert line, before_armed + proc.stderr.read().decode()
            before_armed += line.decode()
        target.go()
        target.proc.stdin.close()  # it exits: the watch ends with it
        target.proc.stdin = None
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out.decode(), before_armed + err.decode()


def funcs(record: dict) -> list[str | None]:
    return [frame["func"] for frame in record["frames"]]


def kernel_part(record: dict) -> list[dict]:
    return [frame for frame in record["frames"] if int(frame["pc"], 16) >= KERNEL_SPACE]


def user_funcs(record: dict) -> list[str | None]:
    return [f["func"] for f in record["frames"] if int(f["pc"], 16) < KERNEL_SPACE]


def check_kernel_record(record: dict, kind: str, innermost: str, vfs: str, libc: str, caller: str):
    assert (record["kind"], record["mode"], record["comm"]) == (kind, "kernel", "kernel_io")
    assert (record["kind_from"], record["insn"]) == ("hardware", None)
    assert (record["value"], record["value_from"]) == (None, None)
    assert record["pc"] == record["frames"][0]["pc"] and int(record["pc"], 16) >= KERNEL_SPACE
    assert [frame["level"] for frame in record["frames"]] == list(range(len(record["frames"])))
    kernel = kernel_part(record)
    assert all(frame["file"] is None and frame["line"] is None for frame in kernel)
    names = [frame["func"] for frame in kernel]
    assert re.fullmatch(innermost, names[0]), names
    assert vfs in names and names[-1].startswith("entry_SYSCALL_64"), names
    assert record["frames"][: len(kernel)] == kernel  # kernel frames first, then user ones
    user = user_funcs(record)
    assert re.fullmatch(LIBC.format(libc), user[0]) and user[1:] == [caller, "main"], user


def test_the_kernels_reads_and_writes_are_kernel_records_with_the_system_calls_frames(
    kernel_io, tmp_path
):
    rounds = 4
    target = kernel_io(rounds)
    status, _, err = watch(target, "--log", str(tmp_path / "k"), "--quiet", "--no-html")
    assert status == 0, err
    assert "; kernel-mode accesses too;" in err and "not visible" not in err
    assert "Traceback" not in err
    logged = read_jsonl(tmp_path / "k.jsonl")
    assert len(logged) == 4 * rounds + 1
    assert [r["seq"] for r in logged] == list(range(1, 4 * rounds + 2))
    last_read = logged[-1]  # main prints the byte as it exits
    assert (last_read["kind"], last_read["value"], funcs(last_read)) == ("read", 0, ["main"])
    assert "mode" not in last_read
    for index in range(rounds):
        user_write, zeroed, sent, received = logged[4 * index : 4 * index + 4]
        value = index | 1
        # a user record: the gdb engine's shape, no mode
        assert "mode" not in user_write and "comm" not in user_write
        assert (user_write["kind"], user_write["value"], user_write["kind_from"]) == (
            "write", value, "insn"
        )  # fmt: skip
        assert user_write["old"] == (None if index else 0)  # after the kernel's write: unknown
        assert funcs(user_write) == ["store_byte", "main"]
        check_kernel_record(zeroed, "write", ZEROING, "vfs_read", "read", "zero_into_byte")
        assert zeroed["old"] == value  # the user write before it said what it stored
        check_kernel_record(sent, "read", COPYING_IN, "vfs_write", "write", "send_byte")
        assert sent["old"] is None
        check_kernel_record(received, "write", COPYING_OUT, "vfs_read", "read", "receive_byte")
        assert received["old"] is None  # the kernel's write before: unknown
        round_records = (user_write, zeroed, sent, received)
        assert {(r["pid"], r["tid"]) for r in round_records} == {(target.pid, target.pid)}
    assert target.finish() == 0  # /dev/zero's, through the pipe


def test_each_kind_of_a_user_and_kernel_mix_is_counted_exactly(kernel_io, tmp_path):
    rounds = 300
    target = kernel_io(rounds)
    status, out, err = watch(target, "--log", str(tmp_path / "k"), "--quiet", "--no-html")
    assert status == 0, err
    logged = read_jsonl(tmp_path / "k.jsonl")
    counts = collections.Counter((r.get("mode"), r["kind"]) for r in logged)
    assert counts == {(None, "write"): rounds, ("kernel", "write"): 2 * rounds,
                      ("kernel", "read"): rounds, (None, "read"): 1}  # fmt: skip
    assert "lost" not in out
    assert f"  by mode: kernel {3 * rounds:,}, user {rounds + 1:,}\n" in out
    assert target.finish() == 0


def test_a_write_only_watch_logs_the_kernels_writes_and_never_its_reads(kernel_io, tmp_path):
    """The W event alone (--access w): the kernel's writes trap it, with the kernel frames;
    its read (the pipe write() of the byte) does not, nor the user read at the exit."""
    rounds = 300
    target = kernel_io(rounds)
    status, out, err = watch(target, "--access", "w", "--log", str(tmp_path / "k"), "--quiet",
                             "--no-html")  # fmt: skip
    assert status == 0, err
    assert "; takes 1 debug register; kernel-mode accesses too;" in err
    logged = read_jsonl(tmp_path / "k.jsonl")
    counts = collections.Counter((r.get("mode"), r["kind"]) for r in logged)
    assert counts == {(None, "write"): rounds, ("kernel", "write"): 2 * rounds}
    user_write, zeroed, received = logged[:3]
    assert funcs(user_write) == ["store_byte", "main"] and user_write["value"] == 1
    check_kernel_record(zeroed, "write", ZEROING, "vfs_read", "read", "zero_into_byte")
    check_kernel_record(received, "write", COPYING_OUT, "vfs_read", "read", "receive_byte")
    assert "lost" not in out
    assert target.finish() == 0


def test_a_thread_name_with_control_characters_is_logged_escaped(kernel_io, tmp_path):
    """The target names its threads: its name must not reach root's terminal raw."""
    target = kernel_io(1, name="io\x1b]0;owned\x07")
    status, out, err = watch(target, "--log", str(tmp_path / "k"), "--no-html", "--color",
                             "never")  # fmt: skip
    assert status == 0, err
    kernel = [r for r in read_jsonl(tmp_path / "k.jsonl") if r.get("mode") == "kernel"]
    assert [r["comm"] for r in kernel] == ["io\\x1b]0;owned\\x07"] * 3
    assert "\x1b" not in out and "\x07" not in out
    assert out.count("kernel pid") == 3
    target.finish()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_without_permission_for_kernel_mode_it_says_so_once_and_logs_user_accesses(
    kernel_io, build_c
):
    """nobody watching its own process, kernel.perf_event_paranoid 2: user mode only."""
    paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    assert paranoid >= 2, "this test needs kernel.perf_event_paranoid >= 2 (the default)"
    nobody = pwd.getpwnam("nobody")
    home = Path(tempfile.mkdtemp(prefix="qzn-kernel-"))
    try:
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        program = home / "kernel_io"
        shutil.copy(build_c("kernel_io"), program)
        os.chown(program, nobody.pw_uid, nobody.pw_gid)
        rounds = 5
        target = kernel_io(rounds, program=program, wrapper=AS_NOBODY)
        status, _, err = watch(target, "--log", str(home / "k"), "--quiet", "--no-html",
                               wrapper=AS_NOBODY, python="/usr/bin/python3")  # fmt: skip
        assert status == 0, err
        note = (
            "qzn: kernel-mode accesses (read() into the bytes, copy_to_user...) are not "
            "visible: they need root, CAP_PERFMON or kernel.perf_event_paranoid <= 1 (it is "
            f"{paranoid}); logging user-mode accesses only\n"
        )
        assert err.count(note) == 1 and "Traceback" not in err
        assert "kernel-mode accesses too" not in err
        logged = read_jsonl(home / "k.jsonl")
        kinds = [(r["kind"], r.get("mode")) for r in logged]
        assert kinds == [("write", None)] * rounds + [("read", None)]  # main prints it
        assert [r["value"] for r in logged] == [i | 1 for i in range(rounds)] + [0]
        assert target.finish() == 0
    finally:
        shutil.rmtree(home)


def test_a_kernel_address_stays_refused_with_kernel_mode_watched(kernel_io):
    target = kernel_io(2)
    config = CaptureConfig(events=EventConfig(exclude_kernel=False))
    with pytest.raises(PerfError) as refused:
        Capture(target.pid, 0xFFFFFFFF81000000, 1, config).start()
    assert str(refused.value) == (
        "0xffffffff81000000 is a kernel address: watch a user-space address (below 0x800000000000)"
    )
    target.go()
    target.proc.stdin.close()
    target.proc.stdin = None
    assert target.finish() == 0
