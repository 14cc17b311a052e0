"""The module map of live processes: load biases, a deleted executable, the vdso, and files
another user plants at a mapped path after the process started (they must not be read)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from gdb_qznusnih.perf.elf import ElfImage
from gdb_qznusnih.perf.modules import VDSO, ModuleMap, process_memory_reader

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def start_waiting(build_c):
    """start_waiting(path) -> a process of unwind_chain, copied to path, blocked on stdin."""
    started = []

    def start(path):
        shutil.copy(build_c("unwind_chain", extra=("-O2",)), path)
        process = subprocess.Popen([str(path), "wait"], stdin=subprocess.PIPE)
        started.append(process)
        deadline = time.monotonic() + 10
        while "libc.so" not in _maps(process.pid) or _state(process.pid) != "S":
            assert time.monotonic() < deadline, "the program did not reach its read()"
            time.sleep(0.01)
        return process

    yield start
    for process in started:
        process.stdin.close()  # it reads EOF, runs its chains and exits by itself
        process.wait(timeout=10)


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as maps:
        return maps.read()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


def executable_module(modules: ModuleMap, path):
    found = [m for m in modules.modules() if m.path == str(path)]
    assert len(found) == 1, [m.path for m in modules.modules()]
    return found[0]


def assert_symbol_code_matches_memory(module, pid: int, name: str, path_bytes: bytes) -> None:
    """The bias is right: the code at the symbol's run-time address is the file's code there."""
    image = ElfImage(lambda offset, size: path_bytes[offset : offset + size])
    link_address = image.symbol(name)
    assert module.symbol(name) == link_address + module.bias
    offset, _available = image.offset_of_vaddr(link_address)
    in_memory = process_memory_reader(pid)(link_address + module.bias, 32)
    assert in_memory == path_bytes[offset : offset + 32]


def test_deleted_executable_is_read_through_map_files(start_waiting, tmp_path):
    program = tmp_path / "gone"
    process = start_waiting(program)
    file_bytes = program.read_bytes()
    program.unlink()
    modules = ModuleMap.from_pid(process.pid)
    module = executable_module(modules, program)
    assert module.mapping.deleted
    level3 = module.symbol("level3")
    assert module.function_start(level3 + 4) == level3
    assert module.rule_at(level3) is not None and module.problem is None
    assert_symbol_code_matches_memory(module, process.pid, "level3", file_bytes)
    modules.close()


def test_shared_library_bias_and_vdso_cfi(start_waiting, tmp_path):
    program = tmp_path / "prog"
    process = start_waiting(program)
    modules = ModuleMap.from_pid(process.pid)
    libc = next(m for m in modules.modules() if "libc.so" in m.path)
    with open(libc.path, "rb") as file:
        assert_symbol_code_matches_memory(libc, process.pid, "qsort", file.read())
    vdso = next(m for m in modules.modules() if m.path == VDSO)
    clock_gettime = vdso.symbol("__vdso_clock_gettime")
    assert clock_gettime is not None and vdso.start <= clock_gettime < vdso.end
    assert vdso.function_start(clock_gettime + 1) == clock_gettime
    assert vdso.rule_at(clock_gettime).function_start == clock_gettime
    modules.close()


@pytest.fixture
def nobody_dir():
    """A directory that user nobody owns, as a shared build tree would be (under /tmp, which
    nobody can reach, unlike pytest's root-only tmp_path)."""
    directory = Path(tempfile.mkdtemp(prefix="qzn-unwind-"))
    os.chown(directory, 65534, 65534)
    yield directory
    shutil.rmtree(directory)


def test_file_planted_at_a_mapped_path_is_not_read(start_waiting, nobody_dir, build_c):
    """nobody renames another build over the path of a running program: reading by path must
    refuse it (its inode is not the mapped one), and reading through the live process's
    map_files still finds the real one."""
    program = nobody_dir / "prog"
    process = start_waiting(program)
    maps_text = _maps(process.pid)
    planted = nobody_dir / "planted"
    shutil.copy(build_c("unwind_chain", extra=("-O0",)), planted)
    os.chown(planted, 65534, 65534)
    subprocess.run([*NOBODY, "mv", "-f", str(planted), str(program)], check=True)

    by_path = ModuleMap.from_maps(maps_text)
    module = executable_module(by_path, program)
    real_start = ModuleMap.from_pid(process.pid)
    real = executable_module(real_start, program)
    level3 = real.symbol("level3")
    assert module.rule_at(level3) is None and module.function_start(level3 + 4) is None
    assert "no longer the file that is mapped" in module.problem
    assert real.function_start(level3 + 4) == level3 and real.problem is None
    by_path.close()
    real_start.close()


def test_fifo_planted_at_a_mapped_path_does_not_block(start_waiting, nobody_dir):
    """A FIFO in place of the file would block a plain open() forever (no writer)."""
    program = nobody_dir / "prog"
    process = start_waiting(program)
    maps_text = _maps(process.pid)
    subprocess.run([*NOBODY, "rm", "-f", str(program)], check=True)
    subprocess.run([*NOBODY, "mkfifo", str(program)], check=True)
    module = executable_module(ModuleMap.from_maps(maps_text), program)
    result = []
    worker = threading.Thread(target=lambda: result.append(module.function_start(module.start)))
    worker.daemon = True
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock the thread so the test run can end
        fd = os.open(program, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("opening the planted FIFO blocked")
    assert result == [None] and "no longer the file that is mapped" in module.problem


def test_symlink_planted_at_a_mapped_path_is_not_followed(start_waiting, nobody_dir, tmp_path):
    """Even a symlink to the very file that is mapped is refused: the path is not followed."""
    program = nobody_dir / "prog"
    process = start_waiting(program)
    maps_text = _maps(process.pid)
    keep = tmp_path / "kept"
    os.link(program, keep)  # same inode, outside nobody's reach
    subprocess.run([*NOBODY, "rm", "-f", str(program)], check=True)
    subprocess.run([*NOBODY, "ln", "-s", str(keep), str(program)], check=True)
    module = executable_module(ModuleMap.from_maps(maps_text), program)
    assert module.function_start(module.start) is None
    assert "Too many levels of symbolic links" in module.problem
