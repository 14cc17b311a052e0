"""The perf capture's pure parts on bytes laid out as the kernel lays them out."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest

from gdb_qznusnih.perf import abi
from gdb_qznusnih.perf.events import (
    READ_AND_WRITE_EVENTS,
    RW_SAMPLE_TYPE,
    W_SAMPLE_TYPE,
    WRITE_EVENT_ONLY,
    EventConfig,
    PerfError,
    breakpoint_attr,
    check_watch,
    online_cpus,
    watch_kinds,
)
from gdb_qznusnih.perf.hits import HitPairer, WriteHits
from gdb_qznusnih.perf.records import Comm, Lost, Mmap2, RecordParser, Sample, Task, Throttle
from gdb_qznusnih.perf.ring import ring_spans

RW_ID, W_ID = 11, 12
LAYOUTS = {RW_ID: ("rw", RW_SAMPLE_TYPE | abi.SAMPLE_CALLCHAIN), W_ID: ("w", W_SAMPLE_TYPE)}
PERF_DIR = Path(__file__).resolve().parents[2] / "gdb_qznusnih" / "perf"


def record(kind: int, body: bytes, misc: int = 0) -> bytes:
    return struct.pack("<IHH", kind, misc, 8 + len(body)) + body


def trailer(identifier: int, time: int = 5) -> bytes:
    return struct.pack("<IIQQ", 1, 2, time, identifier)


def rw_sample(ip=0x401000, tid=7, time=100, stack=b"S" * 16, reserved=32, callchain=()):
    body = struct.pack("<QQIIQ", RW_ID, ip, 7, tid, time)
    body += struct.pack(f"<Q{len(callchain)}Q", len(callchain), *callchain)
    regs = list(range(100, 100 + len(abi.REGISTER_NAMES)))
    body += struct.pack(f"<Q{len(regs)}Q", 2, *regs)
    body += (
        struct.pack("<Q", reserved) + stack.ljust(reserved, b"\0") + struct.pack("<Q", len(stack))
    )
    return record(abi.RECORD_SAMPLE, body, misc=2)


def w_sample(ip=0x401000, tid=7, time=103):
    return record(abi.RECORD_SAMPLE, struct.pack("<QQIIQ", W_ID, ip, 7, tid, time), misc=2)


def test_ring_spans_without_and_with_wrap_around():
    data = memoryview(bytes(range(16)))
    assert list(map(bytes, ring_spans(data, 4, 10))) == [bytes(range(4, 10))]
    wrapped = ring_spans(data, 16 * 3 + 12, 16 * 4 + 3)
    assert list(map(bytes, wrapped)) == [bytes([12, 13, 14, 15]), bytes([0, 1, 2])]
    assert list(map(bytes, ring_spans(data, 32, 48))) == [bytes(data)]


def test_rw_sample_with_callchain_registers_and_stack():
    kernel_pc = 0xFFFFFFFF81234567
    chain = (abi.CONTEXT_KERNEL, kernel_pc)
    (sample,) = RecordParser(LAYOUTS).parse(rw_sample(callchain=chain))
    assert (sample.kind, sample.ip, sample.pid, sample.tid, sample.time) == (
        "rw",
        0x401000,
        7,
        7,
        100,
    )
    assert sample.callchain == (kernel_pc,)
    assert sample.register("rax") == 100 and sample.register("r15") == 119
    assert sample.registers()["rip"] == 108
    assert (sample.stack, sample.dyn_size, sample.kernel_mode) == (b"S" * 16, 16, False)


def test_a_user_mode_sample_without_kernel_frames_and_one_without_registers():
    (sample,) = RecordParser(LAYOUTS).parse(rw_sample(stack=b"T" * 24))
    assert (sample.callchain, sample.regs[0], sample.stack, sample.dyn_size) == (
        (),
        100,
        b"T" * 24,
        24,
    )
    body = struct.pack("<QQIIQ", RW_ID, 0x401000, 7, 7, 100) + struct.pack("<Q", 0)
    body += struct.pack("<Q", 0)  # register ABI 0: a kernel thread has no user registers
    body += struct.pack("<Q", 8) + b"U" * 8 + struct.pack("<Q", 8)
    (bare,) = RecordParser(LAYOUTS).parse(record(abi.RECORD_SAMPLE, body, misc=1))
    assert (bare.regs, bare.stack, bare.kernel_mode) == (None, b"U" * 8, True)


def test_a_stack_stays_what_was_sampled_when_the_chunk_it_came_in_changes():
    chunk = bytearray(rw_sample(stack=b"S" * 16))
    (sample,) = RecordParser(LAYOUTS).parse(chunk)
    chunk[:] = bytes(len(chunk))  # a reader reusing its buffer for the next chunk
    assert sample.stack == b"S" * 16


def test_w_sample_and_side_band_records_in_one_chunk():
    comm = record(
        abi.RECORD_COMM,
        struct.pack("<II", 9, 9) + b"prog\0\0\0\0" + trailer(RW_ID),
        misc=abi.MISC_COMM_EXEC,
    )
    lost = record(abi.RECORD_LOST, struct.pack("<QQ", RW_ID, 42) + trailer(RW_ID, 77))
    throttle = record(abi.RECORD_THROTTLE, struct.pack("<QQQ", 88, W_ID, 0) + trailer(W_ID))
    fork = record(abi.RECORD_FORK, struct.pack("<IIIIQ", 9, 1, 10, 9, 99) + trailer(RW_ID))
    mmap2 = record(
        abi.RECORD_MMAP2,
        struct.pack("<IIQQQ", 9, 9, 0x7F0000, 0x2000, 0x1000) + bytes(24)
        + struct.pack("<II", 5, 2) + b"/lib/x.so\0\0\0\0\0\0\0" + trailer(RW_ID),
    )  # fmt: skip
    unknown = record(abi.RECORD_SAMPLE, struct.pack("<QQIIQ", 999, 1, 2, 3, 4))
    parser = RecordParser(LAYOUTS)
    out = parser.parse(w_sample() + comm + lost + throttle + fork + mmap2 + unknown)
    assert [type(r) for r in out] == [Sample, Comm, Lost, Throttle, Task, Mmap2]
    w, c, lo, t, f, m = out
    assert (w.kind, w.regs, w.stack, w.kernel_mode) == ("w", None, b"", False)
    assert (c.pid, c.comm, c.exec) == (9, "prog", True)
    assert (lo.kind, lo.count, lo.time) == ("rw", 42, 77)
    assert (t.kind, t.time, t.stopped) == ("w", 88, True)
    assert (f.what, f.pid, f.ppid, f.tid, f.ptid, f.time) == ("fork", 9, 1, 10, 9, 99)
    assert (m.start, m.length, m.pgoff, m.prot, m.flags, m.filename) == (
        0x7F0000, 0x2000, 0x1000, 5, 2, "/lib/x.so"
    )  # fmt: skip
    assert parser.unknown == 1


def test_a_record_running_past_the_chunk_is_refused():
    with pytest.raises(ValueError, match="corrupt perf record"):
        RecordParser(LAYOUTS).parse(rw_sample()[:-8])


def sample(kind, ip=1, tid=7, time=100):
    return Sample(kind, ip, 7, tid, time)


def test_pairing_in_either_order_a_lone_rw_is_a_read_a_lone_w_is_counted():
    pairer = HitPairer()
    assert pairer.add(sample("rw", time=100)) == []
    (write,) = pairer.add(sample("w", time=104))
    assert write.hardware_saw_write and write.sample.kind == "rw"
    assert pairer.add(sample("w", ip=2, time=200)) == []
    (write_first,) = pairer.add(sample("rw", ip=2, time=203))
    assert write_first.hardware_saw_write and write_first.sample.time == 203
    assert pairer.add(sample("rw", ip=3, time=300)) == []
    (read,) = pairer.add(sample("rw", ip=3, time=400))  # the next trap settles the first
    assert not read.hardware_saw_write and read.sample.time == 300
    (other_thread,) = pairer.add(sample("w", ip=3, tid=8, time=401))  # not its partner
    assert not other_thread.hardware_saw_write and other_thread.sample.time == 400
    assert pairer.flush() == [] and pairer.writes_without_rw_sample == 1


def test_pairing_needs_the_same_thread_instruction_and_time():
    pairer = HitPairer(window_ns=50)
    pairer.add(sample("rw", time=100))
    (read,) = pairer.add(sample("w", tid=8, time=101))
    assert not read.hardware_saw_write
    assert pairer.flush() == [] and pairer.writes_without_rw_sample == 1
    pairer.add(sample("rw", time=100))
    (read,) = pairer.add(sample("w", time=151))
    assert not read.hardware_saw_write


def test_a_pending_sample_settles_once_its_partner_would_have_been_read():
    pairer = HitPairer()
    pairer.add(sample("rw", time=1000))
    assert pairer.flush_older_than(1000) == []
    (read,) = pairer.flush_older_than(1001)
    assert not read.hardware_saw_write and pairer.flush() == []


@pytest.mark.parametrize(
    ("address", "length", "message"),
    [
        (0x1001, 4, "0x1001 is not aligned to 4 bytes"),
        (0x1000, 16, "watch length must be 1, 2, 4 or 8 bytes, not 16"),
        (-8, 8, "-0x8 is not an address"),
        (1 << 47, 1, "0x800000000000 is a kernel address"),
        # kernel mode watched or not: the watch is of the process's own memory
        (0xFFFFFFFF81000000, 8, "0xffffffff81000000 is a kernel address"),
    ],
)
def test_check_watch_refusals(address, length, message):
    with pytest.raises(PerfError, match=message):
        check_watch(address, length)


def test_attrs_rw_samples_everything_w_only_says_when():
    config = EventConfig(stack_bytes=2048, exclude_kernel=False)
    rw, w = (breakpoint_attr(kind, 0x1000, 1, config) for kind in ("rw", "w"))
    assert (rw.bp_type, w.bp_type) == (abi.HW_BREAKPOINT_RW, abi.HW_BREAKPOINT_W)
    assert (
        rw.sample_type == RW_SAMPLE_TYPE | abi.SAMPLE_CALLCHAIN and w.sample_type == W_SAMPLE_TYPE
    )
    assert (rw.sample_stack_user, w.sample_stack_user, w.sample_regs_user) == (2048, 0, 0)
    assert rw.flags & abi.FLAG_MMAP2 and not w.flags & abi.FLAG_MMAP2
    assert rw.flags & abi.FLAG_INHERIT and rw.flags & abi.FLAG_INHERIT_THREAD
    assert not rw.flags & abi.FLAG_EXCLUDE_KERNEL and rw.flags & abi.FLAG_EXCLUDE_CALLCHAIN_USER
    assert bin(rw.sample_regs_user).count("1") == len(abi.REGISTER_NAMES) == 20
    per_thread = breakpoint_attr("rw", 0x1000, 1, EventConfig(threads="per-thread"))
    assert not per_thread.flags & abi.FLAG_INHERIT and per_thread.flags & abi.FLAG_EXCLUDE_KERNEL


def test_a_write_only_watch_is_the_w_event_alone_sampling_what_records_need():
    assert [watch_kinds(access) for access in ("rw", "r", "w")] == [
        READ_AND_WRITE_EVENTS, READ_AND_WRITE_EVENTS, WRITE_EVENT_ONLY
    ]  # fmt: skip
    config = EventConfig(stack_bytes=2048, exclude_kernel=False, kinds=WRITE_EVENT_ONLY)
    w = breakpoint_attr("w", 0x1000, 1, config)
    assert w.bp_type == abi.HW_BREAKPOINT_W
    assert w.sample_type == RW_SAMPLE_TYPE | abi.SAMPLE_CALLCHAIN
    assert (w.sample_stack_user, w.sample_regs_user) == (2048, abi.REGISTER_MASK)
    assert w.flags & abi.FLAG_MMAP2 and w.flags & abi.FLAG_COMM
    with pytest.raises(PerfError, match="events must be rw and w, or w alone"):
        EventConfig(kinds=("rw",)).check()


def test_each_sample_of_a_write_only_watch_is_a_write_hit_at_once():
    hits = WriteHits()
    first, second = Sample("w", 0x10, 1, 1, 100), Sample("w", 0x10, 1, 1, 101)
    assert [(hit.sample, hit.hardware_saw_write) for hit in hits.add(first) + hits.add(second)] == [
        (first, True), (second, True)
    ]  # fmt: skip
    assert hits.flush_older_than(10**12) == hits.flush() == []
    assert hits.writes_without_rw_sample == 0


def test_online_cpus():
    assert online_cpus("0-3,6\n") == [0, 1, 2, 3, 6]
    assert online_cpus("0\n") == [0]


def _package_imports(path: Path) -> list[str]:
    """The gdb and gdb_qznusnih modules a file imports (`from X import Y` as X.Y)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in ("gdb", "gdb_qznusnih")]
    return found


def test_the_perf_package_imports_only_the_stdlib_itself_and_procfs():
    procfs = "gdb_qznusnih.launcher.procfs"
    for path in PERF_DIR.glob("*.py"):
        if path.name == "engine.py":  # joins the building blocks to the pipeline
            continue
        for name in _package_imports(path):
            inside = name.startswith("gdb_qznusnih.perf.")
            assert inside or name == procfs or name.startswith(procfs + "."), (path, name)
    assert _package_imports(PERF_DIR.parent / "launcher" / "procfs.py") == []


def test_the_perf_engine_never_imports_gdb():
    tree = ast.parse((PERF_DIR / "engine.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(alias.name.split(".")[0] != "gdb" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] != "gdb"
            assert not (node.module or "").startswith(("gdb_qznusnih.hit", "gdb_qznusnih.arm"))
