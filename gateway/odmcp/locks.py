"""Per-key locks: an asyncio lock per key in this process, plus the cache backend's lock across replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from odmcp.cache import Cache, LockTimeout
from odmcp.errors import Conflict, UpstreamError


class KeyedLocks:
    """One asyncio.Lock per key, created on demand and dropped when nobody holds or waits for it.

    ``wait`` (``mutations.lock_wait``) bounds how long :meth:`hold` waits for the key: past it, the
    caller gets the CONFLICT the cross-replica lock gives, with nothing done (``None``: no bound).
    """

    def __init__(self, wait: float | None = None) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.wait = wait

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(self.wait):
                    await lock.acquire()
            except TimeoutError:
                raise Conflict(
                    f"another writer held this object for more than {self.wait:g} s",
                    hint="Another call is still changing this object; retry in a moment.",
                ) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class Lease:
    """What holding a mutation lock gives the write route: a fencing check before each request."""

    def __init__(self, key: str, shared: bool) -> None:
        self.key = key
        self.shared = shared

    async def guard(self, deadline: float) -> None:
        """Right before a write request goes out: raise ``LeaseLost`` if the lease is no longer ours."""

    async def settled(self) -> None:
        """The request sent after :meth:`guard` has finished."""


class MutationLocks:
    """Serialise writers of one object: in-process first, then across replicas via the cache backend."""

    def __init__(
        self,
        cache: Cache | None,
        lease: float,
        wait: float,
        enabled: bool = True,
        require_shared: bool = False,
    ) -> None:
        self.local = KeyedLocks(wait)
        self.cache = cache
        self.lease = lease
        self.wait = wait
        self.enabled = enabled
        self.require_shared = require_shared

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[Lease]:
        if not self.enabled:
            yield Lease(key, False)
            return
        async with self.local.hold(key):
            if self.cache is None:
                yield Lease(key, False)
                return
            try:
                async with self.cache.distributed_lock(key, self.lease, self.wait) as held:
                    if not held and self.require_shared and not self.cache.backend.local:
                        raise UpstreamError(
                            "the shared lock is unavailable (the cache backend does not answer); "
                            "nothing was written",
                            hint="Retry when the cache is back (mutations.require_shared_lock is on).",
                        )
                    yield Lease(key, held)
            except LockTimeout:
                raise Conflict(
                    f"another writer held this object for more than {self.wait:g} s",
                    hint="Another replica is still changing this object; retry in a moment.",
                ) from None
