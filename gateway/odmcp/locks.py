"""Per-key locks: an asyncio lock per key in this process, plus the cache backend's lock across replicas.

``async with gateway.locks.hold(key) as lease:`` serialises writers of one object and yields a
:class:`Lease`. A lease lapses when its holder stalls or dies, yet a request the holder already
sent can still reach the store later, and OrderDesk has no conditional write that could refuse it.
So the lease is *fenced*:

* right before each write request goes out, :meth:`Lease.guard` checks the lock is still ours,
  extends it, and records ``now + deadline`` (the request's hard deadline) as the lock's fence;
* when the request has finished, :meth:`Lease.settled` clears the fence;
* a holder that finds a fence when it takes the lock (the previous holder died, or lost the lock,
  with a request in flight) waits until that deadline has passed before doing anything; a holder
  that died with nothing in flight left no fence, so taking over costs at most the lease.

With a shared backend configured that does not answer, :meth:`MutationLocks.hold` refuses with
UNAVAILABLE (retryable, nothing written), unless ``mutations.local_locks_when_shared_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from odmcp.cache import Cache
from odmcp.cache_backend import SharedLock
from odmcp.errors import Conflict, LeaseLost, Unavailable

log = logging.getLogger("odmcp.locks")

#: how often a holder waiting out a fence looks whether it was cleared early (the request finished)
FENCE_POLL = 0.25


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
    """What :meth:`MutationLocks.hold` yields: the right to write ``key`` while it lasts."""

    def __init__(
        self, key: str, lock: SharedLock | None = None, cache: Cache | None = None, *, lenient: bool = False
    ) -> None:
        self.key = key
        #: a cross-replica lock is held (False: this process only)
        self.shared = lock is not None
        self._lock = lock
        self._cache = cache
        self._lenient = lenient
        self._inflight = 0
        self._fence_until = 0.0

    @property
    def lost(self) -> bool:
        """The cross-replica lock was found taken from us: nothing more may be sent under it."""
        return self._lock is not None and self._lock.lost

    @property
    def idle(self) -> bool:
        """No request guarded by this lease is still unsettled."""
        return self._inflight == 0

    async def guard(self, deadline: float) -> None:
        """Right before a write request goes out: check the lease is still ours and extend it, and
        record ``now + deadline`` (seconds) as the lock's fence, so a holder that takes the lock by
        expiry waits until then. One round trip. No-op for an in-process lease.

        Raises :class:`LeaseLost` (nothing was written) when the lock is no longer ours, and
        :class:`Unavailable` when the backend does not answer (the fence could not be recorded).
        """
        lock, cache = self._lock, self._cache
        if lock is None or cache is None:
            return
        if not lock.lost:
            try:
                ours = await cache.bounded(lambda: lock.guard(deadline))
            except Exception as err:
                cache.lock_unavailable(err)
                if self._lenient:
                    log.warning(
                        "lock %s: fence not recorded (%s); writing anyway", self.key, type(err).__name__
                    )
                    return
                raise Unavailable(
                    "the shared lock is unavailable (it did not answer before the write); nothing was written"
                ) from None
            if ours:
                self._inflight += 1
                self._fence_until = max(self._fence_until, time.monotonic() + deadline)
                return
        raise LeaseLost(
            f"the lock on {self.key} lapsed before the write could go out (another replica may hold "
            "it now); nothing was written"
        )

    async def settled(self) -> None:
        """The request sent after :meth:`guard` has finished (answered, failed or timed out): clear the
        fence (best effort; it expires by itself)."""
        lock, cache = self._lock, self._cache
        if lock is None or cache is None or self._inflight == 0:
            return
        self._inflight -= 1
        if self._inflight == 0:
            try:
                await cache.bounded(lock.settle)
            except Exception as err:
                # keep trying in the background: a fence left behind would hold the next writer up
                # until its deadline although the request is done (seen across a Sentinel failover)
                log.info("lock %s: fence not cleared yet (%s); retrying", self.key, type(err).__name__)
                task = asyncio.create_task(_settle_later(cache, lock, self._fence_until))
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)


#: fences being cleared in the background (referenced so they are not garbage-collected mid-way)
_BACKGROUND: set[asyncio.Task[None]] = set()


async def _settle_later(cache: Cache, lock: SharedLock, until: float) -> None:
    """Clear a fence whose request is done, once the backend answers again (until it expires anyway)."""
    while time.monotonic() < until:
        await asyncio.sleep(FENCE_POLL * 2)
        try:
            await cache.bounded(lock.settle)
            return
        except Exception:  # still down: the fence expires by itself at ``until``
            continue


class MutationLocks:
    """Serialise writers of one object: in-process first, then across replicas via the cache backend."""

    def __init__(
        self,
        cache: Cache | None,
        lease: float,
        wait: float,
        enabled: bool = True,
        local_when_unavailable: bool = False,
    ) -> None:
        self.local = KeyedLocks(wait)
        self.cache = cache
        self.lease = lease
        self.wait = wait
        self.enabled = enabled
        #: ``mutations.local_locks_when_shared_unavailable``: go on with the in-process lock only
        self.local_when_unavailable = local_when_unavailable

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[Lease]:
        if not self.enabled:
            yield Lease(key)
            return
        async with self.local.hold(key):
            cache = self.cache
            lock = cache.shared_lock(key, self.lease, self.wait) if cache is not None else None
            if cache is None or lock is None:
                yield Lease(key)
                return
            fence = await self._acquire(cache, lock, key)
            if fence is None:  # unavailable, and allowed to go on in this process only
                yield Lease(key)
                return
            lease = Lease(key, lock, cache, lenient=self.local_when_unavailable)
            try:
                if fence > 0:
                    await self._wait_out(cache, lock, key, fence)
                yield lease
            finally:
                # a request still unsettled (cancelled mid-way) keeps its fence for the next holder
                await lock.release(clear_fence=lease.idle)

    async def _acquire(self, cache: Cache, lock: SharedLock, key: str) -> float | None:
        try:
            return await lock.acquire()
        except TimeoutError:
            raise Conflict(
                f"another writer held this object for more than {self.wait:g} s",
                hint="Another replica is still changing this object; retry in a moment.",
            ) from None
        except Exception as err:
            cache.lock_unavailable(err)
            if not self.local_when_unavailable:
                raise Unavailable(
                    f"the shared lock is unavailable (the {cache.backend.name} backend did not answer: "
                    f"{type(err).__name__}); nothing was written"
                ) from None
            log.warning(
                "lock %s taken in this process only: the %s backend did not answer (%s)",
                key,
                cache.backend.name,
                type(err).__name__,
            )
            return None

    async def _wait_out(self, cache: Cache, lock: SharedLock, key: str, fence: float) -> None:
        """A previous holder left a request in flight: wait until its deadline (or until it is cleared)."""
        log.warning(
            "lock %s: the previous holder left a write in flight; waiting up to %.1f s for its deadline",
            key,
            fence,
        )
        until = time.monotonic() + fence
        left = fence
        while left > 0:
            await asyncio.sleep(min(left, FENCE_POLL))
            try:
                left = min(await cache.bounded(lock.fence_left), until - time.monotonic())
            except Exception as err:
                cache.lock_unavailable(err)
                raise Unavailable(
                    "the shared lock is unavailable (it stopped answering while a previous write was "
                    "waited out); nothing was written"
                ) from None
