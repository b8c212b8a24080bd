"""Client-side rate limits: pace requests to an upstream instead of collecting its 429s.

Upstreams such as OrderDesk meter each store with a leaky bucket (20 requests, refilled at 3 per
second) and answer 429 + a retry delay once it is empty. :class:`LeakyBucket` mirrors such a bucket in
this process with GCRA ("virtual scheduling"):
one timestamp, ``tat`` (theoretical arrival time), encodes the bucket level — at time ``now`` the
bucket holds ``capacity - max(0, tat - now) / interval`` tokens.

Fairness without a stampede: :meth:`LeakyBucket.acquire` *reserves* a slot by advancing ``tat``
before it sleeps, so concurrent callers get distinct start times one interval apart, in arrival
order, and each sleeps exactly until its own slot. No lock, no condition variable that wakes
everyone at once, and nothing bound to a particular event loop.

Corrections from the server (:meth:`observe`, :meth:`penalize`) move ``tat`` *and* every pending
reservation by the same amount (a shared ``shift`` that sleepers re-check when they wake), so
callers already waiting keep their order and spacing instead of firing into a known-empty bucket.

:class:`SharedBucket` is the same algorithm for a fleet of replicas: the state lives in the shared
cache backend (one atomic script per reservation, see :mod:`odmcp.fleet`), so N replicas together
pace like one client. When the backend does not answer, each replica falls back to a
:class:`LeakyBucket` holding its share of the bucket (never more than the whole, never unlimited).
:meth:`odmcp.app.Gateway.rate_limiter` picks one of the two; both follow :class:`RateLimiter`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from odmcp.config import RateLimitSettings
from odmcp.fleet import FleetPrimitives, Reservation

if TYPE_CHECKING:
    from odmcp.cache import Cache

log = logging.getLogger("odmcp.ratelimit")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A waiter woken this close to its slot goes ahead; event-loop timers may fire a hair early and a
# second sub-millisecond sleep would only add latency.
_EPSILON = 1e-3


class RateLimiter(Protocol):
    """What a client calls around each upstream request."""

    capacity: int
    refill_per_sec: float
    enabled: bool

    async def acquire(self, reserve: int = 0) -> None:
        """Wait for a token (in arrival order). ``reserve``: start only while more than that many tokens
        are left, so background work (a bulk job) leaves them to interactive calls, which go first."""

    async def observe(self, tokens_remaining: int) -> None:
        """The upstream reported how many tokens it has left."""

    async def penalize(self, retry_after: float) -> None:
        """The upstream refused a request (429): hold everyone off for ``retry_after`` seconds."""

    def available(self) -> float:
        """Tokens believed left now (negative while callers wait for slots)."""


class LeakyBucket:
    """Paces one store's requests. ``acquire()`` before each request; feed back what the server says."""

    def __init__(
        self,
        capacity: int = 20,
        refill_per_sec: float = 3.0,
        *,
        enabled: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if refill_per_sec <= 0:
            raise ValueError(f"refill_per_sec must be > 0, got {refill_per_sec}")
        self.capacity = capacity
        self.refill_per_sec = refill_per_sec
        self.enabled = enabled
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / refill_per_sec
        # A request may start while tat - now <= tolerance, i.e. while at least one token is left.
        self._tolerance = (capacity - 1) * self._interval
        self._tat = clock()
        # Total delay added to pending reservations by observe()/penalize(); sleepers compare it
        # with the value stored in their reservation.
        self._shift = 0.0
        # ticket -> reserved start time minus the shift at the moment of reserving
        self._waiting: dict[int, float] = {}
        self._tickets = itertools.count()

    @classmethod
    def from_settings(
        cls, settings: RateLimitSettings, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> LeakyBucket:
        return cls(
            settings.capacity, settings.refill_per_sec, enabled=settings.enabled, clock=clock, sleep=sleep
        )

    def available(self) -> float:
        """Tokens we believe are left now (negative when callers hold reservations in the future)."""
        return self.capacity - max(0.0, self._tat - self._clock()) / self._interval

    def ahead(self) -> float:
        """Seconds the theoretical arrival time lies ahead of now (0 when the bucket is full)."""
        return max(0.0, self._tat - self._clock())

    def hold(self, seconds: float) -> None:
        """Start from a bucket drained ``seconds`` ahead of now (what another bucket knew), if not already."""
        self._tat = max(self._tat, self._clock() + max(0.0, seconds))

    @property
    def waiting(self) -> int:
        """Callers currently sleeping on a reservation."""
        return len(self._waiting)

    async def acquire(self, reserve: int = 0) -> None:
        """Take one token, sleeping until our reserved slot if the bucket is empty.

        ``reserve``: start only while more than that many tokens are left (see :class:`RateLimiter`).
        A caller cancelled while it sleeps gives up its slot without handing it back; later callers
        keep their places, which is slightly conservative but never overshoots the server.
        """
        if not self.enabled:
            return
        now = self._clock()
        keep = min(max(reserve, 0), self.capacity - 1) * self._interval
        start = max(now, self._tat - self._tolerance + keep)
        self._tat = max(self._tat, now) + self._interval
        if start - now <= _EPSILON:
            return
        ticket = next(self._tickets)
        self._waiting[ticket] = start - self._shift
        try:
            while True:
                delay = self._waiting[ticket] + self._shift - self._clock()
                if delay <= _EPSILON:
                    return
                await self._sleep(delay)
        finally:
            del self._waiting[ticket]

    async def observe(self, tokens_remaining: int) -> None:
        """Sync down to the server's ``X-Tokens-Remaining`` when it says fewer tokens are left.

        Never raises our estimate: the server does not yet count our reservations and in-flight
        requests, so a higher number from it is expected and not a reason to speed up. A lower one
        means someone else (another process, another integration) uses the same store.
        """
        if not self.enabled:
            return
        now = self._clock()
        remaining = min(max(tokens_remaining, 0), self.capacity)
        # Reservations that have not been sent yet are not in the server's count; leave them out.
        believed = self.capacity - max(0.0, self._tat - now) / self._interval + len(self._waiting)
        if remaining >= believed:
            return
        delta = (believed - remaining) * self._interval
        if self._waiting:
            self._shift += delta
        self._tat = max(self._tat, now) + delta

    async def penalize(self, retry_after: float) -> None:
        """After a 429: nothing (not even callers already waiting) starts before ``retry_after`` s."""
        if not self.enabled or retry_after <= 0:
            return
        target = self._clock() + retry_after
        if self._waiting:
            earliest = min(self._waiting.values()) + self._shift
            delta = target - earliest
            if delta > 0:
                self._shift += delta
                self._tat += delta
        # One token becomes available at ``target``: the bucket is otherwise empty until then.
        self._tat = max(self._tat, target + self._tolerance)

    def __repr__(self) -> str:
        state = f"available={self.available():.2f}, waiting={self.waiting}" if self.enabled else "disabled"
        return f"LeakyBucket(capacity={self.capacity}, refill_per_sec={self.refill_per_sec}, {state})"


#: a replica that reserved a slot within this many seconds counts as a member of the bucket's fleet
MEMBER_WINDOW = 300.0
#: the fleet size a replica assumes for its fallback share before it ever reached the backend
UNKNOWN_REPLICAS = 2
#: tokens of the upstream's bucket the fleet leaves unused as a margin for arrival jitter
FLEET_SPARE = 1


class SharedBucket:
    """One bucket for every replica on the shared cache backend; a local share of it while that is down.

    ``acquire`` is one atomic reservation in the backend (GCRA, the same arithmetic as
    :class:`LeakyBucket`): slots are handed out in arrival order across the fleet, one interval apart,
    and each caller sleeps exactly until its own slot. A caller that slept asks for the bucket's
    ``shift`` once on waking (one more round trip) and sleeps on by any correction a 429 seen by any
    replica has added meanwhile. ``observe`` only costs a round trip when the upstream reports fewer
    tokens than even our last view of the fleet allows; ``penalize`` (a 429) always goes to the backend.

    When the backend does not answer (the cache's fail-open rules: one short timeout, then skipped
    for a second), this replica paces itself with a :class:`LeakyBucket` of ``fallback_share`` of the
    capacity and refill rate (default 1 / the replicas seen on the bucket), starting as drained as the
    shared bucket last was. The switch is logged once per outage. When the backend answers again and
    has lost the bucket (a restart), the bucket is rebuilt as drained as this replica knows it to be.
    """

    def __init__(
        self,
        cache: Cache,
        fleet: FleetPrimitives,
        key: str,
        settings: RateLimitSettings,
        *,
        name: str,
        member: str,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if settings.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {settings.capacity}")
        if settings.refill_per_sec <= 0:
            raise ValueError(f"refill_per_sec must be > 0, got {settings.refill_per_sec}")
        self.capacity = settings.capacity
        self.refill_per_sec = settings.refill_per_sec
        self.enabled = settings.enabled
        self.fallback_share = settings.fallback_share
        self.name = name
        self.key = key
        self._cache = cache
        self._fleet = fleet
        self._member = member
        # An injected clock is also the backend's clock (tests); otherwise the backend uses its own,
        # so replicas on different hosts never compare their clocks.
        self._injected = clock
        self._clock: Clock = clock or time.monotonic
        self._sleep = sleep
        self._interval = 1.0 / settings.refill_per_sec
        # The fleet keeps FLEET_SPARE tokens of the upstream's bucket unused: requests from several
        # processes reach the upstream with more jitter than one process's, and a slot that lands a
        # little early then still finds a token instead of a 429 (whose retry delay, whole seconds,
        # would hold the whole fleet back). It costs one interval once, not throughput.
        self._burst = max(1, settings.capacity - FLEET_SPARE)
        #: the bucket's backlog as last seen: (local time, seconds its theoretical arrival time was ahead)
        self._seen = (self._clock(), 0.0)
        #: replicas on the bucket at the last reservation (0: never reached the backend)
        self.replicas = 0
        self._fallback: LeakyBucket | None = None

    @property
    def degraded(self) -> bool:
        """True while this replica paces itself with its local share."""
        return self._fallback is not None

    def available(self) -> float:
        if self._fallback is not None:
            return self._fallback.available()
        return self._burst - self._ahead() / self._interval

    async def acquire(self, reserve: int = 0) -> None:
        if not self.enabled:
            return
        hint = self._ahead()
        if self._fallback is not None:
            hint = max(hint, self._fallback.ahead())
        res = await self._backend(
            "reserve",
            lambda: self._fleet.bucket_reserve(
                self.key,
                self._burst,
                self._interval,
                hint=hint,
                member=self._member,
                now=self._now(),
                reserve=reserve,
            ),
        )
        if not isinstance(res, Reservation):
            await self._local().acquire(reserve)
            return
        self._recovered()
        self._seen = (self._clock(), res.ahead)
        self.replicas = res.replicas or self.replicas
        delay, shift = res.delay, res.shift
        while delay > _EPSILON:
            await self._sleep(delay)
            current = await self._backend("shift", lambda: self._fleet.bucket_shift(self.key))
            if not isinstance(current, float):
                return  # our slot has come; the backend went away meanwhile, and the slot stands
            delay, shift = current - shift, max(shift, current)

    async def observe(self, tokens_remaining: int) -> None:
        if not self.enabled:
            return
        if self._fallback is not None:
            await self._fallback.observe(tokens_remaining)
            return
        # Our view of the fleet's bucket is at most as drained as the bucket really is: a server that
        # reports at least as many tokens tells the bucket nothing (the common case, no round trip).
        remaining = tokens_remaining - (self.capacity - self._burst)  # in our (spare-less) terms
        if remaining >= self._burst - self._ahead() / self._interval - 0.01:
            return

        async def lower() -> bool:
            await self._fleet.bucket_observe(
                self.key, self._burst, self._interval, remaining, now=self._now()
            )
            return True

        if await self._backend("observe", lower) is None:
            await self._local().observe(tokens_remaining)

    async def penalize(self, retry_after: float) -> None:
        if not self.enabled or retry_after <= 0:
            return

        async def hold_off() -> bool:
            await self._fleet.bucket_penalize(
                self.key, self._burst, self._interval, retry_after, now=self._now()
            )
            return True

        if await self._backend("penalize", hold_off) is None or self._fallback is not None:
            await self._local().penalize(retry_after)
        self._seen = (self._clock(), max(self._ahead(), retry_after + (self._burst - 1) * self._interval))

    # --- internals ---------------------------------------------------------------------------

    def _now(self) -> float | None:
        return self._injected() if self._injected is not None else None

    def _ahead(self) -> float:
        at, ahead = self._seen
        return max(0.0, ahead - (self._clock() - at))

    async def _backend(self, op: str, fn: Callable[[], Awaitable[object]]) -> object:
        """The backend's answer, or None when it failed (the cache's fail-open rules apply)."""
        return await self._cache.backend_call(f"bucket {op}", fn, None)

    def share(self) -> float:
        """The fraction of the bucket this replica uses on its own while the backend is down."""
        if self.fallback_share:
            return self.fallback_share
        return 1.0 / (self.replicas or UNKNOWN_REPLICAS)

    def _local(self) -> LeakyBucket:
        if self._fallback is None:
            share = self.share()
            bucket = LeakyBucket(
                max(1, math.floor(self.capacity * share)),
                self.refill_per_sec * share,
                clock=self._clock,
                sleep=self._sleep,
            )
            bucket.hold(self._ahead())
            self._fallback = bucket
            log.warning(
                "rate limit %s: the shared bucket does not answer; this replica paces itself with "
                "%d requests and %.2f/s (%.2f of the bucket) until it does",
                self.name,
                bucket.capacity,
                bucket.refill_per_sec,
                share,
            )
        return self._fallback

    def _recovered(self) -> None:
        if self._fallback is not None:
            self._fallback = None
            log.warning("rate limit %s: the shared bucket answers again", self.name)

    def __repr__(self) -> str:
        state = (
            f"available={self.available():.2f}, replicas={self.replicas}"
            + (", degraded" if self.degraded else "")
            if self.enabled
            else "disabled"
        )
        rate = f"capacity={self.capacity}, refill_per_sec={self.refill_per_sec}"
        return f"SharedBucket({self.name!r}, {rate}, {state})"
