"""Modules that come later (dlopen, MMAP2) and maps that change (exec, a module replaced)."""

from __future__ import annotations

import subprocess

import pytest

from gdb_qznusnih.perf.modules import ModuleMap, parse_maps
from gdb_qznusnih.perf.symbolizer import Symbolizer

pytestmark = pytest.mark.gdb


@pytest.fixture
def waiting(build_c):
    """tests/c/symbols.c with its plugin loaded, blocked on stdin: (process, plugin path)."""
    plugin = build_c("symbols_plugin", extra=("-O2", "-shared", "-fPIC"))
    process = subprocess.Popen(
        [str(build_c("symbols", extra=("-O2",))), str(plugin)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().startswith("0x")
    yield process, str(plugin)
    process.communicate("g", timeout=30)
    assert process.returncode == 0


def maps_of(pid: int):
    with open(f"/proc/{pid}/maps") as maps:
        return parse_maps(maps.read())


def test_a_module_mapped_later_is_loaded_by_sync(waiting):
    process, plugin = waiting
    mappings = maps_of(process.pid)
    modules = ModuleMap.from_maps("", process.pid)
    for mapping in mappings:
        if mapping.path != plugin:
            modules.add_mapping(mapping)
    with Symbolizer(modules) as symbolizer:
        for mapping in mappings:
            if mapping.path == plugin:
                modules.add_mapping(mapping)  # as from the ring's MMAP2 record
        (module,) = [m for m in modules.modules() if m.path == plugin]
        ra = module.symbol("plugin_touch") + 1
        assert symbolizer.caller(ra)[-1].func is None  # not loaded yet: gdb knows nothing
        symbolizer.sync()
        assert symbolizer.caller(ra)[-1].func == "plugin_touch"  # the stale answer is gone


def test_a_module_gone_from_the_map_makes_sync_load_everything_again(waiting):
    """(As after an exec, whose new map the engine gives to replace().)"""
    process, plugin = waiting
    modules = ModuleMap.from_pid(process.pid)
    with Symbolizer(modules) as symbolizer:
        (module,) = [m for m in modules.modules() if m.path == plugin]
        ra = module.symbol("plugin_touch") + 1
        assert symbolizer.caller(ra)[-1].func == "plugin_touch"
        modules.remove_range(module.start, module.end)  # munmap, dlclose
        symbolizer.sync()
        assert symbolizer.caller(ra)[-1].func is None
