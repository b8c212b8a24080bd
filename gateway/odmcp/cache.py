"""The read-through cache facade: keys, single-flight, fail-open, write-through and invalidation.

Backends (plugins) only store bytes-ish values under keys. Everything that makes caching *safe*
lives here, once, for every backend:

* **Single-flight**: concurrent misses on one key share one upstream load, in this process and,
  when the backend offers :class:`~odmcp.fleet.FleetPrimitives` (Redis), across every replica:
  the first replica to miss claims the key for a short, renewed lease and loads it; the others wait
  until it lands (woken by the backend, no polling) and read the value. If the filler dies, its
  lease runs out and the next waiter takes the load over.
* **Fail-open**: a backend error or timeout is a miss; the outage is logged once, the backend is
  skipped for ``RETRY_INTERVAL`` seconds, and invalidations that failed are replayed on recovery.
* **No stale fill after a write**: read-through fills use set-if-absent and are skipped when the
  key was invalidated while the load was in flight; writes store the fresh object with a plain set.
* **Lists by generation**: list keys embed a per-store counter; bumping it invalidates every list
  of that store in O(1). Nothing is ever scanned or flushed. The counter expires
  ``ttl_list + LISTGEN_TTL_MARGIN`` seconds after its last bump.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from odmcp.cache_backend import CacheBackend, SharedLock
from odmcp.config import CacheSettings
from odmcp.fleet import FleetPrimitives
from odmcp.metrics import Metrics

log = logging.getLogger("odmcp.cache")
T = TypeVar("T")
_enc = msgspec.json.Encoder(order="sorted")
_dec = msgspec.json.Decoder()

#: seconds a failed backend is skipped before it is tried again
RETRY_INTERVAL = 1.0
#: a list-generation counter expires this long after the longest-lived list page keyed by it, so a
#: store that goes quiet leaves nothing behind (the backend never reuses a number; see ``incr``)
LISTGEN_TTL_MARGIN = 300.0


def clone(value: T) -> T:
    """A deep copy of JSON-compatible data (msgspec round trip: ~5x faster than copy.deepcopy)."""
    out: T = _dec.decode(_enc.encode(value))
    return out


def digest(value: Any) -> str:
    """A stable short hash of JSON-compatible data (sorted keys)."""
    return hashlib.sha256(_enc.encode(value)).hexdigest()[:32]


class Cache:
    def __init__(self, backend: CacheBackend, settings: CacheSettings, metrics: Metrics) -> None:
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self.enabled = settings.enabled
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        #: read-through fills completed so far (any key), to spot a fill that landed during a read
        self._fills = 0
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._pending: set[str] = set()
        fleet = getattr(backend, "fleet", None)
        #: the backend's fleet-wide primitives (shared buckets, single-flight), or None if process-local
        self.fleet: FleetPrimitives | None = fleet if isinstance(fleet, FleetPrimitives) else None

    # --- keys ------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """``<prefix>:{<tag>}:<rest>``: the first segment (the store id) is a Redis Cluster hash tag,
        so every key of one store lives in one slot and scripts may touch several of them."""
        tag, _, rest = ":".join(parts).partition(":")
        return f"{self.settings.prefix}:{{{tag}}}" + (f":{rest}" if rest else "")

    def obj_key(self, store_id: str, kind: str, obj_id: str) -> str:
        return self.key(store_id, kind, obj_id)

    def gen_key(self, store_id: str, kind: str) -> str:
        return self.key(store_id, kind, "listgen")

    # --- fail-open backend calls ------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._down_since is None

    async def backend_call(self, op: str, fn: Callable[[], Awaitable[T]], default: T) -> T:
        """Run ``fn`` against the backend under the fail-open rules: ``default`` when it fails or is down."""
        return await self._call(op, fn, default)

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]], default: T) -> T:
        if self._down_since is not None and time.monotonic() < self._retry_at:
            return default
        try:
            if self.backend.local:
                result = await fn()
            else:
                result = await self._timed(fn)
        except Exception as err:  # any backend failure is a miss: tools never break on the cache
            self._mark_down(op, err)
            return default
        if self._down_since is not None:
            replayed = bool(self._pending)
            await self._recovered()
            if replayed and op == "get":
                # this value was read before the missed invalidations were replayed: read it again
                return default if self._down_since is not None else await self._call(op, fn, default)
        return result

    async def _timed(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn`` within ``op_timeout``; a timeout is tried once more before it counts as an outage.

        On a busy event loop the timer can fire before the loop got round to a reply that had long
        arrived (seen with 30 concurrent calls per replica on a loaded 2-core host: each spurious
        "outage" cost the fleet its shared single-flight for a second). A second attempt tells such a
        stall from a backend that does not answer, at the cost of noticing a hung backend after two
        timeouts instead of one. Every backend operation the cache makes is safe to run twice.
        """
        try:
            async with asyncio.timeout(self.settings.op_timeout):
                return await fn()
        except TimeoutError:
            self.metrics.inc("cache_backend_retries_total", backend=self.backend.name)
        async with asyncio.timeout(self.settings.op_timeout):
            return await fn()

    def _mark_down(self, op: str, err: BaseException) -> None:
        self.metrics.inc("cache_backend_errors_total", backend=self.backend.name)
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "cache backend %r unavailable (%s during %s); serving from upstream until it returns",
                self.backend.name,
                type(err).__name__,
                op,
            )
        self._retry_at = now + RETRY_INTERVAL

    async def _recovered(self) -> None:
        down_for = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since = None
        pending, self._pending = self._pending, set()
        log.warning(
            "cache backend %r is back after %.1f s; replaying %d invalidations",
            self.backend.name,
            down_for,
            len(pending),
        )
        for key in pending:
            await self._drop(key)

    # --- reads -------------------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        if not self.enabled:
            return None
        return await self._call("get", lambda: self.backend.get(key), None)

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[T]], ttl: float) -> T:
        """Return the cached value, or load it once for all concurrent callers and cache it."""
        if not self.enabled:
            return await loader()
        fills = self._fills
        cached = await self.get(key)
        if cached is None and key not in self._inflight and self._fills != fills:
            # a load finished and filled the cache while our read was on its way: look again, not upstream
            cached = await self.get(key)
        if cached is not None:
            self.metrics.inc("cache_hits_total")
            self.metrics.inc("cache_upstream_saved_total")
            out: T = cached
            return out
        self.metrics.inc("cache_misses_total")
        running = self._inflight.get(key)
        if running is not None:
            self.metrics.inc("cache_upstream_saved_total")
            shared: T = await asyncio.shield(running)
            return clone(shared)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            try:
                if self.fleet is not None:
                    value, stored = await self._load_shared(self.fleet, key, loader, ttl)
                else:
                    value, stored = await self._load(loader), False
            except BaseException as err:
                fut.set_exception(err)
                fut.exception()  # mark retrieved: waiters may be zero
                raise
            fut.set_result(value)
            if not stored and self._inflight.get(key) is fut:  # not invalidated while loading: current
                await self._call("add", lambda: self.backend.add(key, value, ttl), False)
                self._fills += 1
        finally:
            # only now: a caller that missed while the fill was on its way joins this load
            if self._inflight.get(key) is fut:
                del self._inflight[key]
        return value

    async def _load(self, loader: Callable[[], Awaitable[T]]) -> T:
        self.metrics.inc("cache_loads_total")
        return await loader()

    async def _load_shared(
        self, fleet: FleetPrimitives, key: str, loader: Callable[[], Awaitable[T]], ttl: float
    ) -> tuple[T, bool]:
        """Load ``key`` once in the whole fleet; returns the value and whether the cache has it already.

        Each round is one round trip: the cached value, or the flight on the key, or "busy" with the
        time left on the current filler's lease. A waiter sleeps until the flight lands (woken by the
        backend) or that lease runs out, then looks again; so a dead filler is replaced within one
        lease. If the backend fails, this replica loads on its own (fail-open).
        """
        lease = self.settings.flight_lease
        token = uuid.uuid4().hex
        async with fleet.flight_watch(key) as watch:
            while True:
                watch.arm()
                claim = await self._call("flight", lambda: fleet.flight_claim(key, token, lease), None)
                if claim is None:
                    return await self._load(loader), False
                if claim.kind == "value":
                    self.metrics.inc("cache_upstream_saved_total")
                    self.metrics.inc("cache_flight_joins_total")
                    out: T = claim.value
                    return out, True
                if claim.kind == "claimed":
                    return await self._fly(fleet, key, token, loader, ttl)
                self.metrics.inc("cache_flight_waits_total")
                await watch.wait(min(max(claim.lease_left, 0.01) + 0.05, lease))

    async def _fly(
        self, fleet: FleetPrimitives, key: str, token: str, loader: Callable[[], Awaitable[T]], ttl: float
    ) -> tuple[T, bool]:
        """Load under our flight, renewing its lease meanwhile; land it (store + wake) or give it up."""
        lease = self.settings.flight_lease

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease / 3)
                if await self._call("flight", lambda: fleet.flight_renew(key, token, lease), True) is False:
                    return  # invalidated or lost: landing will store nothing

        renewer = asyncio.create_task(renew())
        try:
            value = await self._load(loader)
        except BaseException:
            # wake the waiters, so the next one loads (an error is not shared across replicas)
            await self._call("flight", lambda: fleet.flight_land(key, token, None, ttl), None)
            raise
        finally:
            renewer.cancel()

        async def land() -> str:
            stored = await fleet.flight_land(key, token, value, ttl)
            return "lost" if stored is None else "stored" if stored else "present"

        outcome = await self._call("flight", land, "failed")
        if outcome == "stored":
            self._fills += 1
        # "present": a fresher value got there first; "lost": the flight was invalidated (a write ended
        # it, so the value may predate the write). Neither may be filled; only an unanswered backend
        # leaves the fill to the usual set-if-absent.
        return value, outcome != "failed"

    async def list_key(self, store_id: str, kind: str, params: dict[str, Any]) -> str:
        gen = await self._call("get", lambda: self.backend.get(self.gen_key(store_id, kind)), None)
        return self.key(store_id, kind, "list", f"g{gen or 0}", digest(params))

    # --- writes ------------------------------------------------------------------------------

    async def put(self, key: str, value: Any, ttl: float) -> None:
        """Store a value known to be fresh (write-through after a successful upload)."""
        if self.enabled:
            await self._call("set", lambda: self.backend.set(key, value, ttl), None)

    async def _drop(self, key: str) -> None:
        ok = await self._call("delete", lambda: self._delete_or_bump(key), False)
        if ok:
            self.metrics.inc("cache_invalidations_total")
        else:
            self._pending.add(key)

    async def _delete_or_bump(self, key: str) -> bool:
        if key.endswith(":listgen"):
            await self.backend.incr(key, self.settings.ttl_list + LISTGEN_TTL_MARGIN)
        elif self.fleet is not None:
            await self.fleet.flight_drop(key)  # also ends a flight: a load from before the change won't land
        else:
            await self.backend.delete(key)
        return True

    async def invalidate(self, store_id: str, kind: str, obj_id: str | None, lists: bool) -> None:
        """Drop one object and/or bump the store's list generation for ``kind``."""
        keys = []
        if obj_id:
            keys.append(self.obj_key(store_id, kind, obj_id))
        if lists:
            keys.append(self.gen_key(store_id, kind))
        for key in keys:
            self._inflight.pop(key, None)  # later callers must not join a load from before the change
            await self._drop(key)

    # --- locks -------------------------------------------------------------------------------

    def lock_key(self, key: str) -> str:
        """The backend key of the lock on ``key`` (``<store_id>:<kind>:<id>``: tagged by the store)."""
        tag, _, rest = key.partition(":")
        return self.key(tag, "lock", rest) if rest else self.key(tag, "lock")

    def shared_lock(self, key: str, lease: float, wait: float) -> SharedLock | None:
        """The backend's cross-process lock on ``key``, or None for a process-local backend."""
        return self.backend.lock(self.lock_key(key), lease, wait)

    def lock_unavailable(self, err: BaseException) -> None:
        """The backend did not answer a lock operation: count it as an outage (logged once)."""
        self._mark_down("lock", err)

    async def bounded(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn`` within ``op_timeout`` (tried twice, see :meth:`_timed`); errors propagate."""
        if self.backend.local:
            return await fn()
        return await self._timed(fn)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.backend.close()
