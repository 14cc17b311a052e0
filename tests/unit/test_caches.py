"""The cache registry: one bound policy, one clear for every cache of a watch."""

from __future__ import annotations

from gdb_qznusnih.caches import CacheRegistry
from gdb_qznusnih.record.access import Frame, Record
from gdb_qznusnih.sinks.logs import LogSinks


def test_a_full_cache_starts_again_and_clear_empties_all():
    caches = CacheRegistry(limit=3)
    a, b = caches.cache("a"), caches.cache("b")
    for key in range(3):
        a.remember(key, key)
    assert a.remember(3, "x") == "x"
    assert dict(a) == {3: "x"}
    b.remember("k", 1)
    assert caches.sizes() == {"a": 1, "b": 1}
    caches.clear()
    assert caches.sizes() == {"a": 0, "b": 0}


def test_the_sinks_cache_in_the_registry_they_are_given(tmp_path):
    caches = CacheRegistry()
    sinks = LogSinks(prefix=str(tmp_path / "w"), quiet=True, caches=caches)
    sinks.open()
    frames = (Frame(0, 0x401000, "main", "m.c", 3),)
    for seq in (1, 2):
        sinks.emit(Record(seq, "write", 0x10, 1, 0, seq, 2, 2, 0x401000, "movb $0x1,(%rax)",
                          0.0, frames))  # fmt: skip
    sinks.close()
    assert caches.sizes() == {
        "text bodies": 1, "text bodies by call path": 1, "json frames": 1,
        "json frames by call path": 1, "json insns": 1,
    }  # fmt: skip
    caches.clear()
    assert set(caches.sizes().values()) == {0}


def test_an_identity_cache_knows_the_object_itself_not_an_equal_one():
    caches = CacheRegistry(limit=2)
    paths = caches.identity_cache("by path")
    path = (Frame(0, 0x401000, "main", "m.c", 3),)
    assert paths.keep(path, "text") == "text"
    assert paths.recall(path) == "text"
    assert paths.recall((Frame(0, 0x401000, "main", "m.c", 3),)) is None  # equal, not it
    assert paths.recall(path, ("insn", False)) is None  # another detail
    paths.keep(path, "with insn", ("insn", False))
    assert paths.recall(path, ("insn", False)) == "with insn"
    paths.keep((Frame(0, 0x402000),), "third")  # over the limit: starts again
    assert paths.recall(path) is None
    assert caches.sizes() == {"by path": 1}
    caches.clear()
    assert caches.sizes() == {"by path": 0}
