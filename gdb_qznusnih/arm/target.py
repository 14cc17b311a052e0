"""Facts about the process being watched: the address to watch, its threads,
and the debug registers left.  Needs gdb; raises WatchError with one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from typing import NamedTuple

import gdb

from gdb_qznusnih import address_expression
from gdb_qznusnih.classify import kernel_layout
from gdb_qznusnih.launcher import procfs
from gdb_qznusnih.options import one_line

DEBUG_REGISTERS = 4
_WATCH_TYPES = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
_HARDWARE_KINDS = (
    gdb.BP_HARDWARE_WATCHPOINT,
    gdb.BP_READ_WATCHPOINT,
    gdb.BP_ACCESS_WATCHPOINT,
    getattr(gdb, "BP_HARDWARE_BREAKPOINT", -1),
)


class WatchError(Exception):
    """A problem arming or running a watch; the message is one line saying what to do."""


def require_live_process() -> gdb.Inferior:
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        raise WatchError(
            "no process to watch; start one with 'run' or 'start', or attach with 'attach PID'"
        )
    return inferior


# Signals whose default action is a job-control stop.
JOB_CONTROL_STOPS = ("SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU")


def in_job_control_stop() -> bool:
    """Whether the selected thread of a native process sits in a job-control stop.

    ptrace(2): PTRACE_GETSIGINFO fails for a group-stop (SIGSTOP, Ctrl-Z, already taken),
    and only for it, so gdb cannot read `$_siginfo` then; a stop signal still on its way
    to the process has its siginfo.  Not for whole-system mode: QEMU has no siginfo.
    """
    try:
        int(gdb.parse_and_eval("$_siginfo")["si_signo"])
    except gdb.error:
        return True
    return False


def exit_signal() -> int | None:
    """The signal that killed the program that just ended ($_exitsignal), if one did."""
    try:
        value = gdb.parse_and_eval("$_exitsignal")
        return None if value.type.code == gdb.TYPE_CODE_VOID else int(value)
    except gdb.error:
        return None


def signal_name(number: int | None) -> str | None:
    """SIGSEGV for 11: a native target's signals are the host's."""
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def detach_keeping_job_control_stop(pid: int) -> None:
    """Detach from a process in a job-control stop so that it stays stopped.

    gdb 13's detach sends SIGCONT to each thread it stopped with a SIGSTOP it has not
    collected (linux-nat.c, detach_one_lwp); a multi-threaded process in a Ctrl-Z stop
    reports SIGTSTP instead, so it is resumed.  A SIGSTOP right after the detach stops it
    again; to a process still stopped it changes nothing.  A single thread is never sent one.
    """
    if is_remote():
        # On a board the pid is not ours to signal: gdbserver's detach leaves it as it is.
        gdb.execute("detach", to_string=True)
        return
    several_threads = len(procfs.thread_ids(pid)) > 1
    gdb.execute("detach", to_string=True)
    if several_threads:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass


def signal_pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits for the process: from the board's /proc through gdb when remote."""
    if not is_remote():
        return procfs.signal_pending(pid, signum)
    try:
        text = gdb.execute("info proc status", to_string=True)
    except gdb.error:
        return False
    return procfs.signal_pending_in(procfs.status_fields(text), signum)


def word_size() -> int:
    return gdb.lookup_type("void").pointer().sizeof


REMOTE_CONNECTIONS = ("remote", "extended-remote")
# Only QEMU's gdbstub answers it (with its single-step flags); gdbserver answers empty.
SYSTEM_STUB_PROBE = "qqemu.sstepbits"


def is_remote() -> bool:
    """True when gdb reaches the target through a remote stub (gdbserver, QEMU, ...)."""
    connection = getattr(gdb.selected_inferior(), "connection", None)
    return connection is not None and connection.type in REMOTE_CONNECTIONS


def is_whole_system(asked: bool = False) -> bool:
    """True when gdb drives a whole machine (QEMU's gdbstub), not one process.

    A remote stub is a machine when it answers QEMU's own query, or when the user says so
    (`--system`, for another system stub); gdbserver's process is watched as a process.
    """
    return is_remote() and (asked or bool(remote_packet(SYSTEM_STUB_PROBE)))


def remote_packet(packet: str) -> str:
    """The stub's reply to one packet, "" when it does not know it."""
    connection = gdb.selected_inferior().connection
    if hasattr(connection, "send_packet"):  # gdb 13's RemoteTargetConnection
        try:
            reply = connection.send_packet(packet)
        except gdb.error:
            return ""
        if isinstance(reply, bytes):
            return reply.decode("ascii", "replace")
        return reply or ""
    try:  # older gdbs: `received: "REPLY"` on the line after `sending: ...`
        text = gdb.execute(f"maint packet {packet}", to_string=True)
    except gdb.error:
        return ""
    match = re.search(r'received: "(.*)"', text)
    return match.group(1) if match else ""


class Address(NamedTuple):
    """Where ADDR points, and how big the object there is (None: not known, e.g. an int)."""

    value: int
    object_size: int | None


def evaluate_address(expression: str) -> Address:
    """The address an expression gives: a pointer, an integer, or an lvalue's address.

    The expression may only read: assignments are refused before gdb sees them, and gdb
    evaluates it unable to call the target's functions or write its memory.
    """
    try:
        address_expression.check_read_only(expression)
    except address_expression.ExpressionError as error:
        raise WatchError(str(error)) from None
    shown = address_expression.shown(expression)
    with _read_only_evaluation():
        try:
            value = gdb.parse_and_eval(expression)
            return _address_of(value, expression, shown)
        except gdb.error as error:
            raise WatchError(f"cannot evaluate {shown}: {_explained(error)}") from None


def _address_of(value: gdb.Value, expression: str, shown: str) -> Address:
    value_type = value.type.strip_typedefs()
    mask = (1 << (8 * word_size())) - 1
    if value_type.code == gdb.TYPE_CODE_PTR:
        pointee = value_type.target().strip_typedefs()
        sized = pointee.code not in (gdb.TYPE_CODE_VOID, gdb.TYPE_CODE_FUNC)
        return Address(int(value) & mask, pointee.sizeof if sized else None)
    # An integer can hold an address, but a narrower variable cannot (and is not read).
    if value_type.code == gdb.TYPE_CODE_INT and (
        value.address is None or value_type.sizeof >= word_size()
    ):
        return Address(int(value) & mask, None)
    hint = (
        address_expression.shown("&" + expression)
        if value.address is not None
        else "a pointer or an integer"
    )
    raise WatchError(f"{shown} is a {value.type} value, not an address; did you mean {hint}?")


# gdb's guards for evaluating ADDR.  may-write-registers has none we can use: gdb refuses
# to change it while a process runs; address_expression refuses assignments instead.
_READ_ONLY_SETTINGS = ("may-call-functions", "may-write-memory")


@contextlib.contextmanager
def _read_only_evaluation():
    """Turn gdb's function-call and memory-write permissions off, then restore the user's."""
    saved = {name: gdb.parameter(name) for name in _READ_ONLY_SETTINGS}
    try:
        for name in _READ_ONLY_SETTINGS:
            gdb.execute(f"set {name} off", to_string=True)
        yield
    finally:
        for name, enabled in saved.items():
            gdb.execute(f"set {name} {'on' if enabled else 'off'}", to_string=True)


def _explained(error: gdb.error) -> str:
    """gdb's message, saying why when one of our guards refused."""
    text = one_line(error)
    if "may-call-functions is off" in text:
        return "it would call a function in the target; ADDR must only read the target"
    if text.startswith("Writing to memory is not allowed"):
        return "it would write the target's memory; ADDR must only read the target"
    return text


def check_address(address: int, length: int, whole_system: bool) -> None:
    """Refuse misaligned, kernel and unmapped addresses."""
    if address % length:
        raise WatchError(
            f"address {address:#x} is not aligned to --len {length}; "
            f"use {address - address % length:#x} or a smaller --len"
        )
    if not whole_system and address >= kernel_layout.user_limit(word_size()):
        raise WatchError(
            f"{address:#x} is a kernel address; a process watch sees user memory only "
            "(for the kernel's side use scripts/run_qemu_gdb.sh)"
        )
    try:
        gdb.selected_inferior().read_memory(address, length)
    except gdb.MemoryError:
        raise WatchError(
            f"address {address:#x} is not mapped in the target; pick one from 'info proc mappings'"
        ) from None


def function_block(pc: int):
    """The gdb.Block of the function holding pc, from debug info; None without it."""
    try:
        return enclosing_function(gdb.current_progspace().block_for_pc(pc))
    except RuntimeError:
        return None


def outer_function_start(pc: int) -> int | None:
    """Start of the (not inlined) function holding pc, from debug info; None without it."""
    block = function_block(pc)
    while block is not None and is_inlined(block):
        block = enclosing_function(block.superblock)
    return block.start if block is not None else None


def is_inlined(block) -> bool:
    """An inlined function's block: it has a function and sits inside another function."""
    outer = block.superblock
    return block.function is not None and outer is not None and not outer.is_static


def enclosing_function(block):
    """The innermost function's block (an inlined one's too) holding `block`, or None."""
    while block is not None and block.function is None:
        block = block.superblock
    return block


def source_location(sal: gdb.Symtab_and_line) -> tuple[str | None, int | None]:
    """(file, line) of a symtab-and-line, each None where gdb knows none."""
    symtab = sal.symtab
    if symtab is None:
        return None, None
    return symtab.filename, sal.line or None


_SYMBOL_IN_ADDRESS = re.compile(r"<([^+>]+)(?:\+(\d+))?>")


def symbol_at(pc: int) -> tuple[str, int] | None:
    """(symbol, offset of pc in it) from any symbols gdb has, minimal ones included."""
    # gdb 13 has no Python API for minimal symbols by pc; format_address names them.
    match = _SYMBOL_IN_ADDRESS.search(gdb.format_address(pc))
    return (match.group(1), int(match.group(2) or 0)) if match else None


def function_name(pc: int) -> str | None:
    """The function at pc: from debug info, else from the minimal symbols."""
    block = function_block(pc)
    if block is not None:
        return block.function.print_name
    symbol = symbol_at(pc)
    return symbol[0] if symbol else None


def register(name: str, word: int = 8) -> int:
    """A register of the selected (newest) frame, without making a gdb.Frame: its frame id
    would cost an unwind step (0.3 ms a hit with a vmlinux loaded).

    Unsigned at the word size: gdb gives pointer registers as signed numbers.
    """
    return int(gdb.parse_and_eval("$" + name)) & ((1 << (8 * word)) - 1)


def read_value(address: int, length: int) -> int:
    return int.from_bytes(gdb.selected_inferior().read_memory(address, length), "little")


def watch_spec(address: int, length: int) -> str:
    return f"*({_WATCH_TYPES[length]} *) {address:#x}"


def registers_needed(address: int, length: int) -> int:
    """Debug registers one aligned watch takes: 8 bytes need two on i386."""
    return 1 if length <= word_size() else length // word_size()


def user_hardware_slots_in_use() -> int:
    """Debug registers taken by the user's own hardware breakpoints and watchpoints.

    Internal breakpoints (ours) have negative numbers and are counted by the caller.
    """
    return sum(
        1 for bp in gdb.breakpoints() if bp.number > 0 and bp.enabled and bp.type in _HARDWARE_KINDS
    )


def current_thread_ids() -> tuple[int, int]:
    """(pid, tid) of the thread that hit."""
    pid, lwp, _ = gdb.selected_thread().ptid
    return pid, lwp or pid


class _Nudge(gdb.Breakpoint):
    def stop(self) -> bool:
        return False


def refresh_debug_registers(address: int) -> None:
    """Make gdb write the debug registers again after an exec.

    gdb 13 keeps its mirror of the debug registers across exec, although the
    kernel cleared them; a new watch equal to the old one then looks
    "unchanged" and is never written.  A short-lived second watch changes
    the mirror, so all registers are written at the next resume.
    """
    nudge = _Nudge(watch_spec(address ^ 0x40, 1), gdb.BP_WATCHPOINT, gdb.WP_ACCESS, internal=True)
    try:
        gdb.execute("stepi", to_string=True)
    finally:
        nudge.delete()
