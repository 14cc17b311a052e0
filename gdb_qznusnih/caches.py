"""One registry for a watch's caches, one bound policy, one invalidation event.  Pure: no gdb.

What a pc, a call path or an instruction means (its decoding, kind, function and line, and
the text and JSON made from them) never changes until symbols do.  So every such cache of a
watch is a `Cache` from its `CacheRegistry`, and `clear()` on the registry, called when gdb
loads a new objfile (which exec does too), forgets them all at once.  That the address space
changed (exec) is a different fact, handled where memory is read, not here.  The perf
unwinder's rules and remembered unwinds (perf/unwind.py, which imports only the stdlib) are
dropped instead when its module map's generation changes, which the same events bump.

The bound policy is the same everywhere: a cache that reaches `limit` entries is emptied and
starts again.  Hits come from a few sites and paths, so in practice nothing is ever dropped;
the bound only keeps memory flat when something (`--args` values) is not few.
"""

from __future__ import annotations

DEFAULT_LIMIT = 4096


class Cache(dict):
    """A dict with a bound; `remember` is the only way in that respects it."""

    __slots__ = ("name", "limit")

    def __init__(self, name: str, limit: int) -> None:
        super().__init__()
        self.name = name
        self.limit = limit

    def remember(self, key, value):
        """Store and return `value`; empty the cache first when it is full."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


class IdentityCache(Cache):
    """Values per object by its identity, and a detail: for an object many records share (a
    call path's frames tuple, made once per path) whose hash would cost more than the
    lookup should.  Each entry keeps its object alive, so no other object can have its id
    while the entry lives."""

    __slots__ = ()

    def recall(self, obj, detail=None):
        """The value remembered for `obj` and `detail`, or None."""
        entry = self.get((id(obj), detail))
        return None if entry is None else entry[1]

    def keep(self, obj, value, detail=None):
        """Remember and return `value` for `obj` and `detail`."""
        self.remember((id(obj), detail), (obj, value))
        return value


class CacheRegistry:
    """The caches of one watch (or one report), cleared together."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._caches: list[Cache] = []

    def cache(self, name: str) -> Cache:
        """A new empty cache, cleared with the others."""
        cache = Cache(name, self.limit)
        self._caches.append(cache)
        return cache

    def identity_cache(self, name: str) -> IdentityCache:
        """A new empty IdentityCache, cleared with the others."""
        cache = IdentityCache(name, self.limit)
        self._caches.append(cache)
        return cache

    def clear(self) -> None:
        """Forget everything: symbols changed."""
        for cache in self._caches:
            cache.clear()

    def sizes(self) -> dict[str, int]:
        """Entries per cache name, for tests and status."""
        sizes: dict[str, int] = {}
        for cache in self._caches:
            sizes[cache.name] = sizes.get(cache.name, 0) + len(cache)
        return sizes
