"""The armed line of a watch and how a target ended, for both engines.  Pure: no gdb (the
launcher uses it too)."""

from __future__ import annotations

from gdb_qznusnih.counted import counted

_KINDS = {"rw": "reads and writes", "r": "reads", "w": "writes"}


def armed_text(
    number: int,
    access: str,
    length: int,
    address: int,
    expression: str,
    pid: int,
    details: list[str] = (),
    log_paths: list[str] = (),
) -> str:
    """`watch 1: reads and writes of 1 byte at 0x… (&x) in process 42; …; logs …`."""
    size = counted(length, "byte")
    text = f"watch {number}: {_KINDS[access]} of {size} at {address:#x} ({expression})"
    text += f" in process {pid}"
    for detail in details:
        text += f"; {detail}"
    if log_paths:
        text += "; logs " + ", ".join(log_paths)
    return text


def debug_registers_text(count: int) -> str:
    """What a watch takes of the 4 debug registers of a process: for the armed line and
    qzn-status."""
    return "takes " + counted(count, "debug register")


def larger_object_note(object_size: int, length: int) -> str:
    """ADDR points to more than --len bytes: say which part is watched."""
    size = counted(length, "byte")
    verb = "is" if length == 1 else "are"
    return (
        f"that object is {object_size} bytes, only its first {size} {verb} watched "
        "(use --len 2, 4 or 8, or the address of the part to watch)"
    )


def target_end_text(exit_code: int | None = None, signal_name: str | None = None) -> str:
    """How the target ended, in one wording for both engines."""
    if signal_name is not None:
        return f"target was killed by {signal_name}"
    if exit_code is None:
        return "target exited"
    return f"target exited with code {exit_code}"


KILLED_EXIT_BASE = 128


def killed_exit_status(signal_number: int) -> int:
    """The exit status when the target died of a signal: 128 + its number, as a shell gives
    for a child killed by it."""
    return KILLED_EXIT_BASE + signal_number
