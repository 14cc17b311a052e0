"""gdb's end of the line to QEMU's gdbstub: remote File-I/O refused, QEMU's end told cleanly.

Usage (run by qemu_gdb_flow.py): target remote | exec /usr/bin/python3 -I gdbstub_guard.py SOCKET

It copies gdb's remote protocol both ways unchanged, the stub's side a whole packet at a
time, and watches two things:

- File-I/O: gdb serves a stub's File-I/O requests (`$Fopen,...`, `$Fwrite,...`: open and
  write host files as gdb's user, root here) and has no setting to refuse them; only
  `system` can be turned off.  QEMU's x86 gdbstub never sends one, so a stub that does is
  not the QEMU we started: the guard hangs up on it before gdb sees the packet.  (gdb
  sends no vFile packets here, so no reply starts with F.)
- The stub's end (QEMU died, was killed, or was hung up on): gdb must not see its
  connection drop in the middle of a stop.  gdb 13 swallows "Remote connection closed"
  where one of its own reads during a stop fails (checking a watchpoint's value), goes on
  with the target torn down and aborts ("Recursive internal problem", "double free").  So
  the guard answers for the machine that is gone until gdb lets go: a resume (pending or
  later) gets the stop reply "killed" (X09), which gdb handles as the program's normal
  end; breakpoint insertion and removal, kill and detach get OK; any other request an
  error (E01).
"""

from __future__ import annotations

import os
import select
import socket
import sys

CHUNK = 65536
KILLED = b"X09"  # stop reply: the target was killed by signal 9
RESUMES = (b"c", b"s", b"C", b"S", b"vCont;")  # packets answered by a stop reply
VACUOUS = (b"Z", b"z", b"D", b"vKill")  # nothing left to do on a machine that is gone
READ_REGISTERS = b"$g#67"


def is_stop_reply(payload: bytes) -> bool:
    return payload.startswith((b"T", b"S"))


def whole_packets(buffer: bytes) -> tuple[list[bytes], int]:
    """The payloads of the whole `$...#xx` packets in `buffer`, and where its unfinished
    rest starts.  Acks and interrupts between packets are skipped; `$` and `#` never
    occur inside a packet (they are escaped)."""
    payloads, start = [], 0
    while True:
        begin = buffer.find(b"$", start)
        if begin < 0:
            return payloads, len(buffer)
        end = buffer.find(b"#", begin) + 3
        if end < 3 or end > len(buffer):
            return payloads, begin
        payloads.append(buffer[begin + 1 : end - 3])
        start = end


def packet(payload: bytes) -> bytes:
    return b"$%s#%02x" % (payload, sum(payload) & 0xFF)


def answer_when_gone(request: bytes) -> bytes | None:
    """What the guard answers for a stub that is gone; None: no reply (`k` expects none)."""
    if request == b"?" or request.startswith(RESUMES):
        return KILLED
    if request == b"k":
        return None
    return b"OK" if request.startswith(VACUOUS) else b"E01"


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def reply_for_the_gone_stub(request: bytes) -> None:
    """An ack (gdb waits for one unless the stub acked already; a spare one is skipped)
    and the answer."""
    answer = answer_when_gone(request)
    write_all(1, b"+" + (packet(answer) if answer is not None else b""))


def answer_until_gdb_hangs_up(unanswered: bytes | None, pending: bytes) -> None:
    """The stub is gone: answer gdb's request in flight, then each of its next ones."""
    if unanswered is not None:
        reply_for_the_gone_stub(unanswered)
    while True:
        data = os.read(0, CHUNK)
        if not data:
            os._exit(0)
        requests, rest = whole_packets(pending + data)
        pending = (pending + data)[rest:]
        for request in requests:
            reply_for_the_gone_stub(request)


def refuse_fileio() -> None:
    print(
        "gdbstub_guard: the gdbstub asked gdb for host File-I/O (open/write a file);"
        " QEMU never does: refused and disconnected",
        file=sys.stderr,
        flush=True,
    )


class Relay:
    """One thread, raw descriptors: each hop costs gdb's round trips as little as can be.

    At a stop the guard reads the registers itself before it passes the stop reply on,
    and answers gdb's own first read of them ('g', to find the pc) from that: gdb stops
    handling the stop with an error when that read fails, and the watch would then end
    on it instead of on the machine's end.
    """

    def __init__(self, stub: int) -> None:
        self.stub = stub
        self.from_gdb = b""  # an unfinished packet of gdb's
        self.from_stub = b""  # an unfinished packet of the stub's, not yet passed on
        self.unanswered: bytes | None = None  # gdb's last request, until the stub answers
        self.stop_reply: bytes | None = None  # held while the registers are read
        self.registers: bytes | None = None  # the stub's 'g' reply at this stop

    def run(self) -> None:
        poller = select.poll()
        poller.register(0, select.POLLIN)
        poller.register(self.stub, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == 0:
                    self.gdb_to_stub()
                else:
                    self.stub_to_gdb()

    def gdb_to_stub(self) -> None:
        data = os.read(0, CHUNK)
        if not data:
            os._exit(0)  # gdb hung up
        requests, rest = whole_packets(self.from_gdb + data)
        self.from_gdb = (self.from_gdb + data)[rest:]
        if requests:
            self.unanswered = requests[-1]  # all-stop: one request at a time
            if self.answered_from_registers(requests, data):
                return
        self.to_stub(data)

    def answered_from_registers(self, requests: list[bytes], data: bytes) -> bool:
        registers, self.registers = self.registers, None
        if registers is None or requests != [b"g"] or READ_REGISTERS not in data:
            return False
        write_all(1, b"+" + packet(registers))
        self.unanswered = None
        acks = data.replace(READ_REGISTERS, b"", 1)
        if acks:
            self.to_stub(acks)
        return True

    def to_stub(self, data: bytes) -> None:
        try:
            write_all(self.stub, data)
        except OSError:
            self.stub_gone()

    def stub_to_gdb(self) -> None:
        try:
            data = os.read(self.stub, CHUNK)
        except OSError:
            data = b""
        if not data:
            self.stub_gone()
        buffer = self.from_stub + data
        replies, rest = whole_packets(buffer)
        self.from_stub = buffer[rest:]
        if any(reply.startswith(b"F") for reply in replies):
            refuse_fileio()
            self.stub_gone()
        if self.stop_reply is not None:  # the registers read at this stop, or its ack
            if replies:
                self.registers = replies[0]
                self.to_stub(b"+")
                self.pass_on(self.stop_reply)
                self.stop_reply = None
        elif not replies:
            write_all(1, buffer[:rest])  # acks
        elif is_stop_reply(replies[-1]) and self.resume_pending():
            self.stop_reply = buffer[:rest]
            self.to_stub(READ_REGISTERS)
        else:
            self.pass_on(buffer[:rest])

    def resume_pending(self) -> bool:
        return self.unanswered is not None and self.unanswered.startswith(RESUMES)

    def pass_on(self, data: bytes) -> None:
        self.unanswered = None
        write_all(1, data)

    def stub_gone(self) -> None:
        os.close(self.stub)
        answer_until_gdb_hangs_up(self.unanswered, self.from_gdb)


def main() -> None:
    stub = socket.socket(socket.AF_UNIX)
    try:
        stub.connect(sys.argv[1])
    except OSError as error:
        print(f"gdbstub_guard: cannot reach {sys.argv[1]}: {error.strerror}", file=sys.stderr)
        sys.exit(1)
    Relay(stub.fileno()).run()


if __name__ == "__main__":
    main()
