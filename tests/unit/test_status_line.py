"""The live status line: counts, rate, and in-place redraws on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select

from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.sinks.status_line import StatusLine
from tests.records import make_record


def read_all(fd: int) -> bytes:
    """Everything written to the pty so far: one read may return only part of it."""
    data = b""
    while select.select([fd], [], [], 0.5)[0]:
        data += os.read(fd, 4096)
    return data


def test_counts_and_text():
    status = StatusLine(fd=1, enabled=False)
    for kind in ("read", "write", "write"):
        status.update(make_record(kind=kind))
    assert (status.reads, status.writes) == (1, 2)
    text = status.text(make_record(kind="write"), 1930.4)
    assert text == "reads 1  writes 2  1,930 hits/s  last: WRITE in round_once()"


def test_nothing_is_printed_when_not_a_terminal(tmp_path):
    path = tmp_path / "err"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        status = StatusLine(fd=fd, interval=0.0)
        status.update(make_record(kind="read"))
        status.clear()
    finally:
        os.close(fd)
    assert not status.enabled
    assert path.read_bytes() == b""


def test_redraws_in_place_on_a_terminal_and_clears_before_blocks():
    master, slave = pty.openpty()
    out_r, out_w = os.pipe()
    try:
        status = StatusLine(fd=slave, interval=0.0)
        assert status.enabled
        status.update(make_record(kind="write"))
        status.update(make_record(kind="read", frames=(Frame(0, 0x10, "check", "a.c", 3),)))
        status.terminal_writer(out_w)("[1:3] READ ...\n")
        shown = read_all(master)
        assert shown.count(b"\r\x1b[K") == 3  # two draws, one clear
        assert b"last: READ in check()" in shown
        assert os.read(out_r, 100) == b"[1:3] READ ...\n"
        assert not status.visible
    finally:
        for fd in (master, slave, out_r, out_w):
            os.close(fd)
