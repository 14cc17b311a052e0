#!/usr/bin/env python3
"""Records per second of the perf engine's consumer alone, on a recorded hot-loop run.

The raw ring chunks of one real run of bench/hotloop.c under the perf events (perf/capture.py's
Capture, with the launcher's EventConfig and rings) are recorded into memory first.  Then each
replay feeds them, parsed and paired as Capture.read does, to a PerfWatch armed on the target
while it waited (its unwinder, the symbolizer, the record builder, the summary) with real
LogSinks writing PREFIX.jsonl/.reads.log/.writes.log to a temporary directory (the terminal
off, as --quiet), and times it from the first chunk to the last record flushed.  That figure
hardly depends on the target's speed or the machine's load; best of --repeat.

The replays run in a process of their own per checkout, armed on the same waiting target:
--also CHECKOUT adds another checkout's package (`git worktree add /tmp/before COMMIT`),
replayed interleaved with this one on the very same chunks, and every replay's logs and
summary must be byte-identical to the first one's.  Run as root.

Usage: bench/bench_consumer.py [--rounds N] [--repeat K] [--also CHECKOUT] [--profile STATS]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARMED, REPLAY, QUIT = "armed", "replay", "quit"


# ---------------------------------------------------------------- recording (this checkout)


def record(pid: int, address: int, loop) -> dict:
    """Let the waiting loop run under a real Capture; every chunk its rings gave, in order."""
    from gdb_qznusnih.launcher.perf_watch import capture_config
    from gdb_qznusnih.options import WatchOptions
    from gdb_qznusnih.perf import ring
    from gdb_qznusnih.perf.capture import Capture

    chunks: list[tuple[int, int, bytes]] = []  # (read time ns, ring number, bytes)
    ring_numbers: dict[int, int] = {}
    original_read = ring.Ring.read

    def recording_read(self, keep=None):
        def recording_keep(spans, length):
            chunk = b"".join(spans)
            number = ring_numbers.setdefault(id(self), len(ring_numbers))
            chunks.append((time.monotonic_ns(), number, chunk))
            return keep([chunk], length) if keep is not None else chunk

        return original_read(self, recording_keep)

    ring.Ring.read = recording_read
    try:
        with Capture(pid, address, 1, capture_config(WatchOptions(), pid)) as capture:
            layouts = {event.id: (event.kind, event.sample_type) for event in capture.events}
            loop.go()
            while loop.proc.poll() is None:
                capture.read(0.05)  # parsed and dropped: the queue stays short
            loop.seconds()
            capture.read_all()
            accounting = capture.accounting()
    finally:
        ring.Ring.read = original_read
    if not accounting.complete:
        sys.exit(f"bench: the recording lost {accounting.lost('rw')} accesses; run it again")
    return {"layouts": layouts, "chunks": chunks, "hits": accounting.hits}


# ---------------------------------------------------------------- replaying (any checkout)


class Recording:
    """The recorded chunks, loaded once the run is over (the watches are armed before)."""

    layouts: dict = {}
    chunks: list = []


class ReplayCapture:
    """Stands in for perf.capture.Capture in PerfWatch.arm(): read() gives the hits and
    records of the recorded chunks, one chunk at a time, as Capture.read gives a sweep's."""

    failure = None  # the recording's drain thread ended well (checked)

    def __init__(self, pid, address, length, config) -> None:
        self.drained = False
        self.settled_ns = 0
        self._next = 0
        self._parser = None  # at the first read: the recording is loaded by then
        self._pairers: dict = {}

    def start(self) -> None:
        pass

    def read(self, timeout: float | None = None) -> list:
        from gdb_qznusnih.perf.hits import PAIR_WINDOW_NS, HitPairer
        from gdb_qznusnih.perf.records import RecordParser, Sample

        out: list = []
        if self.drained:
            return out
        if self._parser is None:
            self._parser = RecordParser(Recording.layouts)
        if self._next == len(Recording.chunks):
            for pairer in self._pairers.values():
                out.extend(pairer.flush())
            self.drained = True
            return out
        read_ns, number, chunk = Recording.chunks[self._next]
        self._next += 1
        pairer = self._pairers.get(number) or self._pairers.setdefault(number, HitPairer())
        for item in self._parser.parse(chunk):
            if type(item) is Sample:
                out.extend(pairer.add(item))
            else:
                out.append(item)
        settled = read_ns - PAIR_WINDOW_NS
        for each in self._pairers.values():
            out.extend(each.flush_older_than(settled))
        self.settled_ns = max(self.settled_ns, settled)
        return out

    def counters(self):
        return {"rw": 0, "w": 0}, {"rw": 0, "w": 0}  # a lossless recording (checked)

    def accounting(self):
        return _NoLoss()

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class _NoLoss:
    throttled = 0
    spilled, spill_dir = 0, ""  # nothing waited on disk

    @staticmethod
    def lost(kind: str | None = None) -> int:
        return 0


def replayer(args: argparse.Namespace) -> None:
    """One checkout's replays: arm --repeat watches on the waiting target, then one replay
    per REPLAY line, a JSON result line each."""
    sys.path.insert(0, str(args.replayer))
    from gdb_qznusnih.caches import CacheRegistry
    from gdb_qznusnih.launcher import perf_watch
    from gdb_qznusnih.options import WatchOptions
    from gdb_qznusnih.perf import engine
    from gdb_qznusnih.sinks.logs import LogSinks

    engine.Capture = ReplayCapture
    symbolizer = perf_watch.start_symbolizer(args.pid)
    options = WatchOptions()
    config = perf_watch.capture_config(options, args.pid, note=lambda text: None)
    request = perf_watch.watch_request(options, args.pid, args.address)
    watches = []
    for number in range(args.repeat):
        prefix = str(args.workdir / f"replay{number}")
        caches = CacheRegistry()
        sinks = LogSinks(prefix=prefix, quiet=True, caches=caches)
        sinks.open()
        watch = engine.PerfWatch(request, sinks, config, symbolizer=symbolizer, caches=caches)
        watch.summary.name_code = perf_watch.code_namer(symbolizer)
        watch.arm()
        watch._clock_offset = args.clock_offset  # the same times in every replay
        watches.append((watch, sinks, prefix))
    getattr(perf_watch, "collect_seldom", lambda: None)()  # as the launcher, once armed
    print(ARMED, flush=True)
    for line in sys.stdin:
        if line.strip() != REPLAY:
            break
        if not Recording.chunks:
            with open(args.recording, "rb") as saved:
                loaded = pickle.load(saved)
            Recording.layouts, Recording.chunks = loaded["layouts"], loaded["chunks"]
        last = len(watches) == 1
        if last and args.profile is not None:
            profile = cProfile.Profile()
            result = profile.runcall(replay, *watches.pop(0))
            profile.dump_stats(args.profile)
        else:
            result = replay(*watches.pop(0))
        print(json.dumps(result), flush=True)
    symbolizer.close()


def replay(watch, sinks, prefix: str) -> dict:
    started, cpu_started = time.perf_counter(), time.thread_time()
    while watch.poll(0):
        pass
    watch.stop()
    seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    watch.close()
    sinks.close()
    digest = hashlib.sha256()
    for suffix in (".jsonl", ".reads.log", ".writes.log"):
        path = Path(prefix + suffix)
        digest.update(path.read_bytes())
        path.unlink()
    summary = watch.summary.to_json()
    del summary["duration"], summary["hits_per_second"]
    digest.update(json.dumps(summary).encode())
    return {"records": watch.seq, "seconds": seconds, "cpu": cpu, "digest": digest.hexdigest()}


# ---------------------------------------------------------------- the coordinator


def start_replayer(checkout: Path, pid: int, address: int, args, tmp: Path, offset: float):
    workdir = tmp / f"replayer{len(list(tmp.glob('replayer*')))}"
    workdir.mkdir()
    profile = ["--profile", str(args.profile)] if args.profile and checkout == REPO else []
    proc = subprocess.Popen(
        [sys.executable, __file__, "--replayer", str(checkout), "--pid", str(pid),
         "--address", str(address), "--repeat", str(args.repeat), "--workdir", str(workdir),
         "--recording", str(tmp / "recording.pickle"), "--clock-offset", repr(offset),
         *profile],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )  # fmt: skip
    if proc.stdout.readline().strip() != ARMED:
        sys.exit(f"bench: the replayer of {checkout} did not arm")
    return proc


def ask_replay(proc) -> dict:
    proc.stdin.write(REPLAY + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        sys.exit("bench: a replayer died")
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25_000, help="2 hits a round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--also", type=Path, metavar="CHECKOUT", help="another checkout's row")
    parser.add_argument("--profile", type=Path, help="cProfile of this checkout's last replay")
    parser.add_argument("--replayer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--address", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--recording", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clock-offset", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replayer is not None:
        replayer(args)
        return
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from hot_loop import HotLoop, build

    checkouts = {"this checkout": REPO}
    if args.also is not None:
        checkouts["--also " + str(args.also)] = args.also.resolve()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        loop = HotLoop(build(tmp), args.rounds)
        offset = time.time() - time.monotonic()
        replayers = {
            name: start_replayer(path, loop.pid, loop.address, args, tmp, offset)
            for name, path in checkouts.items()
        }
        recorded = record(loop.pid, loop.address, loop)
        with open(tmp / "recording.pickle", "wb") as saved:
            pickle.dump(recorded, saved, protocol=pickle.HIGHEST_PROTOCOL)
        size = sum(len(chunk) for _, _, chunk in recorded["chunks"])
        del recorded["chunks"]
        results: dict[str, list[dict]] = {name: [] for name in checkouts}
        for _ in range(args.repeat):
            for name, proc in replayers.items():
                results[name].append(ask_replay(proc))
        for proc in replayers.values():
            proc.communicate(QUIT + "\n")
    report(args, recorded["hits"], size, results)


def report(args, hits: int, size: int, results: dict[str, list[dict]]) -> None:
    print(
        f"hot loop: {args.rounds:,} rounds, {hits:,} hits recorded ({size / 2**20:.0f} MiB of "
        f"ring chunks), replayed {args.repeat} times through each checkout's consumer"
    )
    first = next(iter(results.values()))[0]
    best: dict[str, dict[str, float]] = {"seconds": {}, "cpu": {}}
    for clock, title in (("seconds", "wall clock"), ("cpu", "the consumer thread's CPU time")):
        print(f"records/s on {title}, best of {args.repeat}:")
        for name, runs in results.items():
            rates = [run["records"] / run[clock] for run in runs]
            best[clock][name] = max(rates)
            shown = ", ".join(f"{rate:,.0f}" for rate in rates)
            print(
                f"  {name:36s} {runs[0]['records']:>7,} records {max(rates):>8,.0f} records/s "
                f"({1e6 / max(rates):.1f} us a record; runs: {shown})"
            )
        if len(results) > 1:
            this, other = best[clock].values()
            print(f"  ratio this checkout / --also: {this / other:.2f}x")
    same = all(run["digest"] == first["digest"] for runs in results.values() for run in runs)
    print(
        "  logs and summary byte-identical across every replay"
        if same
        else "  LOGS DIFFER between replays"
    )
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
