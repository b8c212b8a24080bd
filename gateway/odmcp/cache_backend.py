"""The gateway's own cache interface. Cache plugins implement it; nothing else imports aiocache.

aiocache 1.0 drops ``RedisCache``; keeping aiocache behind this small protocol means a backend can be
rewritten (on redis-py directly, or on aiocache 1.0's ValkeyCache) without touching any other plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from odmcp.config import CacheSettings


class SharedLock(Protocol):
    """One critical section's hold on a cross-process lock, with a lease and a fence.

    The lease expires by itself, so a holder that dies blocks the key for at most ``lease`` seconds;
    a live holder's lease is renewed in the background. The *fence* is a deadline stored next to
    the lock: a holder sets it before each write request (:meth:`guard`) and clears it when the
    request has finished (:meth:`settle`). A fence still there when the lock is taken means a
    previous holder died (or lost the lock) with a request in flight; the new holder waits it out.
    """

    #: set when renewal found the lock taken from us (the next :meth:`guard` fails)
    lost: bool

    async def acquire(self) -> float:
        """Take the lock within ``wait`` s; return the seconds left on a fence (0.0: none).

        Raises the builtin ``TimeoutError`` when another holder kept the lock; any other exception
        means the backend did not answer."""

    async def fence_left(self) -> float:
        """Seconds left on the fence (0.0 when there is none)."""

    async def guard(self, deadline: float) -> bool:
        """If the lock is still ours: extend its lease, make the fence last at least ``deadline`` s
        from now, return True (one round trip). False when it is no longer ours."""

    async def settle(self) -> None:
        """Clear our fence (the request it covered has finished)."""

    async def release(self, clear_fence: bool = True) -> None:
        """Give the lock up, best effort; ``clear_fence=False`` leaves our fence for the next holder."""


@runtime_checkable
class CacheBackend(Protocol):
    """A key/value store for JSON-compatible values (dict, list, str, int, float, bool).

    Keys arrive fully built and already carry the configured prefix; a backend never flushes,
    never scans and never uses ``KEYS``. ``None`` is not a storable value: ``get`` returns ``None``
    for a miss. Backends may raise on I/O failure; :class:`odmcp.cache.Cache` turns that into a
    miss (fail-open) and applies per-operation timeouts for non-local backends.
    """

    #: the registered name, e.g. ``"memory"``
    name: str
    #: True when data lives in this process only (no timeouts needed, not shared by replicas)
    local: bool

    async def get(self, key: str) -> Any:
        """Return a private copy of the value (callers may mutate it), or ``None`` on a miss."""

    async def set(self, key: str, value: Any, ttl: float) -> None:
        """Store ``value`` (copied; later mutation by the caller must not affect the cache) for ``ttl`` s."""

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        """Store only if ``key`` is absent; return True when stored. Atomic across replicas when shared."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return True when it existed."""

    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Atomically increment an integer counter and return the new value.

        Without ``ttl`` the counter never expires and is created at 1. With ``ttl`` it expires ``ttl``
        seconds after its last increment, and a counter created after an earlier one under the same
        key expired (or was evicted) must start above every value that one held, so a number is
        never handed out twice (the list generations rely on it). The memory backend keeps a floor
        for that; the Redis backend seeds a new counter with the current time in microseconds.
        """

    def lock(self, key: str, lease: float, wait: float) -> SharedLock | None:
        """A cross-process lock (token + lease + fence) on ``key``, or ``None`` if the backend is
        process-local. See :class:`SharedLock`."""

    async def ping(self) -> bool:
        """Return True when the backend answers."""

    async def close(self) -> None:
        """Release connections. Never flushes data."""


#: what ``gateway_register_cache_backends`` plugins pass to ``register(name, factory)``
CacheFactory = Callable[["CacheSettings"], CacheBackend]
