"""A one-line live status on a terminal's stderr, redrawn in place.  Pure: no gdb.

`reads 1,204  writes 877  1,930 hits/s  last: WRITE in parse_header()`

It redraws at most every `interval` seconds, so a busy watch pays a clock
read per record, and clears itself before anything else is printed.
"""

from __future__ import annotations

import os
import time

from gdb_qznusnih.record.access import Record
from gdb_qznusnih.record.summary import AccessCounts
from gdb_qznusnih.sinks.logs import write_all

# The launcher pipes gdb's stderr, so it passes its terminal as this fd instead.
STATUS_FD_ENV = "QZNUSNIH_STATUS_FD"


def status_fd(environ) -> int:
    """The fd for the status line: the launcher's terminal, else stderr."""
    try:
        return int(environ.get(STATUS_FD_ENV, "2"))
    except ValueError:
        return 2


class StatusLine(AccessCounts):
    """Live counts on `fd` (stderr); does nothing unless `fd` is a terminal."""

    def __init__(self, fd: int = 2, interval: float = 0.25, enabled: bool | None = None) -> None:
        super().__init__()
        self.fd = fd
        self.interval = interval
        self.enabled = _is_terminal(fd) if enabled is None else enabled
        self.visible = False
        self._last_draw = 0.0
        self._hits_at_draw = 0

    def update(self, record: Record) -> None:
        """Count one record; redraw when the interval has passed."""
        self.count(record.kind)
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self.draw(record, now)

    def draw(self, record: Record | None, now: float) -> None:
        hits = self.total
        elapsed = now - self._last_draw if self._last_draw else 0.0
        rate = (hits - self._hits_at_draw) / elapsed if elapsed > 0 else 0.0
        self._last_draw, self._hits_at_draw = now, hits
        write_all(self.fd, ("\r\x1b[K" + self.text(record, rate)).encode("utf-8", "replace"))
        self.visible = True

    def text(self, record: Record | None, rate: float) -> str:
        line = f"reads {self.reads:,}  writes {self.writes:,}  {rate:,.0f} hits/s"
        if record is not None:
            where = record.frames[0].func if record.frames and record.frames[0].func else "??"
            line += f"  last: {record.kind.upper()} in {where}()"
        return line

    def clear(self) -> None:
        """Erase the line before other output goes to the terminal."""
        if self.visible:
            write_all(self.fd, b"\r\x1b[K")
            self.visible = False

    def terminal_writer(self, out_fd: int = 1):
        """A LogSinks writer that clears the status line before each block."""

        def write(text: str) -> None:
            self.clear()
            write_all(out_fd, text.encode("utf-8", "replace"))

        return write


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
