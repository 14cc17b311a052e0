"""Pure parts of `run --at`, stripped programs and a target's end: locations, the entry point
from auxv, module+offset names and the sites they name, the one wording of a target's end."""

from __future__ import annotations

import os
import struct

import pytest

from gdb_qznusnih.arm.describe import killed_exit_status, target_end_text
from gdb_qznusnih.launcher import procfs
from gdb_qznusnih.launcher.cli import parse_request, run_to_command
from gdb_qznusnih.launcher.preflight import module_offset
from gdb_qznusnih.launcher.procfs import parse_maps
from gdb_qznusnih.options import OptionError, check_location, parse_watch_args
from gdb_qznusnih.record.access import Frame
from gdb_qznusnih.record.summary import Summary
from tests.records import make_record


@pytest.mark.parametrize(
    "location",
    ["parse_header", "file.c:120", "src/file.c:parse_header", "120", "*0x401234",
     "*4198964", "*parse_header+4", "Foo::bar", "~Foo"],
)  # fmt: skip
def test_locations_that_only_name_a_place(location):
    assert check_location(location) == location


@pytest.mark.parametrize(
    "location",
    ["main if 1", "main thread 2", "-force-condition", "*$pc", '*system("id")', "*(char*)1",
     "$bpnum", "main,", "", "a b", "file.c:12 if x", "*main+$rax"],
)  # fmt: skip
def test_locations_that_could_evaluate_anything_are_refused(location):
    with pytest.raises(OptionError, match="is not a location this takes"):
        check_location(location)


def test_control_characters_in_a_location_are_refused():
    with pytest.raises(OptionError, match="control characters"):
        check_location("main\nshell id")


def test_run_at_and_at_every_reach_gdb_as_one_python_literal_and_one_option():
    request = parse_request(["run", "--at-every", "fill_buf", "--watch", "buf+3", "--", "p"])
    assert request.at == "fill_buf" and request.options.at_every == "fill_buf"
    assert run_to_command(request.at).endswith("at_location.run_to('fill_buf')")
    assert run_to_command(None).endswith("at_location.run_to(None)")
    request = parse_request(["run", "--at", "*0x401234", "--watch", "0x404040", "--", "p"])
    assert (request.at, request.options.at_every) == ("*0x401234", None)
    with pytest.raises(OptionError, match="not allowed with argument"):
        parse_request(["run", "--at", "a", "--at-every", "b", "--watch", "x", "--", "p"])
    with pytest.raises(OptionError, match="not a location"):
        parse_request(["run", "--at", "main if 1", "--watch", "x", "--", "p"])


def test_qzn_watch_takes_at_every():
    assert parse_watch_args(["--at-every", "file.c:9", "&x"]).at_every == "file.c:9"
    with pytest.raises(OptionError, match="not a location"):
        parse_watch_args(["--at-every", "*f()", "&x"])


def auxv(*pairs: tuple[int, int], word: int = 8) -> bytes:
    code = "<QQ" if word == 8 else "<II"
    return b"".join(struct.pack(code, tag, value) for tag, value in pairs)


def test_the_entry_point_comes_from_at_entry():
    data = auxv((33, 0x7FFF0000), (procfs.AT_ENTRY, 0x555555555040), (0, 0), (9, 1))
    assert procfs.parse_auxv_entry(data, 8) == 0x555555555040
    assert procfs.parse_auxv_entry(auxv((9, 0x8049000), word=4), 4) == 0x8049000
    assert procfs.parse_auxv_entry(auxv((33, 1), (0, 0), (9, 5)), 8) is None  # after AT_NULL
    assert procfs.parse_auxv_entry(b"\x09\x00", 8) is None


def test_the_entry_point_of_this_very_process():
    with open("/proc/self/exe", "rb") as exe:
        header = exe.read(64)
    e_type, e_entry = (
        struct.unpack_from("<H", header, 16)[0],
        struct.unpack_from("<Q", header, 24)[0],
    )
    entry = procfs.auxv_entry(os.getpid(), 8)
    if e_type == 2:  # ET_EXEC: not relocated
        assert entry == e_entry
    else:  # ET_DYN: relocated by the load bias, page offsets kept
        assert entry is not None and entry != e_entry and (entry - e_entry) % 4096 == 0


MAPS = parse_maps(
    "555555554000-555555555000 r--p 00000000 08:01 1 /usr/bin/prog\n"
    "555555555000-555555556000 r-xp 00000000 08:01 1 /usr/bin/prog\n"
    "7ffff7dd0000-7ffff7df0000 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n"
    "7ffff7ff0000-7ffff7ff2000 r-xp 00000000 08:01 1 [vdso]\n"
)


def test_module_offset_is_from_the_files_first_mapping():
    assert module_offset(MAPS, 0x555555555234) == "prog+0x1234"
    assert module_offset(MAPS, 0x7FFFF7DD0010) == "libc.so.6+0x10"
    assert module_offset(MAPS, 0x7FFFF7FF0010) is None  # no file
    assert module_offset(MAPS, 0x1000) is None  # not mapped


STRIPPED = Frame(0, 0x555555555234, None, None, None)
LIBC_START = Frame(1, 0x7FFFF7DD0010, "__libc_start_call_main", "libc_start_call_main.h", 58)


def test_code_without_symbols_is_its_own_site_named_by_module_offset():
    asked = []

    def name_code(pc):
        asked.append(pc)
        return module_offset(MAPS, pc)

    summary = Summary(name_code=name_code)
    for _ in range(3):
        summary.add(make_record(kind="write", frames=(STRIPPED, LIBC_START)))
    [site] = summary.top_sites("write")
    assert (site.describe(), site.count, site.pc) == ("prog+0x1234", 3, 0x555555555234)
    assert site.to_json()["module"] == "prog+0x1234"
    assert asked == [0x555555555234]  # once per site, not per access
    assert "  3  prog+0x1234\n" in summary.format()


def test_without_a_namer_such_a_site_is_its_pc():
    summary = Summary()
    summary.add(make_record(kind="read", frames=(STRIPPED, LIBC_START)))
    assert summary.top_sites("read")[0].describe() == "?? at 0x555555555234"


def test_one_wording_for_a_targets_end():
    assert target_end_text() == "target exited"
    assert target_end_text(3) == "target exited with code 3"
    assert target_end_text(signal_name="SIGSEGV") == "target was killed by SIGSEGV"
    assert killed_exit_status(11) == 139
