"""The spill file: chunks come back in order and whole, its blocks are given back once read."""

from __future__ import annotations

import os

import pytest

from gdb_qznusnih.perf.engine import Loss
from gdb_qznusnih.perf.spill import MAX_SPILL_BYTES, SpillFile, spill_budget, spill_dir


def test_chunks_come_back_whole_and_the_file_starts_over_once_all_are_taken(tmp_path):
    spill = SpillFile(str(tmp_path), budget=1 << 20)
    first, second = spill.put([b"a" * 1000], 1000), spill.put([b"b" * 3000], 3000)
    assert (spill.waiting, spill.peak) == (4000, 4000)
    assert spill.take(first) == b"a" * 1000 and spill.waiting == 3000
    third = spill.put([b"c" * 10], 10)  # one still waits: appended, not over it
    assert third.offset == 4000
    assert spill.take(second) == b"b" * 3000 and spill.take(third) == b"c" * 10
    assert spill.waiting == 0
    fourth = spill.put([b"d" * 7], 7)
    assert fourth.offset == 0 and os.fstat(spill._file.fileno()).st_size == 7
    assert spill.take(fourth) == b"d" * 7
    assert spill.peak == 4000
    spill.close()
    assert os.listdir(tmp_path) == []


def test_room_is_the_budget_less_what_waits(tmp_path):
    spill = SpillFile(str(tmp_path), budget=100)
    assert spill.has_room(100) and not spill.has_room(101)
    spill.put([b"x" * 60], 60)
    assert spill.has_room(40) and not spill.has_room(41)
    spill.close()
    assert not SpillFile(str(tmp_path), budget=0).has_room(1)


def test_the_file_never_outgrows_the_budget_while_a_chunk_always_waits(tmp_path):
    """A reader one chunk behind: what waits stays small, but the file only starts over
    once it is all taken, so its end is what the disk holds."""
    spill = SpillFile(str(tmp_path), budget=100)
    waiting, sizes = spill.put([b"x" * 40], 40), []
    while spill.has_room(40) and len(sizes) < 10:
        newer = spill.put([b"x" * 40], 40)
        assert spill.take(waiting) == b"x" * 40
        waiting = newer
        sizes.append(os.fstat(spill._file.fileno()).st_size)
    assert sizes == [80]  # a third chunk would end at 120
    assert spill.take(waiting) == b"x" * 40 and spill.has_room(100)
    assert spill.put([b"c" * 100], 100).offset == 0
    spill.close()


def test_after_giving_up_the_reader_gives_the_blocks_back_once_all_is_taken(tmp_path):
    spill = SpillFile(str(tmp_path), budget=1 << 20)
    first, second = spill.put([b"a" * 4096], 4096), spill.put([b"b" * 4096], 4096)
    spill.give_up()
    assert not spill.has_room(1)
    spill.take(first)
    assert os.fstat(spill._file.fileno()).st_size == 8192  # one still waits
    assert spill.take(second) == b"b" * 4096
    assert os.fstat(spill._file.fileno()).st_size == 0
    spill.close()


def test_the_budget_is_a_quarter_of_the_free_space_at_most_16_gib(tmp_path):
    fs = os.statvfs(tmp_path)
    assert spill_budget(str(tmp_path)) == min(MAX_SPILL_BYTES, fs.f_bavail * fs.f_frsize // 4)
    assert spill_budget(str(tmp_path / "missing")) == 0


@pytest.mark.parametrize("tmpdir_env, expected", [("/srv/spill", "/srv/spill"), ("", "/var/tmp")])
def test_the_directory_is_tmpdir_else_var_tmp(monkeypatch, tmpdir_env, expected):
    monkeypatch.setenv("TMPDIR", tmpdir_env)
    assert spill_dir() == expected


def test_the_summary_says_lost_and_behind_apart():
    assert Loss(0, 0).lines() == ""
    assert Loss(5, 0).lines() == "lost: 5 accesses not logged (the ring overflowed)\n"
    behind = Loss(0, 0, spilled=3 << 20, spill_dir="/var/tmp").lines()
    assert behind == (
        "behind: the records fell behind the target; up to 3.0 MiB of its samples waited"
        " in a spill file in /var/tmp\n"
    )
    assert not Loss(0, 0, spilled=3 << 20).any  # late is not lost: exit 0


def test_a_chunk_is_written_from_its_spans_as_one(tmp_path):
    spill = SpillFile(str(tmp_path), budget=1 << 20)
    ring = memoryview(bytes(range(16)))
    chunk = spill.put([ring[12:], ring[:3]], 7)
    assert spill.take(chunk) == bytes([12, 13, 14, 15, 0, 1, 2])
    spill.close()


def test_a_chunk_cut_short_is_an_error_not_a_part(tmp_path):
    spill = SpillFile(str(tmp_path), budget=1 << 20)
    chunk = spill.put([b"z" * 100], 100)
    os.ftruncate(spill._file.fileno(), 40)
    with pytest.raises(OSError, match="40 of 100 bytes came back"):
        spill.take(chunk)
    spill.close()
