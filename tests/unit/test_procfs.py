"""/proc parsing: samples for the parsers, and real processes for the readers."""

from __future__ import annotations

import os
import signal
import threading
import time

from gdb_qznusnih.launcher import procfs

# A name with a space and a ')' in it, as a process may choose (prctl PR_SET_NAME).
STAT = (
    "4242 (a) b) S 1 4242 4242 0 -1 4194560 97 0 0 0 1 2 0 0 20 0 1 0 98765 2310144 180 "
    "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 35584"
)
STATUS = """Name:\tmix
State:\tS (sleeping)
TracerPid:\t0
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000002
Uid:\t0\t0\t0\t0
"""


def test_stat_fields_start_after_the_name_even_when_it_holds_a_parenthesis():
    fields = procfs.stat_fields(STAT)
    assert fields[procfs.STATE] == "S"
    assert fields[procfs.FLAGS] == "4194560"
    assert fields[procfs.START_TIME] == "98765"
    assert fields[procfs.EXIT_CODE] == "35584"
    assert len(fields) == 50


def test_status_fields_are_stripped_key_value_pairs():
    fields = procfs.status_fields(STATUS + "no colon here\n")
    assert fields == {
        "Name": "mix",
        "State": "S (sleeping)",
        "TracerPid": "0",
        "SigPnd": "0000000000000000",
        "ShdPnd": "0000000000000002",
        "Uid": "0\t0\t0\t0",
    }


def _wait_for(predicate) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_readers_of_a_live_process(sleeper):
    _wait_for(lambda: procfs.state(sleeper.pid) == "S")
    assert procfs.thread_ids(sleeper.pid) == [sleeper.pid]
    assert procfs.tracer_pid(sleeper.pid) == 0
    assert procfs.start_time(sleeper.pid) == procfs.read_stat_fields(sleeper.pid)[19]
    assert procfs.read_status_fields("self")["Pid"] == str(os.getpid())


def test_readers_once_the_process_is_gone(sleeper):
    sleeper.kill()
    sleeper.wait()
    pid = sleeper.pid
    assert procfs.read_stat_fields(pid) is None
    assert procfs.state(pid) == ""
    assert procfs.start_time(pid) is None
    assert procfs.read_status_fields(pid) is None
    assert procfs.tracer_pid(pid) == 0
    assert procfs.thread_ids(pid) == []
    assert procfs.signal_pending(pid, signal.SIGINT) is False


def test_thread_ids_lists_every_thread_sorted():
    before = procfs.thread_ids(os.getpid())
    release = threading.Event()
    workers = [threading.Thread(target=release.wait) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        tids = procfs.thread_ids(os.getpid())
        assert tids == sorted(before + [worker.native_id for worker in workers])
        assert os.getpid() in tids
    finally:
        release.set()
        for worker in workers:
            worker.join()


def test_signal_pending_sees_a_blocked_signal(sleeper):
    _wait_for(lambda: procfs.state(sleeper.pid) == "S")
    sleeper.send_signal(signal.SIGSTOP)  # stopped, so a SIGINT stays pending
    _wait_for(lambda: procfs.state(sleeper.pid) == "T")
    assert procfs.signal_pending(sleeper.pid, signal.SIGINT) is False
    sleeper.send_signal(signal.SIGINT)
    _wait_for(lambda: procfs.signal_pending(sleeper.pid, signal.SIGINT))
    assert procfs.signal_pending(sleeper.pid, signal.SIGTERM) is False


def test_parse_maps_keeps_odd_paths_and_marks_deleted_files():
    maps = procfs.parse_maps(
        "7f0000000000-7f0000001000 r-xp 00001000 fe:01 42   /tmp/a b  (deleted)\n"
        "not a maps line\n"
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 \n"
    )
    assert len(maps) == 2
    deleted, anonymous = maps
    assert (deleted.path, deleted.deleted, deleted.device, deleted.inode) == (
        "/tmp/a b ",
        True,
        (0xFE, 1),
        42,
    )
    assert deleted.executable and deleted.contains(0x7F0000000FFF)
    assert not deleted.contains(0x7F0000001000)
    assert deleted.describe() == "0x7f0000000000-0x7f0000001000 r-xp /tmp/a b  (deleted)"
    assert anonymous.describe() == "0x7ffd00000000-0x7ffd00021000 rw-p (anonymous)"
