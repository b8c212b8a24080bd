"""The in-process cache backend: aiocache ``SimpleMemoryCache`` plus what 0.12.3 lacks.

aiocache's memory cache stores references, has no size bound, and expires keys only through
``loop.call_later`` timers, which die with the event loop that created them. This adapter keeps the
aiocache store for the data and adds, around it:

* **copies**: values are stored as msgspec JSON bytes, so every ``get`` decodes a private copy and a
  caller mutating what it passed to ``set`` (or got from ``get``) never changes the cache. JSON rather
  than msgpack keeps the semantics identical to the Redis backend (e.g. int dict keys become str);
  msgpack decoded a 3 KB order only ~0.7 µs faster.
* **an LRU bound** of ``max_entries``: an ``OrderedDict`` of key -> expiry deadline records recency.
* **lazy expiry**: deadlines on the monotonic clock are checked on every read, so no timer (and no
  event loop) is involved; aiocache is given no TTL at all. Expired entries that are never read
  again drift to the LRU end and are evicted first, so memory stays bounded.

Counters (``incr``) live in the same store and share the bound but are *evicted last*: data entries
go first, counters only when the store holds nothing else. A counter that leaves the store (evicted,
deleted or overwritten) raises a per-process floor, and any counter created later starts above it, so
a generation number is never handed out twice in this process, even after an eviction. The cost is
that a brand-new counter may start above 1 once some counter has left.

All bookkeeping happens between awaits of aiocache memory coroutines that never suspend, so each
operation is atomic with respect to other tasks on the loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import msgspec
from aiocache import SimpleMemoryCache

if TYPE_CHECKING:
    from gateway.config import CacheSettings

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class MemoryBackend:
    """A process-local, LRU-bounded cache with copy semantics and lazy TTL expiry."""

    name = "memory"
    local = True

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        # timeout=None: aiocache's per-op asyncio.wait_for costs ~8 µs and a dict lookup cannot hang.
        self._store = SimpleMemoryCache(timeout=None)
        #: data keys -> monotonic expiry deadline, least recently used first
        self._entries: OrderedDict[str, float] = OrderedDict()
        #: counter keys (values live in the aiocache store as ints), least recently used first
        self._counters: OrderedDict[str, None] = OrderedDict()
        #: highest value any counter held when it left the store; new counters start above it
        self._counter_floor = 0

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> MemoryBackend:
        return cls(max_entries=settings.max_entries)

    def __len__(self) -> int:
        """Entries currently held (including expired ones not yet read or evicted)."""
        return len(self._entries) + len(self._counters)

    async def get(self, key: str) -> Any:
        deadline = self._entries.get(key)
        if deadline is not None:
            if deadline <= time.monotonic():
                await self._drop_entry(key)
                return None
            raw = await self._store.get(key)
            if raw is None:  # cannot happen unless the store was touched behind our back
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return _decode(raw)
        if key in self._counters:
            self._counters.move_to_end(key)
            return await self._store.get(key)
        return None

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:  # a value that expires immediately: nothing to keep, old value must go
            await self.delete(key)
            return
        data = _encode(value)  # before any change, so an unencodable value leaves the cache as it was
        if key in self._counters:
            await self._retire_counter(key)
        await self._store.set(key, data)
        self._entries[key] = time.monotonic() + ttl
        self._entries.move_to_end(key)
        await self._evict()

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        if key in self._counters:
            return False
        deadline = self._entries.get(key)
        if deadline is not None and deadline > time.monotonic():
            return False
        if ttl <= 0:  # absent, and "stored" already expired: report success, keep nothing
            if deadline is not None:
                await self._drop_entry(key)
            return True
        await self.set(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        deadline = self._entries.get(key)
        if deadline is not None:
            await self._drop_entry(key)
            return deadline > time.monotonic()
        if key in self._counters:
            await self._retire_counter(key)
            return True
        return False

    async def incr(self, key: str) -> int:
        if key in self._counters:
            self._counters.move_to_end(key)
            value: int = await self._store.increment(key)
            return value
        deadline = self._entries.get(key)
        if deadline is not None:
            if deadline > time.monotonic():
                raise TypeError(f"cache key {key!r} holds a value, not a counter")
            await self._drop_entry(key)
        value = self._counter_floor + 1
        await self._store.set(key, value)
        self._counters[key] = None
        await self._evict()
        return value

    def lock(self, key: str, lease: float, wait: float) -> AbstractAsyncContextManager[None] | None:
        """None: data lives in this process only, so the host's asyncio locks already exclude."""
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release; the data stays (a memory cache is never flushed by closing)."""
        await self._store.close()

    # --- internals ---------------------------------------------------------------------------

    async def _drop_entry(self, key: str) -> None:
        del self._entries[key]
        await self._store.delete(key)

    async def _retire_counter(self, key: str) -> None:
        value = await self._store.get(key)
        if isinstance(value, int) and value > self._counter_floor:
            self._counter_floor = value
        del self._counters[key]
        await self._store.delete(key)

    async def _evict(self) -> None:
        """Shrink to ``max_entries``: least recently used data first, counters only when no data is left."""
        while len(self._entries) + len(self._counters) > self.max_entries:
            if self._entries:
                key, _ = self._entries.popitem(last=False)
                await self._store.delete(key)
            else:
                key = next(iter(self._counters))
                await self._retire_counter(key)
