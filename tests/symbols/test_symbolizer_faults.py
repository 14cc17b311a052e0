"""The symbolizer under attack and under faults: a library whose file name carries a newline
and a gdb command, gdb missing or killed, modules that are no ELF or cannot be read."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from gdb_qznusnih.perf.modules import ModuleMap, parse_maps, process_memory_reader
from gdb_qznusnih.perf.symbolizer import Symbolizer, SymbolizerError

pytestmark = pytest.mark.gdb

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


class Waiting:
    """tests/c/symbols.c (as `user`), blocked on stdin before its accesses."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().startswith("0x"), self.process.wait()
        self.pid = self.process.pid

    def finish(self) -> int:
        self.process.stdin.write("g")
        self.process.stdin.close()
        return self.process.wait(timeout=30)


@pytest.fixture
def programs(build_c):
    return build_c("symbols", extra=("-O2",)), build_c(
        "symbols_plugin", extra=("-O2", "-shared", "-fPIC")
    )


@pytest.fixture
def public_dir():
    """A directory the nobody user can read (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="qzn-symbols-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def raw_path_map(pid: int) -> ModuleMap:
    """The module map as the ring's MMAP2 records give it: raw file names, where
    /proc/PID/maps would escape a newline as \\012."""
    modules = ModuleMap(pid, process_memory_reader(pid))
    with open(f"/proc/{pid}/maps") as maps:
        for mapping in parse_maps(maps.read()):
            if mapping.path.startswith("/"):
                link = f"/proc/{pid}/map_files/{mapping.start:x}-{mapping.end:x}"
                mapping = dataclasses.replace(mapping, path=os.readlink(link))
            modules.add_mapping(mapping)
    return modules


def function_at(symbolizer: Symbolizer, modules: ModuleMap, path, name: str) -> str:
    """The function the symbolizer names at `name`'s first byte in the module at `path`."""
    (module,) = [m for m in modules.modules() if m.path == str(path)]
    return symbolizer.caller(module.symbol(name) + 1)[-1].func


def test_a_library_name_with_a_newline_and_a_command_runs_nothing(programs, public_dir):
    program, plugin = programs
    # A file name holds no "/": the command touches a file in gdb's working directory, /.
    pwned = Path("/") / f"qzn-pwned-{os.getpid()}"
    assert not pwned.exists()
    # Pasted into "add-symbol-file PATH -o BIAS", the first line loads a real library (planted
    # too), the second runs the command.
    shutil.copy(plugin, public_dir / "libplugin.so")
    evil = public_dir / f"libplugin.so\nshell touch {pwned.name}\n.so"
    shutil.copy(plugin, evil)
    shutil.copy(program, public_dir / "symbols")
    target = Waiting([*NOBODY, str(public_dir / "symbols"), str(evil)])
    modules = raw_path_map(target.pid)
    assert str(evil) in [m.path for m in modules.modules()]
    with Symbolizer(modules) as symbolizer:
        ran = pwned.exists()
        if ran:
            pwned.unlink()
        assert not ran, "gdb ran the command in the library's file name"
        assert symbolizer.notes == []
        assert function_at(symbolizer, modules, evil, "plugin_touch") == "plugin_touch"
        assert (
            function_at(symbolizer, modules, public_dir / "symbols", "load_plain") == "load_plain"
        )
    assert target.finish() == 0


def test_gdb_missing_is_one_line_saying_what_to_do():
    with pytest.raises(SymbolizerError) as error:
        Symbolizer(ModuleMap.from_maps(""), gdb="/nonexistent/gdb")
    assert str(error.value) == (
        "cannot run '/nonexistent/gdb' (No such file or directory); "
        "install it with 'apt-get install gdb'"
    )


def test_gdb_killed_mid_run_is_one_line(programs):
    program, plugin = programs
    target = Waiting([str(program), str(plugin)])
    modules = ModuleMap.from_pid(target.pid)
    with Symbolizer(modules) as symbolizer:
        assert function_at(symbolizer, modules, program, "load_plain") == "load_plain"
        os.kill(symbolizer.gdb_pid, signal.SIGKILL)
        with pytest.raises(SymbolizerError) as error:
            function_at(symbolizer, modules, program, "add_three")
    assert str(error.value).startswith("gdb (the symbolizer) exited with status -9: ")
    assert "\n" not in str(error.value)
    assert target.finish() == 0


def test_a_mapping_that_is_not_an_elf_is_skipped_with_a_note(programs, tmp_path):
    program, plugin = programs
    data = tmp_path / "not an elf"
    data.write_bytes(b"just some bytes\n" * 256)
    target = Waiting([str(program), str(plugin), str(data)])
    modules = ModuleMap.from_pid(target.pid)
    with Symbolizer(modules) as symbolizer:
        assert symbolizer.notes == [
            f"{data}: skipped: {data}: not a little-endian ELF64 x86-64 image"
        ]
        assert function_at(symbolizer, modules, plugin, "plugin_touch") == "plugin_touch"
    assert target.finish() == 0


def test_modules_that_cannot_be_read_are_skipped_with_a_note(programs, tmp_path):
    program, plugin = programs
    copy = tmp_path / "plugin.so"
    shutil.copy(plugin, copy)
    target = Waiting([str(program), str(copy)])
    with open(f"/proc/{target.pid}/maps") as maps:
        text = maps.read()
    copy.unlink()
    modules = ModuleMap.from_maps(text)  # offline: no process to read the vdso or deleted files
    with Symbolizer(modules) as symbolizer:
        assert symbolizer.notes == [
            f"{copy}: skipped: [Errno 2] No such file or directory: '{copy}'",
            "[vdso]: skipped: the vdso cannot be read (no process memory)",
        ]
        assert function_at(symbolizer, modules, program, "load_plain") == "load_plain"
    assert target.finish() == 0
