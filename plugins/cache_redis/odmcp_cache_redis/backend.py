"""The shared cache backend: aiocache ``RedisCache`` (0.12.3) on redis-py, with a msgspec serializer.

What the adapter adds or avoids, and why:

* **no aiocache op timeout** (``timeout=None``): the host facade applies ``op_timeout`` itself. The
  sockets still get ``socket_timeout``/``socket_connect_timeout`` = ``op_timeout`` and at most one
  immediate retry (which heals a pooled connection left stale by a Redis restart), so no call can
  hang or back off for seconds when Redis is gone, even one made outside the facade.
* **float TTLs only**: aiocache sends an ``int`` TTL through redis-py's deprecated ``setex``.
* **``add`` and ``incr`` go straight to the client** (``SET NX PX`` and ``INCR``, with ``PEXPIRE`` in one
  ``MULTI`` when the counter has a TTL), keeping the TTL in milliseconds and the counter atomic
  across replicas.
* **real cross-process locks** from ``redis.asyncio.lock.Lock`` (token + lease, Lua compare-and-delete
  release). aiocache's ``RedLock`` only makes waiters in the *same* process wait.
* **fleet primitives** (:attr:`RedisBackend.fleet`, :mod:`odmcp_cache_redis.fleet`): one GCRA
  rate-limit bucket per name for every replica, and single-flight across replicas.
* **closing** uses ``client.aclose()``: aiocache's ``close()`` calls redis-py's deprecated ``close``.
  Nothing here ever calls ``clear()`` (``FLUSHDB`` without a namespace), ``KEYS`` or ``FLUSHDB``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiocache.backends.redis import RedisCache
from redis.asyncio.connection import parse_url
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from odmcp_cache_redis.fleet import RedisFleet
from odmcp_cache_redis.serializer import MsgspecJsonSerializer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from odmcp.api import CacheSettings

log = logging.getLogger("odmcp_cache_redis")

#: how often a waiting ``lock`` retries ``SET NX`` (redis-py polls; there is no blocking acquire)
LOCK_POLL = 0.05


class RedisBackend:
    """A cache shared by every gateway replica that points at the same Redis database."""

    name = "redis"
    local = False

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, op_timeout: float = 0.25, prefix: str = "mcpgw"
    ) -> None:
        kwargs: dict[str, Any] = dict(parse_url(url))
        if "path" in kwargs:
            raise ValueError(f"unsupported Redis URL {url!r}: use redis:// or rediss://, not a unix socket")
        socket_timeout = max(op_timeout, 0.05)
        kwargs.setdefault("socket_timeout", socket_timeout)
        self._cache = RedisCache(
            serializer=MsgspecJsonSerializer(),
            endpoint=kwargs.pop("host", "127.0.0.1"),
            port=kwargs.pop("port", 6379),
            db=kwargs.pop("db", 0),
            password=kwargs.pop("password", None),
            create_connection_timeout=kwargs.pop("socket_connect_timeout", socket_timeout),
            timeout=None,
            # username, TLS class and any other URL query options pass through to redis-py
            connection_pool_kwargs={"retry": Retry(NoBackoff(), 1), **kwargs},
        )
        self._client: Redis = self._cache.client
        self._closed = False
        #: shared buckets and single-flight for the replicas of this deployment (``prefix``)
        self.fleet = RedisFleet(self._client, self._cache.serializer, channel=f"{prefix}:flights")

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> RedisBackend:
        return cls(settings.redis_url, op_timeout=settings.op_timeout, prefix=settings.prefix)

    @property
    def client(self) -> Redis:
        """The underlying ``redis.asyncio.Redis`` (for tests and diagnostics)."""
        return self._client

    async def get(self, key: str) -> Any:
        return await self._cache.get(key)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:  # a value that expires immediately: nothing to keep, old value must go
            await self._client.delete(key)
            return
        # float -> PSETEX; an int TTL would take aiocache down redis-py's deprecated setex
        await self._cache.set(key, value, ttl=_ttl_seconds(ttl))

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        data = self._cache.serializer.dumps(value)
        if ttl <= 0:  # absent, and "stored" already expired: report success, keep nothing
            return not await self._client.exists(key)
        return bool(await self._client.set(key, data, nx=True, px=_ttl_ms(ttl)))

    async def delete(self, key: str) -> bool:
        return bool(await self._cache.delete(key))

    async def incr(self, key: str, ttl: float | None = None) -> int:
        try:
            if ttl is None:
                value: int = await self._client.incr(key)
                return value
            ms = _ttl_ms(ttl)
            async with self._client.pipeline(transaction=True) as pipe:
                # a new counter starts at "now" in µs: above any value an expired one under this key held
                pipe.set(key, time.time_ns() // 1000, nx=True, px=ms)
                pipe.incr(key)
                pipe.pexpire(key, ms)
                _created, value, _expiry = await pipe.execute()
            return value
        except ResponseError as exc:  # the key holds a stored value, not an integer
            raise TypeError(f"cache key {key!r} holds a value, not a counter") from exc

    def lock(self, key: str, lease: float, wait: float) -> RedisLock:
        return RedisLock(self._client, key, lease=lease, wait=wait)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.fleet.close()
        await self._client.aclose()  # closes the pool too (aiocache sets auto_close_connection_pool)


class RedisLock:
    """``async with`` a redis-py ``Lock``; raises ``TimeoutError`` when not acquired within ``wait``.

    Only contention raises the builtin ``TimeoutError``; an unreachable or silent Redis raises a
    ``redis.exceptions.RedisError`` (never a ``TimeoutError`` subclass), so the host can tell
    "another replica holds this object" from "the cache is down".

    One instance per critical section (the token lives on the instance). While held, the lease is
    renewed every ``lease / 3`` seconds, so a slow holder (upstream retries and timeouts) keeps the
    lock however long it works, yet a holder that crashes blocks the key for at most ``lease`` seconds.

    Releasing is best effort: if the lease already ran out, or
    Redis is unreachable, the body's outcome stands and a warning is logged, because raising there
    would turn finished work into an error while the lease frees the key anyway.
    """

    def __init__(self, client: Redis, key: str, *, lease: float, wait: float) -> None:
        if lease <= 0:  # redis-py treats a falsy timeout as "no lease": a crash would lock the key forever
            raise ValueError(f"lock lease must be > 0 seconds, got {lease}")
        self.key = key
        self.wait = wait
        self.lease = lease
        self._renewer: asyncio.Task[None] | None = None
        self._lock = Lock(
            client,
            key,
            timeout=lease,  # sent as PX int(lease * 1000)
            sleep=LOCK_POLL,
            blocking=True,
            blocking_timeout=max(wait, 0.0),
            thread_local=False,  # asyncio: one task per instance; a thread-local token adds nothing
        )

    async def __aenter__(self) -> None:
        try:
            acquired = await self._lock.acquire()
        except TimeoutError as exc:
            # TimeoutError means "someone else holds it" to the host; an unanswered Redis is an outage
            raise RedisTimeoutError(f"Redis did not answer while taking lock {self.key!r}") from exc
        if not acquired:
            raise TimeoutError(f"cache lock {self.key!r} not acquired within {self.wait:g}s")
        self._renewer = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if self._renewer is None:  # released meanwhile (see __aexit__)
                return
            try:
                await self._lock.reacquire()  # resets the TTL to the full lease, only if we still own it
            except LockError:
                log.warning("cache lock %r was lost before it could be renewed", self.key)
                return
            except (RedisError, OSError) as err:
                log.warning("cache lock %r not renewed (%s); retrying", self.key, err)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            # Bounded: a cancellation that lands inside a redis-py call can be swallowed there (seen
            # with a 0.3 s lease), and the lock must not stay held, renewed forever, because of it.
            # A renewer still running after the release sees it is done (or finds the token gone).
            await asyncio.wait({renewer}, timeout=1.0)
        try:
            await self._lock.release()
        except LockError:
            log.warning("cache lock %r expired before release; its lease was too short", self.key)
        except (RedisError, OSError) as err:
            log.warning("cache lock %r not released (%s); it frees itself when the lease ends", self.key, err)


def _ttl_seconds(ttl: float) -> float:
    # at least 1 ms: aiocache sends int(ttl * 1000) to PSETEX, and Redis rejects 0
    return max(float(ttl), 0.001)


def _ttl_ms(ttl: float) -> int:
    return max(int(ttl * 1000), 1)
