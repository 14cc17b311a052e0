"""A watch on a stack slot ends when the frame that holds it returns, as gdb's own `watch` of
a local does: after that the bytes are the next call's.  Needs gdb.

Frame N holds the bytes from its $sp up to its caller's $sp (its CFA, the return address
included); the innermost frame also holds the 128-byte red zone below $sp, where a leaf
function keeps its locals without moving $sp (x86-64 SysV ABI).
"""

from __future__ import annotations

import gdb

RED_ZONE = {8: 128, 4: 0}
MAX_FRAMES = 256  # deeper than that, the watch just has no scope


class FrameOwner:
    """The frame holding the watched bytes, and its function's name."""

    def __init__(self, frame: gdb.Frame) -> None:
        self.frame = frame
        self.function = frame.name() or f"{frame.pc():#x}"
        # False for ADDR given as a number (a return-address slot, say): the address itself is
        # what is watched, through every frame that comes to hold it.
        self.scoped = True

    def describe(self) -> str:
        return f"a stack slot of {self.function}(): the watch ends when it returns"

    def kept(self) -> str:
        return f"a stack slot of {self.function}(); ADDR is a number: watched after it returns too"

    def unscoped(self) -> str:
        return (
            f"a stack slot of {self.function}(), whose return gdb cannot catch: accesses after "
            "it are another call's"
        )


def frame_holding(address: int, length: int, word: int) -> FrameOwner | None:
    """The frame of the selected thread whose stack holds [address, address + length)."""
    try:
        frame = gdb.newest_frame()
        low = _sp(frame) - RED_ZONE.get(word, 0)
        for _ in range(MAX_FRAMES):
            caller = frame.older()
            if caller is None:
                return None
            high = _sp(caller)
            if low <= address and address + length <= high:
                return FrameOwner(frame)
            frame, low = caller, high
    except gdb.error:
        return None
    return None


def _sp(frame: gdb.Frame) -> int:
    return int(frame.read_register("sp")) & ((1 << 64) - 1)


class ScopeEnd(gdb.FinishBreakpoint):
    """Ends the session when the owning frame returns, or is left by a longjmp/exception."""

    def __init__(self, session, owner: FrameOwner) -> None:
        super().__init__(owner.frame, internal=True)
        self.silent = True
        self.session = session
        self.owner = owner
        self.fired = False  # the frame returned or was left: the watch ended here

    def stop(self) -> bool:
        self.fired = True
        self.session.finish(f"{self.owner.function}() returned: its stack slot is gone")
        return True  # a batch watch's `continue` returns and ends it there

    def out_of_scope(self) -> None:
        self.fired = True
        self.session.finish(f"{self.owner.function}() was left: its stack slot is gone")


def end_with_frame(session, owner: FrameOwner | None):
    """A ScopeEnd for `owner`, or None (no frame, or gdb cannot set one there)."""
    if owner is None or not owner.scoped:
        return None
    try:
        return ScopeEnd(session, owner)
    except (ValueError, RuntimeError, gdb.error):
        return None
