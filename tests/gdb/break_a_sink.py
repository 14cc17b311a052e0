"""Sourced into gdb after qzn-watch is armed: the 5th JSON line a sink makes raises.

A stand-in for a bug in the extension, to test that a hit's error never takes the target
down: the watch must end with one line and the program run on.
"""

import itertools

from gdb_qznusnih.sinks import formats

_real_encode = formats.JsonLine.encode
_calls = itertools.count(1)


def _broken_encode(self, record, key=None):
    if next(_calls) == 5:
        raise RuntimeError("injected fault")
    return _real_encode(self, record, key)


formats.JsonLine.encode = _broken_encode
