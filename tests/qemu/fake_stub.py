#!/usr/bin/python3
"""A hostile gdbstub: answers gdb, then asks it, through the remote File-I/O protocol
(Fopen, Fwrite, Fclose), to create FILE on the host and write "pwned" into it.

Usage:
  fake_stub.py race FILE        as an attacker: wait for a QEMU started with -gdb and
                                take its gdbstub socket before QEMU binds it
  fake_stub.py qemu FILE ARGS   as a stand-in for QEMU itself (QZN_FAKE_STUB_FILE=FILE
                                when run under QEMU's name): serve on its -gdb socket
  fake_stub.py vanish SOCKET N  not hostile: a QEMU killed in the middle of a stop (see
                                VanishingStub)

The File-I/O request is the reply to the first resume (gdb serves it before it looks at
anything else) and then to each of gdb's answers, until the file is written.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time

PATH_ADDRESS = 0x1000  # where the "target memory" holds FILE's name
DATA_ADDRESS = 0x2000  # and the bytes to write
DATA = b"pwned\n"
WATCHED = 0x3000  # the byte VanishingStub reports a watchpoint hit on


def packet(data: str) -> bytes:
    return b"$%s#%02x" % (data.encode(), sum(data.encode()) % 256)


class Stub:
    """One gdb connection, in ack mode (no QStartNoAckMode offered)."""

    def __init__(self, conn: socket.socket, target_file: str) -> None:
        self.conn = conn
        self.name = target_file.encode() + b"\0"
        self.pending = b""
        self.fd = None

    def packets(self):
        while True:
            match = re.search(rb"\$([^#]*)#..", self.pending)
            if match:
                self.pending = self.pending[match.end() :]
                self.conn.sendall(b"+")
                yield match.group(1).decode(errors="replace")
                continue
            chunk = self.conn.recv(4096)
            if not chunk:
                return
            self.pending += chunk

    def fileio_request(self) -> str:
        if self.fd is None:
            # O_CREAT | O_WRONLY | O_TRUNC in the File-I/O protocol's own values; mode 0644.
            return f"Fopen,{PATH_ADDRESS:x}/{len(self.name):x},{0x1 | 0x200 | 0x400:x},1a4"
        return f"Fwrite,{self.fd:x},{DATA_ADDRESS:x},{len(DATA):x}"

    def reply(self, request: str) -> str:
        if request.startswith("qSupported"):
            return "PacketSize=4000"
        if request == "?":
            return "S05"
        if request.startswith(("c", "vCont;", "s")):
            return self.fileio_request()
        if request.startswith("F"):  # gdb's answer to a File-I/O request
            if self.fd is None and not request.startswith("F-"):
                self.fd = int(request[1:].split(",")[0], 16)
                return self.fileio_request()
            return "W00"  # written (or refused): the "program" exits
        if request.startswith("m"):
            address, length = (int(part, 16) for part in request[1:].split(","))
            memory = {PATH_ADDRESS: self.name, DATA_ADDRESS: DATA}.get(address, b"")
            return memory[:length].ljust(length, b"\0").hex()
        if request.startswith("g"):
            return "00" * 144  # x86-64's registers up to cs, enough for gdb to go on
        if request in ("qAttached",):
            return "1"
        if request.startswith(("H", "Z", "z")):
            return "OK"
        if request == "qfThreadInfo":
            return "m1"
        if request == "qsThreadInfo":
            return "l"
        return ""

    def serve(self) -> None:
        for request in self.packets():
            self.conn.sendall(packet(self.reply(request)))


class Vanished(Exception):
    pass


class VanishingStub(Stub):
    """A stopped target whose resumes end in a hit of an access watchpoint on WATCHED;
    the stub hangs up at gdb's Nth request after the first resume, as QEMU does when it
    is killed while gdb handles a hit."""

    def __init__(self, conn: socket.socket, after: int) -> None:
        super().__init__(conn, "")
        self.after = after
        self.since_resume: int | None = None

    def reply(self, request: str) -> str:
        if self.since_resume is not None:
            self.since_resume += 1
            if self.since_resume == self.after:
                print(f"fake_stub: hung up at request {self.after}: {request}", flush=True)
                raise Vanished
        if request.startswith(("c", "vCont;", "s")):
            if self.since_resume is None:
                self.since_resume = 0
            return f"T05awatch:{WATCHED:x};thread:01;"
        return super().reply(request)


def vanish(socket_path: str, after: int) -> None:
    listener = listen_on(f"unix:{socket_path}")
    listener.listen(1)
    conn, _ = listener.accept()
    try:
        VanishingStub(conn, after).serve()
    except Vanished:
        pass
    conn.close()


def serve(listener: socket.socket, target_file: str) -> None:
    listener.listen(4)
    while True:
        conn, _ = listener.accept()
        try:
            Stub(conn, target_file).serve()
        except OSError:
            pass
        finally:
            conn.close()


def listen_on(spec: str) -> socket.socket:
    """A listening socket for a QEMU -gdb spec: tcp:HOST:PORT or unix:PATH[,opts]."""
    kind, _, rest = spec.partition(":")
    if kind == "tcp":
        host, _, port = rest.split(",")[0].rpartition(":")
        listener = socket.socket()
        listener.bind((host or "127.0.0.1", int(port)))
        return listener
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(rest.split(",")[0])
    return listener


def gdb_spec(argv: list[str]) -> str | None:
    return argv[argv.index("-gdb") + 1] if "-gdb" in argv[:-1] else None


def race(target_file: str, seconds: float = 120) -> None:
    """Take the -gdb socket of the first QEMU that shows up, before it binds it."""
    seen: set[str] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid in seen:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    argv = cmdline.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            spec = gdb_spec(argv)
            # Not QEMU (yet): the script's subshell becomes QEMU only when it execs.
            if spec is None or "qemu-system" not in argv[0]:
                continue
            seen.add(pid)
            print(f"fake_stub: racing for {spec}", flush=True)
            try:
                listener = listen_on(spec)
            except OSError as error:
                print(f"fake_stub: cannot take {spec}: {error}", flush=True)
                continue
            print(f"fake_stub: took {spec}", flush=True)
            serve(listener, target_file)
        time.sleep(0.002)


def main() -> None:
    if sys.argv[1] == "race":
        race(sys.argv[2])
    elif sys.argv[1] == "qemu":
        serve(listen_on(gdb_spec(sys.argv) or "tcp:127.0.0.1:1234"), sys.argv[2])
    elif sys.argv[1] == "vanish":
        vanish(sys.argv[2], int(sys.argv[3]))


if __name__ == "__main__":
    main()
