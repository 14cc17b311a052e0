"""gdb as a symbol and disassembly server for the perf engine: never attached to anything.

One `gdb -nx -batch` runs hit/symbol_server.py and loads each module of the target's module map (the
program too, PIE bias included).  For each unique pc, asked once and cached here, it answers
what the gdb engine would have printed:
  - a trap ip (x86 traps after the access): the instruction that ends exactly at ip, decoded
    forward from the function's start (gdb's, or the FDE's for stripped code), in gdb's AT&T
    text for classify.py, or unknown when none ends there; and the frames at the trap;
  - a return address: its frames, looked up at ra - 1 as gdb does, printed at ra;
frames being the inlined functions and then the function, as (pc, func, file, line).

Module files are opened here (modules.open_mapped_file: the very file that is mapped) and
handed to gdb as file descriptors, so no path from /proc/PID/maps, which another user may have
named, ever appears in a gdb command.  gdb starts with -nx and auto-loading off: the target's
files may belong to someone else.

Called from the processing side only, never from the capture's drain thread: a lookup waits
for gdb.  Pure: no `import gdb`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from gdb_qznusnih.perf.elf import ElfError, ElfImage, bytes_reader, file_reader
from gdb_qznusnih.perf.modules import VDSO, Module, ModuleMap, open_mapped_file

SERVER = Path(__file__).resolve().parent.parent / "hit" / "symbol_server.py"
FD_VARIABLE = "QZN_SYMBOL_SERVER_FD"
START_TIMEOUT = 60.0  # loading libc's separate debug info takes gdb a few seconds
LOOKUP_TIMEOUT = 30.0
MODULES_PER_REQUEST = 32  # file descriptors per message, well under the kernel's 253
MAX_CACHED = 1 << 16
MAX_VDSO_BYTES = 1 << 20
_STDERR_TAIL = 4096


class SymbolizerError(Exception):
    """gdb is missing, died or did not answer; the message is one line."""


class SymbolFrame(NamedTuple):
    """A frame as record.Frame takes it after its level: Frame(level, *symbol_frame)."""

    pc: int
    func: str | None
    file: str | None
    line: int | None


class AddressError(ValueError):
    """An address expression gdb refused or could not evaluate; the message is one line."""


class Site(NamedTuple):
    """A trap ip explained.  start/text are None when no instruction ends exactly at ip."""

    start: int | None
    text: str | None  # gdb's AT&T text of the accessing instruction
    text_at_ip: str | None  # the instruction at ip itself (a rep string op still running)
    frames: tuple[SymbolFrame, ...]  # frame 0 describes start (ip when unknown)


class Symbolizer:
    """The client: one gdb, per-pc caches, one round trip per batch of new pcs."""

    def __init__(self, modules: ModuleMap, gdb: str = "gdb", timeout: float = LOOKUP_TIMEOUT):
        self.modules = modules
        self.notes: list[str] = []  # one line per module that could not be loaded
        self._timeout = timeout
        self._sites: dict[int, Site] = {}
        self._callers: dict[int, tuple[SymbolFrame, ...]] = {}
        # identity of each module tried -> (device, inode, bias) of its file, None if skipped
        self._known: dict[tuple, tuple | None] = {}
        self._buffer = b""
        self._process, self._channel, self._stderr = _start(gdb)
        try:
            self._load(modules.modules(), replace=True, timeout=START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Symbolizer:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def gdb_pid(self) -> int | None:
        """The symbolizer's own gdb (never the target's)."""
        return self._process.pid if self._process is not None else None

    def sync(self) -> None:
        """Catch up with the module map: load new modules (dlopen, MMAP2); if any went away
        or was replaced, load everything again."""
        current = {_identity(m): m for m in self.modules.modules()}
        if not self._known.keys() <= current.keys():
            self.replace(self.modules)
            return
        new = [m for key, m in current.items() if key not in self._known]
        if new:
            self._load(new, replace=False, timeout=START_TIMEOUT)
            for module in new:  # answers given before it was known are stale
                self._forget(module.start, module.end)

    def _forget(self, start: int, end: int) -> None:
        for cache in (self._sites, self._callers):
            for pc in [pc for pc in cache if start <= pc <= end]:
                del cache[pc]

    def replace(self, modules: ModuleMap) -> None:
        """Forget everything and load this map (after an exec)."""
        self.modules = modules
        self._sites.clear()
        self._callers.clear()
        self._known.clear()
        self.notes.clear()
        self._load(modules.modules(), replace=True, timeout=START_TIMEOUT)

    def resolve(self, traps: Iterable[int] = (), callers: Iterable[int] = ()) -> None:
        """Look up every pc not cached yet, in one round trip."""
        new_traps = sorted({ip for ip in traps if ip not in self._sites})
        new_callers = sorted({ra for ra in callers if ra not in self._callers})
        if not new_traps and not new_callers:
            return
        if len(self._sites) + len(new_traps) > MAX_CACHED:
            self._sites.clear()
        if len(self._callers) + len(new_callers) > MAX_CACHED:
            self._callers.clear()
        request = {
            "op": "lookup",
            "traps": [[ip, self.modules.function_start(ip - 1)] for ip in new_traps],
            "callers": new_callers,
        }
        answer = self._ask(request, [], self._timeout)
        for ip, (start, text, text_at_ip, frames) in zip(new_traps, answer["traps"]):
            self._sites[ip] = Site(start, text, text_at_ip, _frames(frames))
        for ra, frames in zip(new_callers, answer["callers"]):
            self._callers[ra] = _frames(frames)

    def address(self, expression: str) -> int:
        """ADDR evaluated in the loaded modules (globals at their run-time addresses), with
        qzn-watch's read-only rules; AddressError (one line) if refused."""
        answer = self._ask({"op": "address", "expression": expression}, [], self._timeout)
        if "refused" in answer:
            raise AddressError(answer["refused"])
        return int(answer["address"])

    def site(self, ip: int) -> Site:
        """The accessing instruction and the frames at a sampled trap ip."""
        if ip not in self._sites:
            self.resolve(traps=(ip,))
        return self._sites[ip]

    def caller(self, return_address: int) -> tuple[SymbolFrame, ...]:
        """The frames of a caller, innermost (an inlined function, if any) first."""
        if return_address not in self._callers:
            self.resolve(callers=(return_address,))
        return self._callers[return_address]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()  # the server reads EOF and gdb exits
            self._channel = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()  # our own gdb, never the target
                self._process.wait()
            self._process = None
        if self._stderr is not None:
            os.close(self._stderr)
            self._stderr = None

    def _load(self, modules: list[Module], replace: bool, timeout: float) -> None:
        opened = []
        for module in modules:
            try:
                opened.append((module, *_open(module, self.modules)))
            except (OSError, ElfError) as error:
                self._known[_identity(module)] = None
                self.notes.append(f"{printable(module.path)}: skipped: {_one_line(error)}")
        for at in range(0, max(len(opened), 1), MODULES_PER_REQUEST):
            self._load_chunk(opened[at : at + MODULES_PER_REQUEST], replace and at == 0, timeout)

    def _load_chunk(self, chunk: list, replace: bool, timeout: float) -> None:
        entries, fds = [], []
        for module, fd, bias in chunk:
            file_key = (module.mapping.device, module.mapping.inode, bias)
            entries.append(
                {
                    "start": module.start,
                    "end": module.end,
                    "offset": 0 if module.path == VDSO else module.mapping.offset,
                    "bias": bias,
                    "symbols": file_key not in self._known.values(),
                }
            )
            fds.append(fd)
            self._known[_identity(module)] = file_key
        try:
            answer = self._ask({"op": "load", "replace": replace, "modules": entries}, fds, timeout)
        finally:
            for fd in fds:
                os.close(fd)
        for index, problem in answer["problems"].items():
            module = chunk[int(index)][0]
            self.notes.append(f"{printable(module.path)}: skipped: {problem}")

    def _ask(self, request: dict, fds: list[int], timeout: float) -> dict:
        if self._channel is None:
            raise SymbolizerError("the symbolizer is closed")
        data = json.dumps(request).encode() + b"\n"
        self._channel.settimeout(timeout)
        try:
            sent = socket.send_fds(self._channel, [data], fds) if fds else 0
            self._channel.sendall(data[sent:])
            answer = json.loads(self._read_line())
        except TimeoutError:
            raise SymbolizerError(
                f"gdb (the symbolizer) did not answer within {timeout:g} s"
            ) from None
        except (OSError, ValueError):
            raise SymbolizerError(self._death()) from None
        if "error" in answer:
            raise SymbolizerError(f"gdb (the symbolizer): {answer['error']}")
        return answer

    def _read_line(self) -> bytes:
        while b"\n" not in self._buffer:
            data = self._channel.recv(1 << 16)
            if not data:
                raise EOFError
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _death(self) -> str:
        """Why gdb stopped answering, in one line."""
        status = self._process.poll() if self._process is not None else None
        if status is None:
            try:
                status = self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                return "gdb (the symbolizer) stopped answering"
        tail = os.pread(self._stderr, _STDERR_TAIL, 0) if self._stderr is not None else b""
        last = tail.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return f"gdb (the symbolizer) exited with status {status}: {printable(last[0])}"


def _start(gdb: str) -> tuple[subprocess.Popen, socket.socket, int]:
    """gdb with the server running on one end of a socket pair; gdb's output goes to a
    memfd (read only to explain a death): a full pipe would stall it."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    stderr = os.memfd_create("qzn-symbolizer-stderr", os.MFD_CLOEXEC)
    env = dict(os.environ)
    env[FD_VARIABLE] = str(theirs.fileno())
    command = [
        gdb, "-nx", "-batch",
        "-iex", "set auto-load no",
        "-iex", "set debuginfod enabled off",
        "-x", str(SERVER),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            pass_fds=(theirs.fileno(),),
            env=env,
            cwd="/",  # nothing of the target's is looked up relative to here
            start_new_session=True,  # a Ctrl-C meant for the launcher must not end it
        )
    except OSError as error:
        ours.close()
        os.close(stderr)
        raise SymbolizerError(
            f"cannot run {gdb!r} ({error.strerror}); install it with 'apt-get install gdb'"
        ) from None
    finally:
        theirs.close()
    return process, ours, stderr


def _open(module: Module, modules: ModuleMap) -> tuple[int, int]:
    """(fd of the module's image, load bias); the vdso's image is copied into a memfd."""
    if module.path != VDSO:
        fd = open_mapped_file(module.mapping, modules.pid)
        reader = file_reader(fd)
    else:
        size = module.end - module.start
        if modules.read_memory is None or size > MAX_VDSO_BYTES:
            raise OSError("the vdso cannot be read (no process memory)")
        image = modules.read_memory(module.start, size)
        fd = os.memfd_create("qzn-vdso", os.MFD_CLOEXEC)
        os.write(fd, image)
        reader = bytes_reader(image)
    try:
        offset = 0 if module.path == VDSO else module.mapping.offset
        return fd, ElfImage(reader, module.path).load_bias(module.start, offset)
    except (ElfError, OSError):
        os.close(fd)
        raise


def _identity(module: Module) -> tuple:
    mapping = module.mapping
    return mapping.start, mapping.end, mapping.offset, mapping.device, mapping.inode, mapping.path


def _frames(rows: list) -> tuple[SymbolFrame, ...]:
    return tuple(SymbolFrame(*row) for row in rows)


def printable(text: str) -> str:
    """A name another user chose (a path, a thread name), safe to print on one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
