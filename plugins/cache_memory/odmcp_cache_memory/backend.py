"""The in-process cache backend: aiocache ``SimpleMemoryCache`` plus what 0.12.3 lacks.

aiocache's memory cache stores references, has no size bound, and expires keys only through
``loop.call_later`` timers, which die with the event loop that created them. This adapter keeps the
aiocache store for the data and adds, around it:

* **copies**: values are stored as msgspec JSON bytes, so every ``get`` decodes a private copy and a
  caller mutating what it passed to ``set`` (or got from ``get``) never changes the cache. JSON rather
  than msgpack keeps the semantics identical to the Redis backend (e.g. int dict keys become str);
  msgpack decoded a 3 KB order only ~0.7 µs faster.
* **an LRU bound in entries and in bytes**: ``max_entries`` entries and ``max_bytes`` of stored
  payload (the JSON bytes of the values; keys and bookkeeping add roughly 200 B per entry on top).
  Whichever is reached first evicts the least recently used data. A value larger than the whole
  byte budget is not stored. An ``OrderedDict`` of key -> expiry deadline records recency.
* **expiry without timers**: deadlines on the monotonic clock are checked on every read, and a heap
  of deadlines lets every write (and :meth:`purge_expired`, which the plugin calls every few seconds
  while the gateway runs) free the entries that have expired, whether or not they are read again. No
  loop timer is involved, so expiry works in any event loop.
* **superseded list pages freed at once**: the host's list keys embed the store's list generation
  (``<base>:list:g<N>:<digest>``, counter ``<base>:listgen``; see ``gateway/cache.py``). When such a
  counter is incremented, every page of the generation it leaves is dropped right away instead of
  waiting for its TTL or the LRU: no reader can reach them any more.

Counters (``incr``) live in the same store and share the entry bound but are *evicted last*: data
entries go first, counters only when the store holds nothing else. A counter that leaves the store
(expired, evicted, deleted or overwritten) raises a per-process floor, and any counter created later
starts above it, so a generation number is never handed out twice in this process, even after an
eviction. The cost is that a brand-new counter may start above 1 once some counter has left.

All bookkeeping happens between awaits of aiocache memory coroutines that never suspend, so each
operation is atomic with respect to other tasks on the loop.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from odmcp.api import CacheSettings


def _import_aiocache_without_redis() -> None:
    """Import aiocache without its optional redis-py import (~6 MB of RSS a memory-only gateway never uses).

    aiocache 0.12.3's package ``__init__`` imports redis-py whenever it is installed, to register
    ``RedisCache``; 1.0 no longer does. While aiocache loads, ``redis`` is marked absent in
    ``sys.modules`` (the documented way to make an import fail), so aiocache logs "RedisCache
    unavailable" at DEBUG and goes on. The Redis backend imports ``aiocache.backends.redis`` directly,
    which imports redis-py then, so selecting it still works in the same process.
    """
    if "aiocache" in sys.modules or "redis" in sys.modules:
        return
    sys.modules["redis"] = None  # type: ignore[assignment]
    try:
        import aiocache  # noqa: F401
    finally:
        del sys.modules["redis"]


_import_aiocache_without_redis()
from aiocache.backends.memory import SimpleMemoryCache  # noqa: E402

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

#: the host's list-generation key layout (gateway/cache.py):
#: counter ``<base>listgen``, pages ``<base>list:g<N>:<digest>``
GEN_SUFFIX = "listgen"
PAGE_MARK = "list:g"


def _page_group(key: str) -> str | None:
    """``<base>list:g<N>`` for a list-page key, else None."""
    group, sep, _digest = key.rpartition(":")
    if not sep:
        return None
    base, sep, gen = group.rpartition(":" + PAGE_MARK)
    return group if sep and base and gen.isdigit() else None


class MemoryBackend:
    """A process-local cache bounded in entries and bytes, with copy semantics and TTL expiry."""

    name = "memory"
    local = True

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # timeout=None: aiocache's per-op asyncio.wait_for costs ~8 µs and a dict lookup cannot hang.
        self._store = SimpleMemoryCache(timeout=None)
        #: data keys -> monotonic expiry deadline, least recently used first
        self._entries: OrderedDict[str, float] = OrderedDict()
        #: data keys -> size of the stored payload in bytes, and their sum
        self._sizes: dict[str, int] = {}
        self.bytes = 0
        #: counter keys -> expiry deadline (inf: none); values live in the aiocache store as ints
        self._counters: OrderedDict[str, float] = OrderedDict()
        #: highest value any counter held when it left the store; new counters start above it
        self._counter_floor = 0
        #: (deadline, key) of everything that expires; stale pairs are skipped when popped
        self._deadlines: list[tuple[float, str]] = []
        #: list-page group (``<base>list:g<N>``) -> its keys, to drop a superseded generation at once
        self._groups: dict[str, set[str]] = {}

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> MemoryBackend:
        return cls(max_entries=settings.max_entries, max_bytes=settings.max_bytes)

    def __len__(self) -> int:
        """Entries currently held (including expired ones not yet read or purged)."""
        return len(self._entries) + len(self._counters)

    async def get(self, key: str) -> Any:
        deadline = self._entries.get(key)
        now = time.monotonic()
        if deadline is not None:
            if deadline <= now:
                await self._drop_entry(key)
                return None
            raw = await self._store.get(key)
            if raw is None:  # cannot happen unless the store was touched behind our back
                await self._drop_entry(key)
                return None
            self._entries.move_to_end(key)
            return _decode(raw)
        expires = self._counters.get(key)
        if expires is not None:
            if expires <= now:
                await self._retire_counter(key)
                return None
            self._counters.move_to_end(key)
            return await self._store.get(key)
        return None

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:  # a value that expires immediately: nothing to keep, old value must go
            await self.delete(key)
            return
        data = _encode(value)  # before any change, so an unencodable value leaves the cache as it was
        await self.purge_expired()
        if key in self._counters:
            await self._retire_counter(key)
        if len(data) > self.max_bytes:  # would evict everything and still not fit: keep nothing
            if key in self._entries:
                await self._drop_entry(key)
            return
        self.bytes += len(data) - self._sizes.get(key, 0)
        self._sizes[key] = len(data)
        await self._store.set(key, data)
        deadline = time.monotonic() + ttl
        self._entries[key] = deadline
        self._entries.move_to_end(key)
        heapq.heappush(self._deadlines, (deadline, key))
        group = _page_group(key)
        if group is not None:
            self._groups.setdefault(group, set()).add(key)
        await self._evict()

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        if key in self._counters and self._counters[key] > time.monotonic():
            return False
        deadline = self._entries.get(key)
        if deadline is not None and deadline > time.monotonic():
            return False
        if ttl <= 0:  # absent, and "stored" already expired: report success, keep nothing
            if deadline is not None:
                await self._drop_entry(key)
            return True
        await self.set(key, value, ttl)
        return key in self._entries

    async def delete(self, key: str) -> bool:
        deadline = self._entries.get(key)
        if deadline is not None:
            await self._drop_entry(key)
            return deadline > time.monotonic()
        if key in self._counters:
            alive = self._counters[key] > time.monotonic()
            await self._retire_counter(key)
            return alive
        return False

    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Add 1 (a new counter starts above every counter that left); ``ttl`` (re)starts its expiry."""
        await self.purge_expired()
        expires = math.inf if ttl is None else time.monotonic() + ttl
        if key in self._counters:
            old: int = await self._store.get(key)
            value: int = await self._store.increment(key)
            self._counters[key] = expires
            self._counters.move_to_end(key)
        else:
            deadline = self._entries.get(key)
            if deadline is not None:
                if deadline > time.monotonic():
                    raise TypeError(f"cache key {key!r} holds a value, not a counter")
                await self._drop_entry(key)
            old = 0  # readers used generation 0 while the counter was absent
            value = self._counter_floor + 1
            await self._store.set(key, value)
            self._counters[key] = expires
        if ttl is not None:
            heapq.heappush(self._deadlines, (expires, key))
        if key.endswith(":" + GEN_SUFFIX):
            await self._drop_group(f"{key[: -len(GEN_SUFFIX)]}{PAGE_MARK}{old}")
        await self._evict()
        return value

    def lock(self, key: str, lease: float, wait: float) -> None:
        """None: data lives in this process only, so the host's asyncio locks already exclude."""
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release; the data stays (a memory cache is never flushed by closing)."""
        await self._store.close()

    async def purge_expired(self) -> int:
        """Free every entry and counter whose deadline has passed; return how many were freed."""
        now = time.monotonic()
        freed = 0
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if self._entries.get(key) == deadline:
                await self._drop_entry(key)
                freed += 1
            elif self._counters.get(key) == deadline:
                await self._retire_counter(key)
                freed += 1
        if len(heap) > 2 * len(self) + 1024:  # mostly stale pairs (keys re-set or dropped): rebuild
            self._deadlines = [(d, k) for k, d in self._entries.items()]
            self._deadlines += [(d, k) for k, d in self._counters.items() if d != math.inf]
            heapq.heapify(self._deadlines)
        return freed

    # --- internals ---------------------------------------------------------------------------

    async def _drop_entry(self, key: str) -> None:
        del self._entries[key]
        self.bytes -= self._sizes.pop(key, 0)
        group = _page_group(key)
        if group is not None:
            keys = self._groups.get(group)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._groups[group]
        await self._store.delete(key)

    async def _drop_group(self, group: str) -> None:
        for key in list(self._groups.get(group, ())):
            await self._drop_entry(key)

    async def _retire_counter(self, key: str) -> None:
        value = await self._store.get(key)
        if isinstance(value, int) and value > self._counter_floor:
            self._counter_floor = value
        del self._counters[key]
        await self._store.delete(key)

    async def _evict(self) -> None:
        """Shrink to the bounds: least recently used data first, counters only when no data is left."""
        while len(self._entries) + len(self._counters) > self.max_entries or self.bytes > self.max_bytes:
            if self._entries:
                await self._drop_entry(next(iter(self._entries)))
            elif self._counters:
                await self._retire_counter(next(iter(self._counters)))
            else:  # pragma: no cover - bytes are only counted for entries
                break
