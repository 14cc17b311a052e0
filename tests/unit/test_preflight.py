"""Pre-flight checks on samples of /proc text: no process is touched."""

from __future__ import annotations

import os

import pytest

from gdb_qznusnih.launcher import preflight, procfs
from gdb_qznusnih.launcher.preflight import PreflightError

STATUS = """\
Name:\tuser_space_test
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
PPid:\t100
TracerPid:\t0
Uid:\t1000\t1000\t1000\t1000
Gid:\t1000\t1000\t1000\t1000
CapEff:\t0000000000000000
"""
STAT = (
    "4242 (user space) tester)) S 100 4242 100 34816 4242 4194304 120 0 0 0 0 0 0 0 20 0 1 0 "
    "98765 2453504 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
)
KTHREAD_STAT = (
    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 14 0 0 "
    "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"
)
MAPS = """\
555555554000-555555555000 r--p 00000000 fe:01 1234  /tmp/tester
555555555000-555555556000 r-xp 00001000 fe:01 1234  /tmp/tester
555555557000-555555558000 r--p 00002000 fe:01 1234  /tmp/tester
555555558000-555555559000 rw-p 00003000 fe:01 1234  /tmp/tester
555555559000-55555557a000 rw-p 00000000 00:00 0     [heap]
7ffff7fc1000-7ffff7fc5000 ---p 00000000 00:00 0
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0     [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]
"""
ROOT = preflight.ProcessStatus(
    name="qznusnih", uids=(0, 0, 0, 0), gids=(0, 0, 0, 0), cap_eff=1 << preflight.CAP_SYS_PTRACE
)
USER = preflight.ProcessStatus(name="qznusnih", uids=(1000,) * 4, gids=(1000,) * 4)
OTHER = preflight.ProcessStatus(name="qznusnih", uids=(1001,) * 4, gids=(1001,) * 4)


def make_target(status=STATUS, stat=STAT, maps=MAPS, exe_readable=True, tracer_name=None):
    state, flags, start = preflight.parse_stat(stat)
    return preflight.Target(
        4242,
        preflight.parse_status(status),
        flags,
        start,
        procfs.parse_maps(maps),
        exe_readable,
        tracer_name,
    )


def test_parse_status():
    status = preflight.parse_status(STATUS)
    assert (status.name, status.state, status.tracer_pid) == ("user_space_test", "S", 0)
    assert status.uids == (1000, 1000, 1000, 1000)


def test_parse_stat_with_parentheses_in_the_name():
    assert preflight.parse_stat(STAT) == ("S", 4194304, "98765")


def test_parse_maps():
    maps = procfs.parse_maps(MAPS)
    assert len(maps) == 8
    assert maps[4].path == "[heap]" and maps[4].perms == "rw-p"
    assert maps[5].path == ""


def test_a_normal_target_passes():
    target = make_target()
    preflight.check_target(target)
    preflight.check_ptrace_permission(target, USER, 0)
    preflight.check_ptrace_permission(target, ROOT, 2)
    assert preflight.check_address(0x555555558010, 1, target, machine="x86_64") is None


def test_zombie():
    zombie = STATUS.replace("S (sleeping)", "Z (zombie)")
    with pytest.raises(PreflightError, match="zombie"):
        preflight.check_target(make_target(status=zombie, maps=""))


def test_kernel_thread_by_flags():
    status = STATUS.replace("user_space_test", "kthreadd")
    with pytest.raises(PreflightError, match="kernel thread"):
        preflight.check_target(make_target(status=status, stat=KTHREAD_STAT, maps=""))


def test_kernel_thread_by_missing_mm():
    with pytest.raises(PreflightError, match="kernel thread"):
        preflight.check_target(make_target(maps="", exe_readable=False))


def test_unreadable_maps_are_not_a_kernel_thread():
    target = make_target(exe_readable=False)
    target.maps = None
    preflight.check_target(target)


def test_already_traced_names_the_tracer():
    traced = STATUS.replace("TracerPid:\t0", "TracerPid:\t777")
    with pytest.raises(PreflightError, match=r"already traced by process 777 \(gdb\)"):
        preflight.check_target(make_target(status=traced, tracer_name="gdb"))


def test_other_users_process_needs_root():
    with pytest.raises(PreflightError, match="uid 1000 and you are uid 1001.*root"):
        preflight.check_ptrace_permission(make_target(), OTHER, None)


def test_setuid_target_is_refused():
    mixed = STATUS.replace("Uid:\t1000\t1000\t1000\t1000", "Uid:\t1000\t0\t0\t0")
    with pytest.raises(PreflightError, match="cannot trace"):
        preflight.check_ptrace_permission(make_target(status=mixed), USER, 0)


def test_ptrace_scope_2_names_the_fix():
    with pytest.raises(PreflightError, match="sudo sysctl kernel.yama.ptrace_scope=0"):
        preflight.check_ptrace_permission(make_target(), USER, 2)


def test_ptrace_scope_3_refuses_even_root():
    with pytest.raises(PreflightError, match="ptrace_scope is 3"):
        preflight.check_ptrace_permission(make_target(), ROOT, 3)


@pytest.mark.parametrize(
    "text, value",
    [
        ("0x7ffd1234", 0x7FFD1234),
        ("7ffd1234abcd", 0x7FFD1234ABCD),
        ("1234", 0x1234),
        ("0XAB", 0xAB),
        ("&x", None),
        ("cafe", None),
        ("0x", None),
        ("", None),
        ("12g", None),
    ],
)
def test_literal_address(text, value):
    assert preflight.literal_address(text) == value


def test_kernel_address():
    with pytest.raises(PreflightError, match="kernel address"):
        preflight.check_address(0xFFFFFFFF81000000, 1, make_target(), machine="x86_64")


@pytest.mark.parametrize(
    "address, machine, shown",
    [
        (1 << 64, "x86_64", "0x10000000000000000 "),
        (1 << 4000, "x86_64", f"{1 << 4000:#x}"[:21] + "..."),
        (1 << 32, "i686", "0x100000000 "),
    ],
)
def test_address_wider_than_the_machine(address, machine, shown):
    bits = 64 if machine == "x86_64" else 32
    with pytest.raises(PreflightError, match=f"does not fit in {bits} bits") as caught:
        preflight.check_address(address, 1, make_target(), machine=machine)
    assert str(caught.value).startswith(shown)


def test_vsyscall_counts_as_kernel():
    with pytest.raises(PreflightError, match="kernel address"):
        preflight.check_address(0xFFFFFFFFFF600000, 1, make_target(), machine="x86_64")


def test_unmapped_names_the_neighbouring_mappings():
    with pytest.raises(PreflightError) as caught:
        preflight.check_address(0x600000000000, 1, make_target(), machine="x86_64")
    message = str(caught.value)
    assert "not mapped in process 4242" in message
    assert "after 0x55555557a000" not in message  # the end is exclusive: below is [heap]
    assert "[heap]" in message and "before 0x7ffff7fc1000" in message
    assert "\n" not in message


def test_misaligned():
    with pytest.raises(PreflightError, match="not aligned to --len 4"):
        preflight.check_address(0x555555558002, 4, make_target(), machine="x86_64")


def test_read_only_mapping_warns():
    warning = preflight.check_address(0x555555554010, 1, make_target(), machine="x86_64")
    assert warning.startswith("warning: 0x555555554010 is in a read-only mapping")
    assert "a write there faults anyway" in warning
    assert "/tmp/tester" in warning


def test_i386_kernel_split():
    with pytest.raises(PreflightError, match="kernel address"):
        preflight.check_address(0xC0001000, 1, make_target(), machine="i686")


def test_gdb_probe_ok():
    out = f"{preflight.PROBE_MARKER} ['/usr/share/gdb/python', '/usr/lib/python3/dist-packages']\n"
    assert preflight.parse_gdb_probe("gdb", 0, out, "") == [
        "/usr/share/gdb/python",
        "/usr/lib/python3/dist-packages",
    ]


def test_gdb_without_python():
    with pytest.raises(PreflightError, match="cannot run Python.*not supported"):
        preflight.parse_gdb_probe(
            "/usr/bin/gdb", 1, "", "Python scripting is not supported in this copy of GDB.\n"
        )


def test_log_prefix_checks(tmp_path):
    preflight.check_log_prefix(str(tmp_path / "w"))
    with pytest.raises(PreflightError, match="does not exist"):
        preflight.check_log_prefix(str(tmp_path / "missing" / "w"))
    with pytest.raises(PreflightError, match="names a directory"):
        preflight.check_log_prefix(str(tmp_path) + "/")
    with pytest.raises(PreflightError, match="cannot create files"):
        preflight.check_log_prefix("/proc/qzn-watch")
    assert os.listdir(tmp_path) == []


def test_no_such_pid():
    pid = 4 * 1024 * 1024 - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    with pytest.raises(PreflightError, match=f"no process with PID {pid}"):
        preflight.read_target(pid)


def test_read_target_of_ourselves():
    target = preflight.read_target(os.getpid())
    assert target.maps and target.exe_readable and target.start_time
    preflight.check_target(target)
