"""Where records go: the terminal stream, PREFIX.reads.log / PREFIX.writes.log, PREFIX.jsonl.

Pure: no gdb.  Every record is written with one `os.write` per file, unbuffered, so each
record on disk is whole as soon as `emit` returns, even if gdb is killed right after.  After
`hold()` (the perf engine, whose hits come in batches), `emit` only keeps the texts and
`flush()` writes the batch, one `os.write` per file: a record is logged once flushed.
"""

from __future__ import annotations

import os

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.record.access import (
    READ,
    WRITE,
    LostAccesses,
    Record,
    SecondStamp,
    split_seconds,
)
from gdb_qznusnih.sinks.colour import Colorizer
from gdb_qznusnih.sinks.formats import BlockRenderer, JsonLine, lost_line, lost_text
from gdb_qznusnih.sinks.private_files import one_line_error, open_private
from gdb_qznusnih.sinks.render import HMS


class SinkError(Exception):
    """A log cannot be opened or written; the message is one line that says what to do."""


_SUFFIXES = {"json": ".jsonl", READ: ".reads.log", WRITE: ".writes.log"}


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, retrying short writes; raises OSError."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _LogFile:
    """One log file, opened safely (see private_files); remembers its size to undo a record."""

    __slots__ = ("fd", "path", "size")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = open_private(path)
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append `data` whole: one syscall unless the kernel takes only part of it."""
        written = os.write(self.fd, data)
        if written != len(data):
            write_all(self.fd, data[written:])
        self.size += len(data)

    def cut(self, size: int) -> bool:
        """Cut the file back to `size` bytes, e.g. a record written in part; False if not."""
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            return False
        self.size = size
        return True

    def close(self) -> None:
        os.close(self.fd)


class _AppendError(Exception):
    """A record could not be appended to `path`; `cut_short`: files left holding part of it."""

    def __init__(self, path: str, error: OSError, cut_short: list[str]) -> None:
        super().__init__(path)
        self.path, self.error, self.cut_short = path, error, cut_short

    def describe(self, seq: int) -> str:
        """One line: what failed, whether the logs still agree, what to do."""
        if self.cut_short:
            state = f"{' and '.join(self.cut_short)} end with part of record {seq}"
        else:
            state = f"every log ends with record {seq - 1}"
        return (
            f"cannot write {self.path}: {_reason(self.error)}; logging stopped and {state}; "
            "free some space or choose another --log prefix"
        )

    def describe_loss(self) -> str:
        """One line for a loss line that could not be written."""
        state = (
            "" if not self.cut_short else f" and {' and '.join(self.cut_short)} end with part of it"
        )
        return (
            f"cannot write {self.path}: {_reason(self.error)}; logging stopped{state}; "
            "free some space or choose another --log prefix"
        )


class _Held:
    """Texts of records emitted since the last flush, per file, in order."""

    __slots__ = ("first_seq", "files", "terminal")

    def __init__(self) -> None:
        self.first_seq: int | None = None
        self.files: dict[_LogFile, list[bytes]] = {}
        self.terminal: list[bytes] = []


class LogSinks:
    """Sends each Record to the terminal (unless quiet) and, with a prefix, to three files.

    - `color`: colour the terminal stream (already resolved, see colour.resolve_color);
    - `color_files`: ANSI colour in the text logs too (only with `--color always`);
    - `style`: pygments style name, or None for the default 16-colour scheme;
    - `writer`: a callable taking the terminal text; the default, faster, writes the
      block's bytes to fd 1 with os.write;
    - `colorizer`: a ready Colorizer to share (else one is made when colour is wanted);
    - `caches`: the watch's CacheRegistry, for the text and JSON cached per call path.
    Raises SinkError (one line) when a log cannot be opened or written.
    """

    def __init__(
        self,
        prefix: str | None = None,
        color: bool = False,
        color_files: bool = False,
        style: str | None = None,
        quiet: bool = False,
        show_args: bool = False,
        writer=None,
        colorizer: Colorizer | None = None,
        caches: CacheRegistry | None = None,
    ) -> None:
        self.prefix = prefix
        self.quiet = quiet
        self._writer = writer
        wants_color = color or (color_files and prefix is not None)
        if wants_color and colorizer is None:
            colorizer = Colorizer(style)  # ValueError on an unknown style
        shared = colorizer if wants_color else None
        self.colorizer = shared if color else None
        caches = caches if caches is not None else CacheRegistry()
        plain = BlockRenderer(show_args=show_args, caches=caches)
        colored = BlockRenderer(shared, show_args, caches) if shared is not None else plain
        self._terminal_renderer = colored if color else plain
        self._file_renderer = colored if (color_files and shared is not None) else plain
        self._json = JsonLine(caches)
        self._hms = SecondStamp(HMS)
        self._files: dict[str, _LogFile] = {}
        self._failed: str | None = None
        self._held: _Held | None = None  # after hold(): what flush() will write

    @property
    def paths(self) -> list[str]:
        """The log files, for status output; [] without a prefix."""
        if self.prefix is None:
            return []
        return [self.prefix + _SUFFIXES[k] for k in ("json", READ, WRITE)]

    def open(self) -> None:
        """Create (empty) the three log files, 0600; SinkError when one cannot be safely."""
        if self.prefix is None or self._files:
            return
        for key, path in zip(("json", READ, WRITE), self.paths):
            try:
                self._files[key] = _LogFile(path)
            except OSError as error:
                self._close_files()
                raise SinkError(one_line_error(path, error, "--log prefix")) from None

    def emit(self, record: Record) -> None:
        """Log one record: the JSON line, the block in its kind's log, the terminal block
        (after hold(): keep them for flush())."""
        if self._failed is not None:
            raise SinkError(self._failed)
        json_line, file_block, terminal_block = self._texts(record)
        kind_log = self._files.get(record.kind)
        held = self._held
        if held is not None:
            if held.first_seq is None:
                held.first_seq = record.seq
            if self._files:
                held.files.setdefault(self._files["json"], []).append(json_line)
                if kind_log is not None:
                    held.files.setdefault(kind_log, []).append(file_block)
            if not self.quiet:
                held.terminal.append(terminal_block)
            return
        parts = []
        if self._files:
            parts.append((self._files["json"], json_line))
            if kind_log is not None:
                parts.append((kind_log, file_block))
        self._write(parts, terminal_block, record.seq)

    def hold(self) -> None:
        """From now on emit() keeps the texts and flush() writes them."""
        if self._held is None:
            self._held = _Held()

    def flush(self) -> None:
        """Write the records emitted since the last flush: all of them to every file, or
        (cut back) none; SinkError (one line) when a file cannot be written."""
        held = self._held
        if held is None or held.first_seq is None:
            return
        self._held = _Held()
        parts = [(log, b"".join(texts)) for log, texts in held.files.items()]
        self._write(parts, b"".join(held.terminal), held.first_seq)

    def _write(self, parts: list[tuple[_LogFile, bytes]], terminal: bytes, seq: int) -> None:
        """`parts` to the files, then `terminal` to the terminal; `seq`: the first record."""
        if self._failed is not None:
            raise SinkError(self._failed)
        if parts:
            self._append_whole(parts, lambda failure: failure.describe(seq))
        if not self.quiet and terminal:
            self._to_terminal(terminal)

    def _append_whole(self, parts: list[tuple[_LogFile, bytes]], describe) -> None:
        """Append to every file or (cut back) to none; SinkError with `describe(failure)`."""
        try:
            try:
                self._append(parts)
            except KeyboardInterrupt:
                # A stop signal between the writes: put the lines in every file, then stop.
                self._append(parts)
                raise
        except _AppendError as failure:
            self._failed = describe(failure)
            raise SinkError(self._failed) from None

    def _to_terminal(self, data: bytes) -> None:
        if self._writer is None:
            try:
                write_all(1, data)
            except OSError as error:
                raise SinkError(f"cannot write to standard output: {_reason(error)}") from None
        else:
            self._writer(data.decode())

    def lost(self, mark: LostAccesses) -> None:
        """Say where accesses were not logged: the loss line in the JSONL, the marker in both
        text logs and on the terminal (unless quiet); the records held before it first."""
        self.flush()
        if self._failed is not None:
            raise SinkError(self._failed)
        marker = lost_text(mark).encode()
        if self._files:
            parts = [(self._files["json"], lost_line(mark).encode())]
            parts += [(self._files[kind], marker) for kind in (READ, WRITE)]
            self._append_whole(parts, _AppendError.describe_loss)
        if not self.quiet:
            self._to_terminal(marker)

    @staticmethod
    def _append(parts: list[tuple[_LogFile, bytes]]) -> None:
        """Append each part to its file: to all of them, or (cut back) to none.

        Raises _AppendError on an OSError, and passes a KeyboardInterrupt on, each after
        cutting the files back to where they were before this record.
        """
        sizes = [log.size for log, _ in parts]
        log = parts[0][0]
        try:
            for log, data in parts:
                log.write(data)
        except BaseException as error:
            cut_short = [part.path for (part, _), size in zip(parts, sizes) if not part.cut(size)]
            if isinstance(error, OSError):
                raise _AppendError(log.path, error, cut_short) from None
            raise

    def _texts(self, record: Record) -> tuple[bytes, bytes, bytes]:
        """(JSON line, block for the kind's log, block for the terminal) as UTF-8 (see formats)."""
        seconds = split_seconds(record.time)
        hms = self._hms.text(seconds[0])
        files, terminal = self._file_renderer, self._terminal_renderer
        file_block = files.header(record, hms, seconds).encode() + files.body(record)
        terminal_block = file_block
        if terminal is not files:
            terminal_block = terminal.header(record, hms, seconds).encode() + terminal.body(record)
        return self._json.encode(record).encode(), file_block, terminal_block

    def _close_files(self) -> None:
        files, self._files = self._files, {}
        for log in files.values():
            try:
                log.close()
            except OSError:
                pass

    def close(self) -> None:
        """Close the logs (idempotent)."""
        self._close_files()
