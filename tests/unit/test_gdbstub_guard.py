"""scripts/gdbstub_guard.py's reading of the remote protocol, and its answers for a stub
that is gone (the relay itself runs in tests/qemu/test_robustness.py and test_hardening.py)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "gdbstub_guard", REPO / "scripts" / "gdbstub_guard.py"
)
guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard)


@pytest.mark.parametrize(
    "buffer, payloads, rest",
    [
        (b"", [], 0),
        (b"+", [], 1),  # an ack alone: nothing held back
        (b"+$OK#9a", [b"OK"], 7),
        (b"$m10,1#fb+$g#67", [b"m10,1", b"g"], 15),
        (b"$T05thread:01;#07$00ff", [b"T05thread:01;"], 17),  # the rest is unfinished
        (b"$OK#9", [], 0),  # checksum not all there yet
        (b"\x03", [], 1),  # an interrupt
    ],
)
def test_whole_packets(buffer, payloads, rest):
    assert guard.whole_packets(buffer) == (payloads, rest)


@pytest.mark.parametrize(
    "request_, answer",
    [
        (b"vCont;c:p1.-1", b"X09"),
        (b"vCont;s:p1.1", b"X09"),
        (b"c", b"X09"),
        (b"?", b"X09"),
        (b"vCont?", b"E01"),  # a question, not a resume
        (b"m4a7100,1", b"E01"),
        (b"g", b"E01"),
        (b"p10", b"E01"),
        (b"Z2,4a7100,1", b"OK"),
        (b"z1,ffffffff81000000,1", b"OK"),
        (b"D;1", b"OK"),
        (b"vKill;1", b"OK"),
        (b"k", None),
    ],
)
def test_answer_when_gone(request_, answer):
    assert guard.answer_when_gone(request_) == answer


def test_packet_checksum():
    assert guard.packet(b"OK") == b"$OK#9a"
    assert guard.packet(b"X09") == b"$X09#c1"
