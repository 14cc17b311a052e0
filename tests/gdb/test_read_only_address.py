"""qzn-watch ADDR only reads: a rejected ADDR writes nothing, calls nothing, runs nothing."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import WITH_GDB_ENGINE, quiet_env
from tests.gdb.idle_target import IdleTarget, assert_memory_unchanged

pytestmark = pytest.mark.gdb


@pytest.fixture
def idle(build_c):
    started: list[IdleTarget] = []

    def start() -> IdleTarget:
        target = IdleTarget(build_c("idle"))
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()


def gdb_quote(text: str) -> str:
    """One argument for gdb.string_to_argv."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def attached_gdb(pid: int, *commands: str) -> subprocess.CompletedProcess:
    cmd = ["gdb", "-nx", "-batch", "-p", str(pid), *WITH_GDB_ENGINE]
    for command in commands:
        cmd += ["-ex", command]
    # A UTF-8 locale: under LC_ALL=C gdb itself cannot hand non-ASCII arguments to Python.
    env = quiet_env(LC_ALL="C.UTF-8")
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL
    )


def qzn_watch(expression: str) -> str:
    return "qzn-watch --quiet --duration 0.2 -- " + gdb_quote(expression)


def the_error(done, fragment: str) -> str:
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if fragment in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


REJECTED = [
    ("buf[0]=65", "assigns with '='"),
    ("buf[0]++", "assigns with '++'"),
    ("--buf[1]", "assigns with '--'"),
    ("buf[0] <<= 1", "assigns with '<<='"),
    ("$rax=1", "assigns with '='"),
    ("$pc = 0", "assigns with '='"),
    ("$_siginfo.si_signo = 3", "assigns with '='"),
    ("$fresh = &buf[0]", "assigns with '='"),
    ("malloc(16)", "would call a function in the target"),
    ('(char *)"abc"', "would call a function in the target"),  # gdb mallocs string literals
]


@pytest.mark.parametrize("expression, message", REJECTED)
def test_rejected_address_leaves_the_target_byte_for_byte_unchanged(idle, expression, message):
    target = idle()
    before = target.writable_memory()
    done = attached_gdb(target.pid, qzn_watch(expression))
    assert target.alive() and target.tracer_pid() == 0
    assert_memory_unchanged(before, target.writable_memory())
    assert done.returncode == 1
    the_error(done, message)


@pytest.mark.parametrize(
    "expression, message",
    [
        ('system("touch {marker}")', "would call a function in the target"),
        ('$_shell("touch {marker}")', "calls $_shell()"),
    ],
)
def test_rejected_address_runs_nothing(idle, tmp_path, expression, message):
    target = idle()
    marker = tmp_path / "ran"
    before = target.writable_memory()
    done = attached_gdb(target.pid, qzn_watch(expression.format(marker=marker)))
    assert not marker.exists(), "the command in ADDR ran"
    assert target.alive()
    assert_memory_unchanged(before, target.writable_memory())
    the_error(done, message)


GENERAL_REGISTERS = "rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip".split()


def test_rejected_register_assignment_leaves_the_registers(idle):
    target = idle()
    done = attached_gdb(target.pid, "info registers", qzn_watch("$rax=1"), "info registers")
    registers = re.findall(r"^([a-z0-9_]+) +(0x[0-9a-f]+)", done.stdout, re.MULTILINE)
    half = len(registers) // 2
    assert [name for name, _ in registers[: len(GENERAL_REGISTERS)]] == GENERAL_REGISTERS
    assert registers[:half] == registers[half:], done.stdout  # both listings, unchanged
    the_error(done, "assigns with '='")


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("&buf[3]", "(unsigned long)&buf[3]"),
        ("{hex_buf}", "(unsigned long)buf"),
        ("&s.field", "(unsigned long)&s.field"),
        ("(char*)p+1", "(unsigned long)(p+1)"),
        ("$rsp+8", "(unsigned long)$rsp+8"),
        ("buf[0] == 104 ? &buf[2] : &buf[4]", "(unsigned long)&buf[2]"),
    ],
)
def test_reading_expressions_still_work(idle, expression, expected):
    target = idle()
    before = target.writable_memory()
    expression = expression.format(hex_buf=hex(target.buf))
    done = attached_gdb(target.pid, f'printf "want %#lx\\n", {expected}', qzn_watch(expression))
    assert done.returncode == 0, done.stderr
    want = re.search(r"want (0x[0-9a-f]+)", done.stdout).group(1)
    assert f"1 byte at {want} ({expression}) in process {target.pid}" in done.stderr
    assert_memory_unchanged(before, target.writable_memory())


@pytest.mark.parametrize("setting", ["on", "off"])
@pytest.mark.parametrize("expression", ["malloc(16)", "&buf[0]"])
def test_the_users_permissions_are_restored_exactly(idle, setting, expression):
    target = idle()
    done = attached_gdb(
        target.pid,
        f"set may-call-functions {setting}",
        f"set may-write-memory {setting}",
        qzn_watch(expression),
        "show may-call-functions",
        "show may-write-memory",
    )
    assert "Traceback" not in done.stderr
    assert f"Permission to call functions in the program is {setting}." in done.stdout
    assert f"Permission to write into target memory is {setting}." in done.stdout


@pytest.mark.parametrize(
    "expression, message",
    [
        ("é", 'No symbol "é" in current context'),
        ("&buf[0] + ñ", 'No symbol "ñ" in current context'),
        ("&buf\u202e[0]", "unprintable character U+202E"),
        ("&buf[0]\u2028+1", "unprintable character U+2028"),
        ("1+" * 50_000 + "1", "is 100,001 characters long"),
        ("9" * 999, "Numeric constant too large"),
        ("(" * 499 + "0x10" + ")" * 497, "syntax error"),
        ("&buf[0]+1e308*1e308", "not a number"),
    ],
)
def test_unicode_or_huge_address_is_one_line(idle, expression, message):
    target = idle()
    before = target.writable_memory()
    done = attached_gdb(target.pid, qzn_watch(expression))
    assert done.returncode == 1
    error = the_error(done, message)
    assert len(error) < 300, error
    assert target.alive() and target.tracer_pid() == 0
    assert_memory_unchanged(before, target.writable_memory())
