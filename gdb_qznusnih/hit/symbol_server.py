"""The symbol server: runs inside a `gdb -nx -batch` that is attached to nothing.  Needs gdb.

Started by `symbolizer.Symbolizer` as `gdb ... -x symbol_server.py` with one end of a unix socket
pair at fd $QZN_SYMBOL_SERVER_FD.  Requests and answers are JSON lines on that socket, never
on gdb's stdout (gdb prints its chatter there).

Module files arrive as file descriptors (SCM_RIGHTS), opened and checked by the client, and gdb
opens them as /proc/self/fd/N: a path from the target's /proc/PID/maps, which another user may
have chosen (spaces, quotes, a newline and a second command), is never part of a gdb command.

gdb reads no memory without a target, so the executable mappings' bytes are copied into an ELF
core file in a memfd, loaded with `core-file`: disassembly then reads the very bytes that are
mapped, at their run-time addresses.

Requests:
  {"op": "load", "replace": bool, "modules": [{"start", "end", "offset", "bias", "symbols"}]}
      one fd per module rides along ("symbols": false for a file's second code mapping);
      answers {"problems": {"INDEX": "one line", ...}}
  {"op": "lookup", "traps": [[ip, fde_start or null], ...], "callers": [return address, ...]}
      answers {"traps": [[insn start or null, text or null, text at ip or null, frames]],
               "callers": [frames]}, frames a list of [pc, function, file, line]
  {"op": "address", "expression": EXPR}
      ADDR of the perf engine, evaluated as qzn-watch does (it may only read: no assignment,
      no function call); answers {"address": N} or {"refused": "one line"}
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

import gdb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gdb_qznusnih.arm.target import (  # noqa: E402
    WatchError,
    evaluate_address,
    function_name,
    is_inlined,
    outer_function_start,
    source_location,
)
from gdb_qznusnih.options import one_line  # noqa: E402

FD_VARIABLE = "QZN_SYMBOL_SERVER_FD"
MAX_FDS_PER_READ = 64
# Decode no further than this from a function start (the gdb engine's locator bound).
MAX_FUNCTION_BYTES = 64 * 1024
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_PAGE = 4096


class _Code:
    """The executable mappings' bytes, as an ELF core file in a memfd that gdb loads."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, int, int, int]] = []  # (fd, offset, size, vaddr)
        self._core_fd: int | None = None

    def clear(self) -> None:
        for fd, *_rest in self.segments:
            os.close(fd)
        self.segments = []

    def reload(self) -> None:
        """Write the core file anew and make gdb read memory from it."""
        core = os.memfd_create("qzn-code", os.MFD_CLOEXEC)
        try:
            _write_core(core, self.segments)
            if self.segments:
                gdb.execute(f"core-file /proc/self/fd/{core}", to_string=True)
            else:
                gdb.execute("core-file", to_string=True)
        except BaseException:
            os.close(core)
            raise
        if self._core_fd is not None:
            os.close(self._core_fd)
        self._core_fd = core


def _write_core(core: int, segments) -> None:
    headers = _EHDR.size + _PHDR.size * len(segments)
    at = -(-headers // _PAGE) * _PAGE
    program_headers = b""
    placed = []
    for fd, offset, size, vaddr in segments:
        program_headers += _PHDR.pack(1, 5, at, vaddr, 0, size, size, _PAGE)  # PT_LOAD, R+X
        placed.append((fd, offset, size, at))
        at += -(-size // _PAGE) * _PAGE
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    header = _EHDR.pack(
        ident, 4, 62, 1, 0, _EHDR.size, 0, 0, _EHDR.size, _PHDR.size, len(segments), 64, 0, 0
    )  # ET_CORE, EM_X86_64
    os.pwrite(core, header + program_headers, 0)
    for fd, offset, size, file_at in placed:
        data = os.pread(fd, size, offset)
        os.pwrite(core, data, file_at)


class Server:
    """Answers requests from one socket until the client closes it."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.code = _Code()
        self._buffer = b""
        self._fds: list[int] = []
        self._decoded: dict[int, dict[int, tuple[int, str]]] = {}  # start -> {end: insn}
        self._arch = gdb.selected_inferior().architecture()

    def serve(self) -> None:
        for request in self._requests():
            try:
                answer = self._answer(request)
            except (gdb.error, OSError, ValueError, KeyError, TypeError) as error:
                answer = {"error": one_line(error) or type(error).__name__}
            self.channel.sendall(json.dumps(answer).encode() + b"\n")

    def _requests(self):
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                yield json.loads(line)
                continue
            data, fds, _flags, _address = socket.recv_fds(self.channel, 1 << 16, MAX_FDS_PER_READ)
            self._fds.extend(fds)
            if not data:
                return
            self._buffer += data

    def _answer(self, request: dict) -> dict:
        if request["op"] == "load":
            return self._load(request)
        if request["op"] == "lookup":
            return {
                "traps": [self._trap(ip, fde_start) for ip, fde_start in request["traps"]],
                "callers": [_caller_frames(ra) for ra in request["callers"]],
            }
        if request["op"] == "address":
            try:
                return {"address": evaluate_address(str(request["expression"])).value}
            except WatchError as error:
                return {"refused": str(error)}
        raise ValueError(f"unknown request {request['op']!r}")

    def _load(self, request: dict) -> dict:
        modules = request["modules"]
        fds, self._fds = self._fds[: len(modules)], self._fds[len(modules) :]
        if len(fds) != len(modules):
            raise ValueError("a load request came without its file descriptors")
        if request["replace"]:
            gdb.execute("symbol-file", to_string=True)
            self.code.clear()
            self._decoded.clear()
        problems = {}
        for index, (module, fd) in enumerate(zip(modules, fds)):
            try:
                if module["symbols"]:
                    command = f"add-symbol-file /proc/self/fd/{fd} -o {int(module['bias']):#x}"
                    gdb.execute(command, to_string=True)
            except gdb.error as error:
                problems[str(index)] = one_line(error) or type(error).__name__
                os.close(fd)
                continue
            size = int(module["end"]) - int(module["start"])
            self.code.segments.append((fd, int(module["offset"]), size, int(module["start"])))
        self.code.reload()
        return {"problems": problems}

    def _trap(self, ip: int, fde_start: int | None) -> list:
        """[insn start, its text, text of the insn at ip, frames] for a sampled trap ip."""
        found = self._instruction_before(ip, fde_start)
        start, text = found if found is not None else (None, None)
        at_ip = self._disassemble(ip, ip)
        described = start if start is not None else ip
        frames = [_describe(described, gdb.find_pc_line(described), function_name(described))]
        frames += _outer_frames(_visible_chain(ip), ip)
        return [start, text, at_ip[0][1][1] if at_ip else None, frames]

    def _instruction_before(self, ip: int, fde_start: int | None) -> tuple[int, str] | None:
        """The instruction ending exactly at ip, decoded forward from the function start."""
        starts = [s for s in (outer_function_start(ip - 1), fde_start) if s is not None]
        starts = [s for s in starts if 0 < ip - s <= MAX_FUNCTION_BYTES]
        if not starts:
            return None
        start = max(starts)  # both are instruction boundaries; the nearer decodes less
        known = self._decoded.setdefault(start, {})
        if ip not in known:
            frontier = max(known, default=start)
            if frontier < ip:
                for addr, insn in self._disassemble(frontier, ip):
                    known[addr + insn[0]] = (addr, insn[1])
        return known.get(ip)

    def _disassemble(self, start: int, end: int) -> list[tuple[int, tuple[int, str]]]:
        try:
            insns = self._arch.disassemble(start, end)
        except (gdb.MemoryError, gdb.error):
            return []
        return [(i["addr"], (i["length"], i["asm"])) for i in insns]


def _inline_chain(pc: int) -> list:
    """The function blocks holding pc, innermost first: inlined ones, then the function."""
    try:
        block = gdb.current_progspace().block_for_pc(pc)
    except RuntimeError:
        return []
    chain = []
    while block is not None and not block.is_static and not block.is_global:
        if block.function is not None:
            chain.append(block)
            if not is_inlined(block):
                break
        block = block.superblock
    return chain


def _visible_chain(ip: int) -> list:
    """The chain gdb shows at a stop at ip: inlined blocks that start right at ip are hidden
    (gdb's skip_inline_frames: the stop is taken to be at their call site)."""
    chain = _inline_chain(ip)
    hidden = 0
    while hidden < len(chain) and is_inlined(chain[hidden]) and _starts_at(chain[hidden], ip):
        hidden += 1
    return chain[hidden:]


def _starts_at(block, pc: int) -> bool:
    """pc is the block's entry or the start of one of its ranges (pc - 1 is outside it)."""
    if block.start == pc:
        return True
    try:
        before = gdb.current_progspace().block_for_pc(pc - 1)
    except RuntimeError:
        return True
    wanted = _block_key(block)
    while before is not None:
        if _block_key(before) == wanted:
            return False
        before = before.superblock
    return True


def _block_key(block) -> tuple:
    # gdb 13's Block has no ==; a function's blocks differ in their bounds.
    return block.start, block.end, block.function.name if block.function else None


def _caller_frames(ra: int) -> list:
    """The frames gdb shows for a return address: looked up at ra - 1, printed at ra."""
    chain = _inline_chain(ra - 1)
    name = chain[0].function.print_name if chain else function_name(ra - 1)
    return [_describe(ra, gdb.find_pc_line(ra - 1), name)] + _outer_frames(chain, ra)


def _outer_frames(chain: list, pc: int) -> list:
    """Frames for chain[1:], each at the call site of the inlined function just inside it
    (gdb's find_frame_sal for a frame with inlined callees)."""
    frames = []
    for inner, outer in zip(chain, chain[1:]):
        call_site = inner.function
        file = call_site.symtab.filename if call_site.symtab is not None else None
        frames.append([pc, outer.function.print_name, file, call_site.line or None])
    return frames


def _describe(pc: int, sal, func: str | None) -> list:
    return [pc, func, *source_location(sal)]


def main() -> None:
    for setting in (
        "confirm off",
        "pagination off",
        "width 0",
        "height 0",
        "architecture i386:x86-64",
    ):
        gdb.execute(f"set {setting}", to_string=True)
    channel = socket.socket(fileno=int(os.environ[FD_VARIABLE]))
    try:
        Server(channel).serve()
    finally:
        channel.close()


if __name__ == "__main__":
    main()
