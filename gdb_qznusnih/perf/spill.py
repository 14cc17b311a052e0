"""Where the drain thread puts what the consumer has no room for yet: a file with no name.

A consumer slower than the target (Python's records against the kernel's traps) falls
behind; the raw samples it has not parsed must go somewhere.  Kept in memory they grew the
launcher to gigabytes over 1,000,000 hits; left in the rings they are lost.  Past a memory
limit the drain thread writes them here instead, as perf record writes perf.data, and the
consumer reads each chunk back in its turn: memory stays flat and nothing is lost, only late.

The file is made with O_TMPFILE (tempfile.TemporaryFile): it has no name, so no other user
can open, replace or plant it, and the kernel frees its blocks when the descriptor closes,
whatever kills the launcher.  Its directory is $TMPDIR, else /var/tmp, which lives on disk
where /tmp may be memory (tmpfs); it may use a quarter of that file system's free space, at
most MAX_SPILL_BYTES.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass

MAX_SPILL_BYTES = 16 << 30
SPILL_SHARE_OF_FREE = 4  # a quarter of the free space: the machine keeps the rest
DEFAULT_SPILL_DIR = "/var/tmp"


@dataclass(frozen=True)
class Spilled:
    """A chunk of ring bytes waiting in the spill file."""

    offset: int
    length: int


def spill_dir() -> str:
    """$TMPDIR if set (the user's choice), else /var/tmp, else tempfile's default."""
    chosen = os.environ.get("TMPDIR")
    if chosen:
        return chosen
    return DEFAULT_SPILL_DIR if os.path.isdir(DEFAULT_SPILL_DIR) else tempfile.gettempdir()


def spill_budget(directory: str) -> int:
    """How many bytes a spill in `directory` may hold: a quarter of its free space, capped."""
    try:
        fs = os.statvfs(directory)
    except OSError:
        return 0
    return min(MAX_SPILL_BYTES, fs.f_bavail * fs.f_frsize // SPILL_SHARE_OF_FREE)


class SpillFile:
    """A FIFO of byte chunks in an unnamed file; `put` on the drain thread, `take` on the
    consumer's.  Each side counts its own bytes, so neither needs a lock: the writer starts
    the file over only once the reader has taken everything written, and the reader only
    once the writer has given up (then nothing writes any more)."""

    def __init__(self, directory: str, budget: int):
        self.directory, self.budget = directory, budget
        self._file = None
        self._end = 0  # where the next chunk goes (writer)
        self._written = 0  # bytes put, ever (writer)
        self._taken = 0  # bytes taken, ever (reader)
        self.peak = 0  # the most bytes that waited at once

    @property
    def waiting(self) -> int:
        return self._written - self._taken

    def has_room(self, length: int) -> bool:
        """Whether `length` more bytes fit in the budget.  The file starts over only once
        everything was taken, so what it holds on disk is its end, not what waits: a reader
        always a chunk behind would otherwise grow it past the budget."""
        end = self._end if self.waiting else 0
        return end + length <= self.budget

    def give_up(self) -> None:
        """Take no more chunks (a full disk); the reader gives the blocks back once it has
        taken the ones written."""
        self.budget = 0

    def put(self, spans: list[bytes | memoryview], length: int) -> Spilled:
        """Write the spans (`length` bytes in all) as one chunk at the end of the file;
        raises OSError (a full disk, no directory)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.directory, buffering=0)
        fd = self._file.fileno()
        if self.waiting == 0 and self._end:
            os.ftruncate(fd, 0)  # all read: give the blocks back
            self._end = 0
        spilled = Spilled(self._end, length)
        written = os.pwritev(fd, spans, self._end)
        while written < length:  # a short write: the rest, from where it stopped
            rest = b"".join(spans)[written:]
            more = os.pwrite(fd, rest, self._end + written)
            if more == 0:
                raise OSError(f"the spill file took {written} of {length} bytes")
            written += more
        self._end += length
        self._written += length
        self.peak = max(self.peak, self.waiting)
        return spilled

    def take(self, spilled: Spilled) -> bytes:
        fd = self._file.fileno()
        chunk = os.pread(fd, spilled.length, spilled.offset)
        if len(chunk) != spilled.length:  # cut short behind our back: never parse a part
            raise OSError(errno.EIO, f"{len(chunk)} of {spilled.length} bytes came back")
        self._taken += spilled.length
        if self.budget == 0 and self.waiting == 0:  # given up: no writer will start it over
            os.ftruncate(fd, 0)
        return chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
