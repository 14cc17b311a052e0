"""Split a PERF_SAMPLE_CALLCHAIN into its kernel and user parts.  Pure.

The kernel writes a callchain as context markers each followed by the pcs of that context,
innermost first: PERF_CONTEXT_KERNEL, the trap ip, the kernel's return addresses down to
the system call entry, then (unless exclude_callchain_user) PERF_CONTEXT_USER and the user
pcs.  Markers are the values at or above abi.CONTEXT_MAX.
"""

from __future__ import annotations

from collections.abc import Sequence

from gdb_qznusnih.perf import abi

_CONTEXTS = {abi.CONTEXT_KERNEL: "kernel", abi.CONTEXT_USER: "user"}


def split(entries: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """{"kernel": pcs, "user": pcs}, each innermost first.  The pcs of any other context
    (a hypervisor, a guest), or before the first marker, are dropped."""
    parts: dict[str, list[int]] = {"kernel": [], "user": []}
    current: list[int] | None = None
    for entry in entries:
        if entry >= abi.CONTEXT_MAX:
            context = _CONTEXTS.get(entry)
            current = parts[context] if context else None
        elif current is not None:
            current.append(entry)
    return {context: tuple(pcs) for context, pcs in parts.items()}


def kernel_pcs(entries: Sequence[int]) -> tuple[int, ...]:
    """The kernel part: the trap ip, then the kernel's return addresses."""
    return split(entries)["kernel"]
