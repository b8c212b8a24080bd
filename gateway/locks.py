"""Per-key locks: an asyncio lock per key in this process, plus the cache backend's lock across replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway.cache import Cache, LockTimeout
from gateway.errors import Conflict


class KeyedLocks:
    """One asyncio.Lock per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class MutationLocks:
    """Serialise writers of one object: in-process first, then across replicas via the cache backend."""

    def __init__(self, cache: Cache | None, lease: float, wait: float, enabled: bool = True) -> None:
        self.local = KeyedLocks()
        self.cache = cache
        self.lease = lease
        self.wait = wait
        self.enabled = enabled

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with self.local.hold(key):
            if self.cache is None:
                yield
                return
            try:
                async with self.cache.distributed_lock(key, self.lease, self.wait):
                    yield
            except LockTimeout:
                raise Conflict(
                    f"another writer held {key} for more than {self.wait:g} s",
                    hint="Another replica is still changing this object; retry in a moment.",
                ) from None
