"""gdb's end of the line to QEMU's gdbstub, with remote File-I/O turned off.

Usage (run by qemu_gdb_flow.py): target remote | exec /usr/bin/python3 -I gdbstub_guard.py SOCKET

gdb serves a stub's File-I/O requests (`$Fopen,...`, `$Fwrite,...`: open and write host
files as gdb's user, root here) and has no setting to refuse them; only `system` can be
turned off.  QEMU's x86 gdbstub never sends one, so a stub that does is not the QEMU we
started: this relay hangs up on it before gdb sees the packet.  It copies everything
else unchanged both ways.  (gdb sends no vFile packets here, so no reply starts with F.)
"""

from __future__ import annotations

import os
import select
import socket
import sys

CHUNK = 65536


def fileio_request_at(previous_tail: bytes, chunk: bytes) -> bool:
    """True when a stub-to-gdb packet in this chunk is a File-I/O request.

    `$` starts every packet (inside one it is always escaped), so `$F` is one, even
    split across two reads: `previous_tail` is the last byte of the read before.
    """
    return b"$F" in previous_tail + chunk


def refuse_fileio() -> None:
    print(
        "gdbstub_guard: the gdbstub asked gdb for host File-I/O (open/write a file);"
        " QEMU never does: refused and disconnected",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def relay(stub: int) -> None:
    """One thread, raw descriptors: each hop costs gdb's round trips as little as can be."""
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(stub, select.POLLIN)
    tail = b""
    while True:
        for fd, _ in poller.poll():
            data = os.read(fd, CHUNK)
            if not data:
                os._exit(0)  # gdb or the stub hung up
            if fd == 0:
                write_all(stub, data)
                continue
            if fileio_request_at(tail, data):
                refuse_fileio()
            tail = data[-1:]
            write_all(1, data)


def main() -> None:
    stub = socket.socket(socket.AF_UNIX)
    try:
        stub.connect(sys.argv[1])
    except OSError as error:
        print(f"gdbstub_guard: cannot reach {sys.argv[1]}: {error.strerror}", file=sys.stderr)
        sys.exit(1)
    relay(stub.fileno())


if __name__ == "__main__":
    main()
