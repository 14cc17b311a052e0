"""Where the perf engine puts its loss lines: the count from the RW events' own lost counters
(a PERF_RECORD_LOST counts every event of its ring), a throttle as an unknown count, each in
time order, and whatever the rings never reported at the end.

A kernel throttles only past kernel.perf_event_max_sample_rate, a machine-wide setting, so
the capture's consumer side is played here from records as the parser gives them."""

from __future__ import annotations

import pytest

from gdb_qznusnih.perf.capture import Accounting, CaptureConfig
from gdb_qznusnih.perf.engine import PerfWatch, WatchRequest
from gdb_qznusnih.perf.events import WRITE_EVENT_ONLY, EventConfig, PerfError
from gdb_qznusnih.perf.records import Lost, Throttle
from gdb_qznusnih.sinks.logs import LogSinks

SECOND = 1_000_000_000


class Played:
    """The consumer side of a Capture: batches of records, then drained."""

    failure = None

    def __init__(self, batches, lost_by_batch, hardware_lost_at_end):
        self._batches = list(batches)
        self._lost_by_batch = list(lost_by_batch)  # the RW events' lost counter after each
        self._lost = 0
        self._at_end = hardware_lost_at_end
        self.drained = False
        self.settled_ns = 0

    def read(self, timeout):
        if not self._batches:
            self.drained = True
            return []
        self._lost = self._lost_by_batch.pop(0)
        return self._batches.pop(0)

    def counters(self):
        return {"rw": 0, "w": 0}, {"rw": self._lost, "w": 0}

    def stop(self):
        pass

    def accounting(self):
        return Accounting({"rw": self._at_end, "w": 0}, {"rw": 0, "w": 0}, {}, 0, 0, 0, 0, 0)


class PlayedWriteOnly(Played):
    """A write-only watch's capture: its one kind of event, W, samples every access."""

    def counters(self):
        return {"w": 0}, {"w": self._lost}

    def accounting(self):
        return Accounting({"w": self._at_end}, {"w": 0}, {}, 0, 0, 0, 0, 0, sampling_kind="w")


def play(batches, lost_by_batch, hardware_lost_at_end, played=Played, config=None):
    shown = []
    request = WatchRequest(pid=1, address=0x1000)
    watch = PerfWatch(request, LogSinks(writer=shown.append), config)
    watch._capture = played(batches, lost_by_batch, hardware_lost_at_end)
    watch._clock_offset = 0.0
    watch.stop()
    return [line.split("  ", 2)[1] for line in shown]


def test_each_lost_record_says_the_new_losses_of_the_rw_events_and_a_throttle_unknown():
    batches = [
        [Lost("w", 9, 2 * SECOND)],  # 9 samples of the ring, 4 of them RW ones so far
        [Throttle("w", 3 * SECOND, True), Throttle("rw", 3 * SECOND, True)],
        [Lost("rw", 3, 4 * SECOND), Lost("rw", 2, 5 * SECOND)],  # the counter says 6 in all
    ]
    assert play(batches, [4, 4, 6], hardware_lost_at_end=6) == [
        "4 accesses not logged here (ring overflow)",
        "accesses not logged here (throttled, how many is not known)",
        "2 accesses not logged here (ring overflow)",
    ]


def test_losses_no_record_reported_are_said_at_the_end():
    # a ring still full at the end writes no PERF_RECORD_LOST: the counters still know
    assert play([[Lost("rw", 1, SECOND)]], [1], hardware_lost_at_end=5) == [
        "1 access not logged here (ring overflow)",
        "4 accesses not logged here (ring overflow)",
    ]


def test_a_write_only_watch_says_the_losses_of_its_w_events():
    config = CaptureConfig(events=EventConfig(kinds=WRITE_EVENT_ONLY))
    batches = [[Lost("w", 3, SECOND)], [Throttle("w", 2 * SECOND, True)]]
    assert play(batches, [3, 3], 7, PlayedWriteOnly, config) == [
        "3 accesses not logged here (ring overflow)",
        "accesses not logged here (throttled, how many is not known)",
        "4 accesses not logged here (ring overflow)",
    ]


class PlayedFailing(Played):
    """A capture whose drain thread failed: its reads end, and it says why."""

    failure = "the perf rings could not be read on: OSError(5, 'injected')"


def test_a_failed_capture_logs_what_came_then_ends_the_watch_with_its_reason():
    shown = []
    watch = PerfWatch(WatchRequest(pid=1, address=0x1000), LogSinks(writer=shown.append))
    watch._capture = PlayedFailing([[Lost("rw", 2, SECOND)]], [2], 2)
    watch._clock_offset = 0.0
    with pytest.raises(PerfError) as raised:
        watch.stop()
    said = [line.split("  ", 2)[1] for line in shown]
    assert said == ["2 accesses not logged here (ring overflow)"]
    assert str(raised.value) == (
        "the perf rings could not be read on: OSError(5, 'injected'); "
        "every access copied before it is logged"
    )
