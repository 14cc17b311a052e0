"""The perf engine's ring sizes and wake-up interval, from the CPU count and the stack copy."""

from __future__ import annotations

import mmap

from gdb_qznusnih.launcher.perf_watch import ROOT_RINGS_TOTAL_PAGES, root_ring_pages
from gdb_qznusnih.perf.capture import DEFAULT_RING_PAGES, wakeup_events_for
from gdb_qznusnih.perf.events import DEFAULT_WAKEUP_EVENTS


def test_root_rings_are_64_mib_a_cpu_up_to_256_mib_in_all():
    sizes = {cpus: root_ring_pages(cpus) * mmap.PAGESIZE >> 20 for cpus in (1, 2, 4, 8, 16)}
    assert sizes == {1: 64, 2: 64, 4: 64, 8: 32, 16: 16}
    assert root_ring_pages(6) * 6 <= ROOT_RINGS_TOTAL_PAGES  # not a power of 2 of CPUs


def test_root_rings_never_shrink_below_the_default():
    assert root_ring_pages(4096) == DEFAULT_RING_PAGES


def test_the_drain_thread_wakes_at_an_eighth_of_a_ring():
    # 64 MiB of 4 KiB-stack samples (4,320 bytes each): 15,534 fit, an eighth is 1,941
    assert wakeup_events_for(16384, 4096) == 16384 * mmap.PAGESIZE // 4320 // 8 == 1941
    assert wakeup_events_for(1024, 512) == 1024 * mmap.PAGESIZE // 736 // 8 == 712


def test_a_small_ring_keeps_the_default_wakeup():
    assert wakeup_events_for(1, 512) == DEFAULT_WAKEUP_EVENTS
