"""A write-only perf watch (--access w) on one debug register, on real processes: the W event
alone, every sample a write (an RMW logged as a write, reads never), the gdb engine's records
on mix.c, four write-only watches of one process where two read/write ones fill the four
registers, and the loss accounting of a ring too small for the writes."""

from __future__ import annotations

import collections
import re
import signal
from pathlib import Path

import pytest

from gdb_qznusnih.perf.capture import CaptureConfig
from gdb_qznusnih.perf.events import WRITE_EVENT_ONLY, EventConfig, online_cpus
from tests.perf.perf_helpers import (
    assert_untouched,
    capture_run,
    launcher,
    records,
    run_gdb,
    wait_armed,
    watch_mix,
)
from tests.records import comparable, read_jsonl

pytestmark = pytest.mark.perf
WRITES, READS, RMWS = 200, 100, 10
# mix.c's writes, in program order, of area[11] and of the other bytes of its word area[8..15]
MIX_WRITES_OF_11 = ["store_new", "store_same", "add_zero", "increment", "locked_increment",
                    "exchange", "wide_store", "string_fill", "store_new"]  # fmt: skip
MIX_WRITES_OF_8 = ["wide_store", "string_fill"]
REFUSED_IN_GDB = (
    "no debug register left: 4 of 4 in use, the perf engine needs {}; free one with "
    "'qzn-unwatch N' or 'delete' on a hardware watchpoint"
)


def test_a_write_only_capture_opens_the_w_event_alone_and_each_sample_is_a_write(start_target):
    target = start_target(WRITES, READS, RMWS)
    config = CaptureConfig(events=EventConfig(stack_bytes=512, kinds=WRITE_EVENT_ONLY))

    def opens_w_alone(capture):
        assert [event.kind for event in capture.events] == ["w"] * len(online_cpus())

    hits, _, accounting = capture_run(target, config, armed=opens_w_alone)
    assert accounting.hardware == accounting.delivered == {"w": WRITES + RMWS}
    assert accounting.kernel_lost == {"w": 0} and accounting.lost() == 0
    assert (accounting.hits, accounting.hits_with_write) == (WRITES + RMWS, WRITES + RMWS)
    assert accounting.complete and len(hits) == WRITES + RMWS
    by_ip = collections.Counter(hit.sample.ip for hit in hits)
    assert sorted(by_ip.values()) == [RMWS, WRITES]  # the loads never trap a W event
    sample = hits[0].sample  # what the RW event samples in a read/write watch
    assert (sample.kind, sample.dyn_size, sample.register("rip")) == ("w", 512, sample.ip)
    assert target.finish() == (WRITES - 1 + RMWS) % 256


def test_write_only_mix_gives_the_gdb_engines_records(build_c, tmp_path):
    program = build_c("mix")
    by_perf, perf_err, _ = watch_mix(program, tmp_path, "perf", "--access", "w")
    by_gdb, gdb_err, _ = watch_mix(program, tmp_path, "gdb", "--access", "w")
    assert "; takes 1 debug register;" in perf_err.splitlines()[0], perf_err
    assert [comparable(r) for r in by_perf] == [comparable(r) for r in by_gdb]
    assert [(r["kind"], r["frames"][0]["func"]) for r in by_perf] == [
        ("write", func) for func in MIX_WRITES_OF_11
    ]
    # One record builder: where the perf engine knows a value, the gdb engine has the same;
    # the old value of xchg's write is its read half's, from the register it loaded.
    olds = [(p["old"], g["old"]) for p, g in zip(by_perf, by_gdb) if p["old"] is not None]
    assert [p for p, _ in olds] == [g for _, g in olds] == [0, 1, 1, 3, 5, 85]
    values = [(p, g) for p, g in zip(by_perf, by_gdb) if p["value_from"] is not None]
    assert [(p["value"], p["value_from"]) for p, _ in values] == [
        (g["value"], g["value_from"]) for _, g in values
    ]
    assert len(values) == 5  # stores from an immediate or a register, and stos


def start_watch(target, tmp_path: Path, number: int, access: str):
    prefix = tmp_path / f"watch{number}"
    proc = launcher(hex(target.address), str(target.pid), "--engine", "perf", "--access",
                    access, "--log", str(prefix), "--quiet", "--no-html")  # fmt: skip
    return proc, prefix


@pytest.mark.parametrize("accesses", [["w", "w", "w", "w"], ["rw", "w", "w"], ["rw", "rw"]])
def test_watches_fit_the_four_debug_registers_exactly_and_the_next_is_refused(
    start_target, tmp_path, accesses
):
    """One process, one launcher a watch: the kernel gives each its registers, 2 for rw, 1 for w."""
    target = start_target(WRITES, READS, RMWS)
    watches = [start_watch(target, tmp_path, n, access) for n, access in enumerate(accesses)]
    try:
        for (proc, _), access in zip(watches, accesses):
            wanted = "1 debug register" if access == "w" else "2 debug registers"
            assert f"; takes {wanted}; " in wait_armed(proc)
        refused, _ = start_watch(target, tmp_path, len(accesses), "w")
        out, err = refused.communicate(timeout=60)
        assert refused.returncode == 1 and out == "", err
        assert err.splitlines() == [
            f"qznusnih: no hardware debug register left to watch {target.address:#x} (1 byte) "
            f"in process {target.pid}: x86 has 4 and each watch takes 2, 1 with --access w (a "
            "debugger's watchpoints take them too); remove a watch"
        ]
        assert_untouched(target)
        target.go()
        target.wait_done()
        for proc, _ in watches:
            proc.send_signal(signal.SIGINT)
        for proc, _ in watches:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and "watch 1 ended: SIGINT received" in err, err
    finally:
        for proc, _ in watches:
            if proc.poll() is None:
                proc.kill()
    for (_, prefix), access in zip(watches, accesses):
        logged = collections.Counter((r["kind"], r["frames"][0]["func"]) for r in records(prefix))
        expected = {("write", "touch_write"): WRITES, ("write", "touch_rmw"): RMWS}
        if access == "rw":
            expected |= {("read", "touch_read"): READS, ("read", "touch_rmw"): RMWS}
        assert logged == expected, (access, logged)
    assert target.finish() == (WRITES - 1 + RMWS) % 256


def test_four_write_only_watches_inside_gdb_and_the_fifth_refused(build_c, tmp_path):
    watches = [f"qzn-watch --engine perf --access w --log {tmp_path / str(n)} --quiet --no-html "
               f"&area[{n}]" for n in (8, 9, 10, 11, 12)]  # fmt: skip
    result = run_gdb(build_c("mix"), *watches, "qzn-status", "continue")
    assert "Traceback" not in result.stdout + result.stderr
    refused = [line for line in result.stderr.splitlines() if "no debug register" in line]
    assert refused == [REFUSED_IN_GDB.format(1)], result.stderr
    status = re.findall(r"^watch (\d): .+ \(&area\[(\d+)\]\), 1 byte, access w: 0 reads, "
                        r"0 writes; takes 1 debug register; logs", result.stdout, re.M)  # fmt: skip
    assert status == [("1", "8"), ("2", "9"), ("3", "10"), ("4", "11")], result.stdout
    for n in (8, 9, 10):
        logged = read_jsonl(tmp_path / f"{n}.jsonl")
        assert [(r["kind"], r["frames"][0]["func"]) for r in logged] == [
            ("write", func) for func in MIX_WRITES_OF_8
        ], n
    logged = read_jsonl(tmp_path / "11.jsonl")
    assert [r["frames"][0]["func"] for r in logged] == MIX_WRITES_OF_11
    assert not (tmp_path / "12.jsonl").exists() and "mix done" in result.stdout


def test_one_rw_and_two_write_only_watches_fill_the_registers_inside_gdb(build_c, tmp_path):
    def watch(access: str, n: int) -> str:
        return (f"qzn-watch --engine perf --access {access} --log {tmp_path / str(n)} --quiet "
                f"--no-html &area[{n}]")  # fmt: skip

    result = run_gdb(build_c("mix"), watch("rw", 11), watch("w", 8), watch("w", 9),
                     watch("w", 10), "qzn-status", "continue")  # fmt: skip
    refused = [line for line in result.stderr.splitlines() if "no debug register" in line]
    assert refused == [REFUSED_IN_GDB.format(1)], result.stderr
    armed = [line for line in result.stderr.splitlines() if line.startswith("qzn: watch ")]
    assert ["takes 2 debug registers", "takes 1 debug register", "takes 1 debug register"] == [
        re.search(r"takes \d debug registers?", line).group() for line in armed[:3]
    ], armed
    assert len(read_jsonl(tmp_path / "11.jsonl")) == 19  # 10 reads, 9 writes
    for n in (8, 9):
        assert len(read_jsonl(tmp_path / f"{n}.jsonl")) == len(MIX_WRITES_OF_8), n
    assert "mix done" in result.stdout


def test_a_tiny_ring_on_a_write_only_watch_counts_exactly_the_writes_it_lost(
    start_target, tmp_path
):
    writes = 20_000
    target = start_target(writes, writes, 0)  # the reads trap no W event: not in any count
    prefix = tmp_path / "lossy"
    proc = launcher(hex(target.address), str(target.pid), "--engine", "perf", "--access", "w",
                    "--log", str(prefix), "--quiet", "--no-html", "--stack-bytes", "512",
                    "--ring-pages", "1")  # fmt: skip
    wait_armed(proc)
    target.go()
    target.wait_done()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err  # writes lost: not a clean watch
    lines = records(prefix)
    accesses = [line for line in lines if "lost" not in line]
    marks = [line for line in lines if "lost" in line]
    lost_line = next(line for line in out.splitlines() if line.startswith("lost: "))
    lost = int(lost_line.split()[1].replace(",", ""))
    assert lost > 0 and len(accesses) + lost == writes, (len(accesses), lost_line)
    assert {r["kind"] for r in accesses} == {"write"}
    assert sum(mark["lost"] for mark in marks) == lost and len(marks) > 1
    assert {mark["reason"] for mark in marks} == {"ring overflow"}
    markers = Path(f"{prefix}.writes.log").read_text().count("] LOST  ")
    assert markers == len(marks)
    assert target.finish() == (writes - 1) % 256
