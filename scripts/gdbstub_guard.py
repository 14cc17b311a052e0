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
import socket
import sys
import threading

CHUNK = 65536


def fileio_request_at(previous_tail: bytes, chunk: bytes) -> bool:
    """True when a stub-to-gdb packet in this chunk is a File-I/O request.

    `$` starts every packet (inside one it is always escaped), so `$F` is one, even
    split across two reads: `previous_tail` is the last byte of the read before.
    """
    return b"$F" in previous_tail + chunk


def copy_to_stub(stub: socket.socket) -> None:
    """gdb's packets, acks and interrupts, as they are."""
    while True:
        data = os.read(0, CHUNK)
        if not data:
            os._exit(0)
        stub.sendall(data)


def copy_to_gdb(stub: socket.socket) -> None:
    tail = b""
    while True:
        data = stub.recv(CHUNK)
        if not data:
            os._exit(0)
        if fileio_request_at(tail, data):
            print(
                "gdbstub_guard: the gdbstub asked gdb for host File-I/O (open/write a file);"
                " QEMU never does: refused and disconnected",
                file=sys.stderr,
                flush=True,
            )
            os._exit(1)
        tail = data[-1:]
        while data:
            data = data[os.write(1, data) :]


def main() -> None:
    stub = socket.socket(socket.AF_UNIX)
    try:
        stub.connect(sys.argv[1])
    except OSError as error:
        print(f"gdbstub_guard: cannot reach {sys.argv[1]}: {error.strerror}", file=sys.stderr)
        sys.exit(1)
    threading.Thread(target=copy_to_stub, args=(stub,), daemon=True).start()
    copy_to_gdb(stub)


if __name__ == "__main__":
    main()
