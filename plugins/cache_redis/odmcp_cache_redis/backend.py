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
  release), with a *fence* next to each lock (:class:`RedisLock`). aiocache's ``RedLock`` only makes
  waiters in the *same* process wait.
* **three deployments** (:func:`connect`): one server (``redis://``, ``rediss://``), Redis Cluster
  (``redis+cluster://`` or ``cache.redis_mode = "cluster"``; the host's keys carry a ``{store}`` hash
  tag, so every script and multi-key command stays in one slot) and Sentinel
  (``redis+sentinel://host:26379[,host:port]/master[/db]``, through redis-py's ``Sentinel``). For the
  last two, aiocache's client is replaced by redis-py's cluster or sentinel-managed client; aiocache
  only calls ``get``/``set``/``delete`` on it, which both provide.
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
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from odmcp_cache_redis.fleet import RedisFleet
from odmcp_cache_redis.serializer import MsgspecJsonSerializer
from odmcp_cache_redis.urls import parse_target

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
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        op_timeout: float = 0.25,
        prefix: str = "mcpgw",
        mode: str = "auto",
    ) -> None:
        socket_timeout = max(op_timeout, 0.05)
        target = parse_target(url, mode)
        #: ``standalone``, ``cluster`` or ``sentinel``
        self.mode = target.mode
        #: the URL without credentials, for messages
        self.where = target.where
        kwargs = target.kwargs
        kwargs.setdefault("socket_timeout", socket_timeout)
        connect_timeout = kwargs.pop("socket_connect_timeout", socket_timeout)
        standalone = target.mode == "standalone"
        self._cache = RedisCache(
            serializer=MsgspecJsonSerializer(),
            endpoint=kwargs.pop("host", "127.0.0.1") if standalone else "127.0.0.1",
            port=kwargs.pop("port", 6379) if standalone else 6379,
            db=kwargs.pop("db", 0) if standalone else 0,
            password=kwargs.pop("password", None) if standalone else None,
            create_connection_timeout=connect_timeout,
            timeout=None,
            # username, TLS class and any other URL query options pass through to redis-py
            connection_pool_kwargs={"retry": Retry(NoBackoff(), 1), **kwargs} if standalone else {},
        )
        if not standalone:
            # aiocache only ever calls get/set/delete on its client: hand it the cluster (or
            # sentinel-managed) client instead. Its own pool above never connected.
            self._cache.client = target.client(socket_connect_timeout=connect_timeout)
        self._client: Redis = self._cache.client
        self._target = target
        self._closed = False
        #: shared buckets and single-flight for the replicas of this deployment (``prefix``)
        self.fleet = RedisFleet(self._client, self._cache.serializer, channel=f"{prefix}:flights")

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> RedisBackend:
        return cls(
            settings.redis_url,
            op_timeout=settings.op_timeout,
            prefix=settings.prefix,
            mode=settings.redis_mode,
        )

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

    async def startup_check(self) -> str | None:
        """A configuration mistake the server reveals, as one line; None when none is seen.

        A plain URL pointed at a Redis Cluster node passes ``PING`` but then answers ``MOVED`` or
        ``CROSSSLOT`` to most commands: refuse it and name the URL form to use.
        """
        if self.mode != "standalone":
            return None
        try:
            info = await self._client.info("cluster")
        except (RedisError, OSError):
            return None  # unreachable (reported as an outage) or INFO refused (managed): can't tell
        if str(info.get("cluster_enabled", 0)) == "1":
            return (
                f"cache.redis_url {self.where} is a Redis Cluster node; use "
                f'{self.where.replace("://", "+cluster://", 1)} (or cache.redis_mode = "cluster")'
            )
        return None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.fleet.close()
        await self._client.aclose()  # closes the pool too (aiocache sets auto_close_connection_pool)
        await self._target.aclose()


ACQUIRE_LUA = """
-- KEYS[1] lock, KEYS[2] its fence; ARGV[1] token, ARGV[2] lease (ms)
-- -1: held by another; else ms left on a fence a previous holder left (0: none)
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
return math.max(redis.call('PTTL', KEYS[2]), 0)
"""

GUARD_LUA = """
-- KEYS[1] lock, KEYS[2] fence; ARGV[1] token, ARGV[2] lease (ms), ARGV[3] deadline (ms from now)
-- 0: not ours any more; 1: extended, and the fence lasts at least the deadline
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
return 1
"""

SETTLE_LUA = """
-- KEYS[1] fence; ARGV[1] token
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RELEASE_LUA = """
-- KEYS[1] lock, KEYS[2] fence; ARGV[1] token, ARGV[2] '1': also clear our fence (nothing in flight)
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def fence_key(key: str) -> str:
    """The fence of the lock ``key``: same hash tag, so one slot in a cluster."""
    return key + ":fence"


class _FencedLock(Lock):
    """redis-py's ``Lock`` (polling acquire, renewal) taking the lock and reading its fence in one step."""

    fence_ms = 0

    async def do_acquire(self, token: str | bytes) -> bool:
        left = await self.redis.eval(
            ACQUIRE_LUA, 2, self.name, fence_key(str(self.name)), token, _ttl_ms(self.timeout or 0.001)
        )
        if int(left) < 0:
            return False
        self.fence_ms = int(left)
        return True


class RedisLock:
    """A cross-replica lock with a lease and a fence (the host's :class:`odmcp.cache_backend.SharedLock`).

    :meth:`acquire` raises the builtin ``TimeoutError`` only for contention; an unreachable or silent
    Redis raises a ``redis.exceptions.RedisError`` (never a ``TimeoutError`` subclass), so the host can
    tell "another replica holds this object" from "Redis is down".

    While held, the lease is renewed every ``lease / 3`` seconds, so a live holder keeps the lock
    however long it works, yet a holder that dies blocks the key for at most ``lease`` seconds, unless
    it died with a write in flight: :meth:`guard` records that write's deadline in the fence key next
    to the lock, and the next holder waits for it (:meth:`fence_left`). When renewal finds the lock
    taken from us, :attr:`lost` is set and the next :meth:`guard` says so.

    One instance per critical section. Releasing is best effort (logged): the lease frees the key.
    """

    def __init__(self, client: Redis, key: str, *, lease: float, wait: float) -> None:
        if lease <= 0:  # redis-py treats a falsy timeout as "no lease": a crash would lock the key forever
            raise ValueError(f"lock lease must be > 0 seconds, got {lease}")
        self.key = key
        self.fence = fence_key(key)
        self.wait = wait
        self.lease = lease
        #: renewal found the lock no longer ours
        self.lost = False
        self._client = client
        self._renewer: asyncio.Task[None] | None = None
        self._token = b""
        self._lock = _FencedLock(
            client,
            key,
            timeout=lease,  # sent as PX int(lease * 1000)
            sleep=LOCK_POLL,
            blocking=True,
            blocking_timeout=max(wait, 0.0),
            thread_local=False,  # asyncio: one task per instance; a thread-local token adds nothing
        )

    async def acquire(self) -> float:
        """Take the lock; returns the seconds left on a fence a previous holder left (0.0: none)."""
        try:
            acquired = await self._lock.acquire()
        except TimeoutError as exc:
            # TimeoutError means "someone else holds it" to the host; an unanswered Redis is an outage
            raise RedisTimeoutError(f"Redis did not answer while taking lock {self.key!r}") from exc
        if not acquired:
            raise TimeoutError(f"cache lock {self.key!r} not acquired within {self.wait:g}s")
        self._token = self._lock.local.token
        self._renewer = asyncio.create_task(self._renew())
        return self._lock.fence_ms / 1000

    async def fence_left(self) -> float:
        """Seconds left on the fence (0.0 when there is none)."""
        left = await self._client.pttl(self.fence)
        return max(int(left), 0) / 1000

    async def guard(self, deadline: float) -> bool:
        """Extend the lease and make the fence last ``deadline`` s from now; False if no longer ours."""
        ok = await self._client.eval(
            GUARD_LUA, 2, self.key, self.fence, self._token, _ttl_ms(self.lease), _ttl_ms(deadline)
        )
        if not ok:
            self.lost = True
        return bool(ok)

    async def settle(self) -> None:
        """Clear our fence: the request it covered has finished."""
        await self._client.eval(SETTLE_LUA, 1, self.fence, self._token)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if self._renewer is None:  # released meanwhile (see release)
                return
            try:
                await self._lock.reacquire()  # resets the TTL to the full lease, only if we still own it
            except LockError:
                self.lost = True
                log.warning("cache lock %r was lost before it could be renewed", self.key)
                return
            except (RedisError, OSError) as err:
                log.warning("cache lock %r not renewed (%s); retrying", self.key, err)

    async def release(self, clear_fence: bool = True) -> None:
        """Give the lock up (best effort); ``clear_fence=False`` leaves our fence for the next holder."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            # Bounded: a cancellation that lands inside a redis-py call can be swallowed there (seen
            # with a 0.3 s lease), and the lock must not stay held, renewed forever, because of it.
            # A renewer still running after the release sees it is done (or finds the token gone).
            await asyncio.wait({renewer}, timeout=1.0)
        if not self._token:
            return
        try:
            released = await self._client.eval(
                RELEASE_LUA, 2, self.key, self.fence, self._token, "1" if clear_fence else "0"
            )
        except (RedisError, OSError) as err:
            log.warning("cache lock %r not released (%s); it frees itself when the lease ends", self.key, err)
            return
        if not released:
            log.warning("cache lock %r expired before release; its lease was too short", self.key)

    async def __aenter__(self) -> float:
        return await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


def _ttl_seconds(ttl: float) -> float:
    # at least 1 ms: aiocache sends int(ttl * 1000) to PSETEX, and Redis rejects 0
    return max(float(ttl), 0.001)


def _ttl_ms(ttl: float) -> int:
    return max(int(ttl * 1000), 1)
