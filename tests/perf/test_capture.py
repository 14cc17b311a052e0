"""Capture real accesses of real processes with perf breakpoint events: exact counts."""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import stat
import subprocess
import time

import pytest

from gdb_qznusnih.perf import ring
from gdb_qznusnih.perf.capture import Capture, CaptureConfig
from gdb_qznusnih.perf.events import EventConfig, PerfError
from gdb_qznusnih.perf.hits import Hit
from gdb_qznusnih.perf.records import Sample, Task
from gdb_qznusnih.perf.spill import Spilled
from tests.perf.perf_helpers import SMALL_STACK, capture_run

pytestmark = pytest.mark.perf

WRITES, READS, RMWS = 300, 200, 50


def expected_value(threads=1):
    """The byte at the end when one thread did everything: the last write, then the RMWs."""
    assert threads == 1
    return (WRITES - 1 + RMWS) % 256


def small_stack(**changes) -> CaptureConfig:
    """SMALL_STACK with `changes` (its ring, memory share, spill)."""
    return dataclasses.replace(SMALL_STACK, **changes)


def test_one_thread_every_access_once_and_rmw_fires_both_events(start_target):
    target = start_target(WRITES, READS, RMWS)
    hits, records, accounting = capture_run(target)
    # An RMW instruction is one trap: one RW sample and one W sample, paired into one hit.
    assert accounting.hardware == {"rw": WRITES + READS + RMWS, "w": WRITES + RMWS}
    assert accounting.delivered == accounting.hardware
    assert accounting.kernel_lost == {"rw": 0, "w": 0}
    assert (accounting.hits, accounting.hits_with_write) == (WRITES + READS + RMWS, WRITES + RMWS)
    assert accounting.writes_without_rw_sample == 0 and accounting.complete
    assert len(hits) == WRITES + READS + RMWS and records == []
    by_ip = collections.Counter((hit.sample.ip, hit.hardware_saw_write) for hit in hits)
    assert sorted(by_ip.values()) == [RMWS, READS, WRITES]
    assert len({ip for ip, _ in by_ip}) == 3
    assert {hit.sample.tid for hit in hits} == {target.pid}
    sample = hits[0].sample
    assert (sample.pid, sample.kind, sample.kernel_mode) == (target.pid, "rw", False)
    assert sample.dyn_size == 512 and len(sample.stack) == 512
    assert sample.register("rip") == sample.ip
    assert target.finish() == expected_value()


def test_sample_times_give_the_program_order_on_the_target_clock(start_target):
    import time

    target = start_target(WRITES, READS, RMWS)
    before = time.monotonic_ns()
    hits, _, _ = capture_run(target)
    # Each CPU has its ring: a thread that moved between CPUs comes back ring by ring, and
    # the engine merges by time.  In time order, the hits are the program's order exactly.
    in_time_order = sorted(hits, key=lambda hit: hit.sample.time)
    saw_write = [hit.hardware_saw_write for hit in in_time_order]
    assert saw_write == [True] * WRITES + [False] * READS + [True] * RMWS
    times = [hit.sample.time for hit in in_time_order]
    assert len(set(times)) == len(times)
    assert before < times[0] and times[-1] < time.monotonic_ns()
    target.finish()


def test_threads_before_and_after_arming_are_all_caught_with_inherit(start_target):
    target = start_target(WRITES, READS, RMWS, early=1, late=1)
    armed_threads = target.thread_ids()
    hits, records, accounting = capture_run(target)
    threads = 3
    assert accounting.hardware == {"rw": threads * (WRITES + READS + RMWS), "w": threads * 350}
    assert accounting.delivered == accounting.hardware and accounting.complete
    assert (accounting.hits, accounting.hits_with_write) == (threads * 550, threads * 350)
    per_thread = collections.Counter(hit.sample.tid for hit in hits)
    assert sorted(per_thread.values()) == [550] * threads
    late_threads = set(per_thread) - armed_threads
    assert len(late_threads) == 1
    tasks = collections.Counter(record.what for record in records if isinstance(record, Task))
    assert tasks == {"fork": 1, "exit": 2}  # the late thread made; both threads ended
    forked = [r.tid for r in records if isinstance(r, Task) and r.what == "fork"]
    assert set(forked) == late_threads


def test_per_thread_events_miss_threads_made_after_arming(start_target):
    target = start_target(WRITES, READS, RMWS, early=1, late=1)
    config = CaptureConfig(events=EventConfig(stack_bytes=512, threads="per-thread"))
    hits, _, accounting = capture_run(target, config)
    assert accounting.hardware == {"rw": 2 * 550, "w": 2 * 350}  # main and the early thread
    assert accounting.delivered == accounting.hardware
    assert len({hit.sample.tid for hit in hits}) == 2


def test_kernel_accesses_are_invisible_when_excluded(start_target):
    target = start_target(WRITES, READS, RMWS, zero_reads=40)
    _, _, accounting = capture_run(target)
    assert accounting.hardware == {"rw": 550, "w": 350}


def test_kernel_accesses_are_caught_with_kernel_frames_when_not_excluded(start_target):
    target = start_target(WRITES, READS, RMWS, zero_reads=40)
    config = CaptureConfig(events=EventConfig(stack_bytes=512, exclude_kernel=False))
    hits, _, accounting = capture_run(target, config)
    assert accounting.hardware == {"rw": 550 + 40, "w": 350 + 40}
    assert accounting.delivered == accounting.hardware
    kernel = [hit for hit in hits if hit.sample.kernel_mode]
    assert len(kernel) == 40 and all(hit.hardware_saw_write for hit in kernel)
    assert all(hit.sample.ip >= 1 << 63 for hit in kernel)
    # kernel frames from the kernel, user registers and stack of the read() call
    assert all(len(hit.sample.callchain) >= 2 for hit in kernel)
    assert all(pc >= 1 << 63 for hit in kernel for pc in hit.sample.callchain)
    assert all(hit.sample.regs is not None and hit.sample.dyn_size == 512 for hit in kernel)
    user = [hit for hit in hits if not hit.sample.kernel_mode]
    assert len(user) == 550 and all(hit.sample.callchain == () for hit in user)


def test_a_tiny_ring_reports_exactly_what_it_lost(start_target):
    writes = 20_000
    target = start_target(writes, 0, 0)
    config = small_stack(ring_pages=1)
    with Capture(target.pid, target.address, 1, config) as capture:
        target.go()
        target.wait_done()
        delivered = sum(isinstance(item, Hit) for item in capture.read_all())
        accounting = capture.accounting()
    assert accounting.throttled == 0
    assert accounting.hardware == {"rw": writes, "w": writes}
    lost = {kind: writes - accounting.delivered[kind] for kind in ("rw", "w")}
    assert lost["rw"] > 0 and not accounting.complete
    assert accounting.kernel_lost == lost
    assert accounting.lost("rw") == lost["rw"] and accounting.lost("w") == lost["w"]
    assert accounting.lost_records <= lost["rw"] + lost["w"]
    assert delivered == accounting.delivered["rw"]
    assert target.finish() == (writes - 1) % 256


def test_a_consumer_that_falls_behind_spills_to_disk_and_loses_nothing(start_target, tmp_path):
    writes, cap = 20_000, 64 << 10  # 40,000 samples, 64 KiB of them in memory at most
    target = start_target(writes, 0, 0)
    config = small_stack(max_queued_bytes=cap, spill_dir=str(tmp_path))
    with Capture(target.pid, target.address, 1, config) as capture:
        target.go()
        target.wait_done()  # nothing parsed meanwhile: the consumer is as far behind as can be
        queued, spilled = capture.queued_bytes, capture.spill.waiting
        spill_fd = capture.spill._file.fileno()
        spill_mode = stat.S_IMODE(os.fstat(spill_fd).st_mode)
        spill_link = os.readlink(f"/proc/self/fd/{spill_fd}")
        hits = [item for item in capture.read_all() if isinstance(item, Hit)]
        accounting = capture.accounting()
        assert capture.spill.waiting == 0
    assert queued <= cap  # a chunk that does not fit goes to disk whole
    assert spilled > 100 * cap  # megabytes waited on disk
    assert spill_mode == 0o600 and spill_link.endswith("(deleted)")  # nobody can open it
    assert os.listdir(tmp_path) == []
    assert accounting.hardware == {"rw": writes, "w": writes} and accounting.complete
    assert len(hits) == writes and all(hit.hardware_saw_write for hit in hits)
    assert [hit.sample.time for hit in hits] == sorted(hit.sample.time for hit in hits)
    assert target.finish() == (writes - 1) % 256


def test_the_spill_never_writes_through_what_another_user_planted(start_target, tmp_path):
    """A world-writable spill directory full of another user's symlinks to a victim file:
    the spill has no name, so it opens none of them."""
    spill = tmp_path / "spill"
    spill.mkdir(mode=0o1777)
    spill.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted = [f"tmp{index}" for index in range(64)]
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    subprocess.run([*as_nobody, "sh", "-c", "for n in \"$@\"; do ln -s ../victim \"$n\"; done",
                    "sh", *planted], cwd=spill, check=True)  # fmt: skip
    target = start_target(2_000, 0, 0)
    config = small_stack(max_queued_bytes=4096, spill_dir=str(spill))
    with Capture(target.pid, target.address, 1, config) as capture:
        target.go()
        target.wait_done()
        hits = [item for item in capture.read_all() if isinstance(item, Hit)]
        peak = capture.spill.peak
    assert peak > 0 and len(hits) == 2_000
    assert victim.read_text() == "precious\n"
    assert sorted(os.listdir(spill)) == sorted(planted)
    target.finish()


def test_with_the_spill_full_a_consumer_behind_holds_a_bounded_queue_and_the_rest_is_lost(
    start_target, tmp_path
):
    writes, cap, disk = 20_000, 64 << 10, 256 << 10  # samples of ~736 bytes
    target = start_target(writes, 0, 0)
    config = small_stack(
        ring_pages=8, max_queued_bytes=cap, max_spill_bytes=disk, spill_dir=str(tmp_path)
    )
    with Capture(target.pid, target.address, 1, config) as capture:
        target.go()
        target.wait_done()  # nothing parsed meanwhile: the consumer is as far behind as can be
        queued, spilled = capture.queued_bytes, capture.spill.waiting
        delivered = sum(isinstance(item, Hit) for item in capture.read_all())
        accounting = capture.accounting()
    one_sweep = 8 * 4096 * os.cpu_count()  # every CPU's ring, copied out at once
    assert 0 < queued <= cap + one_sweep
    assert disk - one_sweep < spilled <= disk
    assert accounting.hardware == {"rw": writes, "w": writes}
    assert accounting.lost("rw") == writes - delivered > 0  # every access counted
    assert target.finish() == (writes - 1) % 256


def test_a_full_disk_while_spilling_keeps_the_chunk_in_memory_and_spills_no_more(tiny_disk):
    config = CaptureConfig(max_queued_bytes=0, max_spill_bytes=1 << 20, spill_dir=str(tiny_disk))
    capture = Capture(os.getpid(), 0, 1, config)  # not started: _keep as the drain thread calls it
    ring = memoryview(bytes(range(256)) * 512)  # 128 KiB
    spilled = capture._keep([ring[: 32 << 10]], 32 << 10)
    assert type(spilled) is Spilled and capture.queued_bytes == 0
    kept = capture._keep([ring[32 << 10 :], ring[:1]], (96 << 10) + 1)  # more than the disk has
    assert kept == bytes(ring[32 << 10 :]) + bytes(ring[:1])
    assert capture.queued_bytes == (96 << 10) + 1 and not capture.spill.has_room(1)
    assert capture._keep([ring[:10]], 10) == bytes(ring[:10])  # no more tries
    assert capture.spill.take(spilled) == bytes(ring[: 32 << 10])
    fs = os.statvfs(tiny_disk)
    assert fs.f_bfree == fs.f_blocks  # every block given back once what was spilled is read
    capture.close()
    assert os.listdir(tiny_disk) == []


def test_a_target_under_strace_is_still_watched(start_target):
    wrapper = ["strace", "-f", "-qq", "-o", "/dev/null"]
    target = start_target(WRITES, READS, RMWS, early=1, wrapper=wrapper)
    strace_pid = target.proc.pid
    assert target.status().tracer_pid == strace_pid
    with Capture(target.pid, target.address, 1, SMALL_STACK) as capture:
        target.go()
        target.wait_done()
        assert target.status().tracer_pid == strace_pid  # strace's, and still only strace's
        capture.read_all()
        accounting = capture.accounting()
    assert accounting.hardware == {"rw": 2 * 550, "w": 2 * 350}
    assert accounting.delivered == accounting.hardware


def test_samples_carry_the_sampled_registers(start_target):
    target = start_target(3, 0, 0)
    hits, _, _ = capture_run(target)
    samples: list[Sample] = [hit.sample for hit in hits]
    registers = samples[0].registers()
    assert set(registers) == {
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip", "flags", "cs", "ss",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    }  # fmt: skip
    assert registers["cs"] & 3 == 3  # user mode
    # touch_write(i) stores i from a register: the low byte of some register is i
    for index, sample in enumerate(samples):
        assert index in {value & 0xFF for value in sample.regs}


def test_a_failing_drain_thread_ends_the_reads_with_its_error_instead_of_hanging(
    start_target, monkeypatch
):
    sweeps, original_read = 0, ring.Ring.read

    def failing_read(self, keep=None):
        nonlocal sweeps
        sweeps += 1
        if sweeps > 3:
            raise OSError(errno.EIO, "injected")
        return original_read(self, keep)

    monkeypatch.setattr(ring.Ring, "read", failing_read)
    target = start_target(2_000, 0, 0)
    with Capture(target.pid, target.address, 1, SMALL_STACK) as capture:
        target.go()
        target.wait_done()
        deadline = time.monotonic() + 10
        while not capture.drained and time.monotonic() < deadline:
            capture.read(0.1)
        assert capture.drained  # before: the end never came, read() waited forever
        assert capture.failure == "the perf rings could not be read on: OSError(5, 'injected')"
    assert target.finish() == 1_999 % 256


def test_a_spill_file_cut_short_ends_the_reads_in_one_line(start_target, tmp_path):
    target = start_target(2_000, 0, 0)
    config = small_stack(max_queued_bytes=4096, spill_dir=str(tmp_path))
    with Capture(target.pid, target.address, 1, config) as capture:
        target.go()
        target.wait_done()
        capture.stop()  # no chunk written after the cut: it would leave a hole of zeros
        assert capture.spill.waiting > 0
        os.ftruncate(capture.spill._file.fileno(), 0)  # a disk error, as far as reading goes
        with pytest.raises(
            PerfError, match=r"^cannot read the spill file back: 0 of \d+ bytes came back$"
        ):
            capture.read_all()
    assert target.finish() == 1_999 % 256
