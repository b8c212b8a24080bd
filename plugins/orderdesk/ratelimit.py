"""A client-side leaky bucket per OrderDesk store, so we pace ourselves instead of collecting 429s.

OrderDesk meters each store with a leaky bucket (20 requests, refilled at 3 per second) and answers
429 + ``X-Retry-After`` once it is empty. We mirror it locally with GCRA ("virtual scheduling"):
one timestamp, ``tat`` (theoretical arrival time), encodes the bucket level — at time ``now`` the
bucket holds ``capacity - max(0, tat - now) / interval`` tokens.

Fairness without a stampede: :meth:`LeakyBucket.acquire` *reserves* a slot by advancing ``tat``
before it sleeps, so concurrent callers get distinct start times one interval apart, in arrival
order, and each sleeps exactly until its own slot. No lock, no condition variable that wakes
everyone at once, and nothing bound to a particular event loop.

Corrections from the server (:meth:`observe`, :meth:`penalize`) move ``tat`` *and* every pending
reservation by the same amount (a shared ``shift`` that sleepers re-check when they wake), so
callers already waiting keep their order and spacing instead of firing into a known-empty bucket.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from gateway.config import RateLimitSettings

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A waiter woken this close to its slot goes ahead; event-loop timers may fire a hair early and a
# second sub-millisecond sleep would only add latency.
_EPSILON = 1e-3


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

    @property
    def waiting(self) -> int:
        """Callers currently sleeping on a reservation."""
        return len(self._waiting)

    async def acquire(self, reserve: int = 0) -> None:
        """Take one token, sleeping until our reserved slot if the bucket is empty.

        ``reserve``: start only while more than that many tokens are left, so background work (a bulk
        job) leaves them to interactive calls, which then go ahead of it.

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

    def observe(self, tokens_remaining: int) -> None:
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

    def penalize(self, retry_after: float) -> None:
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
