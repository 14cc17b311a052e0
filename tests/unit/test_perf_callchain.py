"""perf/callchain.py: a PERF_SAMPLE_CALLCHAIN split at its context markers."""

from __future__ import annotations

from gdb_qznusnih.perf import abi, callchain

KERNEL_IP, KERNEL_RA = 0xFFFFFFFF81D35F79, 0xFFFFFFFF816BAC2B
USER_IP, USER_RA = 0x7F658C2AC2AD, 0x55762CCD7221
PERF_CONTEXT_HV = (1 << 64) - 32
PERF_CONTEXT_GUEST_KERNEL = (1 << 64) - 2176


def test_kernel_then_user_context():
    entries = [abi.CONTEXT_KERNEL, KERNEL_IP, KERNEL_RA, abi.CONTEXT_USER, USER_IP, USER_RA]
    assert callchain.split(entries) == {
        "kernel": (KERNEL_IP, KERNEL_RA),
        "user": (USER_IP, USER_RA),
    }
    assert callchain.kernel_pcs(entries) == (KERNEL_IP, KERNEL_RA)


def test_the_kernel_part_alone_as_exclude_callchain_user_gives_it():
    assert callchain.split([abi.CONTEXT_KERNEL, KERNEL_IP]) == {"kernel": (KERNEL_IP,), "user": ()}


def test_pcs_of_other_contexts_and_before_any_marker_are_dropped():
    entries = [KERNEL_IP, PERF_CONTEXT_HV, 0x1234, PERF_CONTEXT_GUEST_KERNEL, KERNEL_RA,
               abi.CONTEXT_KERNEL, KERNEL_RA]  # fmt: skip
    assert callchain.split(entries) == {"kernel": (KERNEL_RA,), "user": ()}


def test_markers_are_the_kernels_values():
    # include/uapi/linux/perf_event.h: PERF_CONTEXT_KERNEL (__u64)-128, _USER (__u64)-512
    assert abi.CONTEXT_KERNEL == 0xFFFFFFFFFFFFFF80
    assert abi.CONTEXT_USER == 0xFFFFFFFFFFFFFE00
    assert abi.CONTEXT_KERNEL >= abi.CONTEXT_MAX and abi.CONTEXT_USER >= abi.CONTEXT_MAX


def test_an_empty_callchain():
    assert callchain.split([]) == {"kernel": (), "user": ()}
