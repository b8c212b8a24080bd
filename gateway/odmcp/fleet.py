"""What replicas on one shared cache backend share besides cached values: primitives a backend may offer.

A shared backend (Redis) that implements :class:`FleetPrimitives` and exposes it as its ``fleet``
attribute makes the host run, for the whole fleet:

* **one rate-limit bucket per name** (:class:`odmcp.ratelimit.SharedBucket`): GCRA state in the
  backend, each reservation one atomic round trip;
* **single-flight across replicas** (:meth:`odmcp.cache.Cache.get_or_load`): concurrent misses of
  one key make one load in the whole fleet; the others are woken when it lands.

A process-local backend has no ``fleet`` and the host keeps everything in the process. Every method
may raise on I/O failure; the host treats that as an outage (fail-open, logged once).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Reservation:
    """A slot in a shared bucket, as the backend handed it out (seconds on the backend's clock)."""

    #: how long until the slot starts (0 when a token was free)
    delay: float
    #: how far the bucket's theoretical arrival time now lies ahead of the backend's clock
    ahead: float
    #: total delay corrections have added to pending slots so far (a sleeper compares it on waking)
    shift: float
    #: replicas that used or joined the bucket in the membership window
    replicas: int


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to "give me the value, or the right to load it" for one key."""

    kind: Literal["value", "claimed", "busy"]
    #: the cached value (``kind == "value"``)
    value: Any = None
    #: seconds left on the current filler's lease (``kind == "busy"``)
    lease_left: float = 0.0


class FlightWatch(Protocol):
    """Woken when a flight on the watched key lands (or is given up)."""

    def arm(self) -> None:
        """Forget earlier wake-ups; call before looking at the flight again."""

    async def wait(self, within: float) -> bool:
        """Wait up to ``within`` seconds for a wake-up after the last :meth:`arm`; False if none came."""


@runtime_checkable
class FleetPrimitives(Protocol):
    # --- rate-limit buckets (GCRA; ``now=None`` means the backend's own clock) -------------------

    async def bucket_reserve(
        self,
        key: str,
        capacity: int,
        interval: float,
        *,
        hint: float,
        member: str,
        now: float | None = None,
        reserve: int = 0,
    ) -> Reservation:
        """Reserve the next slot. ``hint``: seconds of backlog to assume if the bucket is unknown (lost);
        ``reserve``: the slot starts only while more than that many tokens are left."""

    async def bucket_shift(self, key: str) -> float:
        """The bucket's current total shift (see :attr:`Reservation.shift`)."""

    async def bucket_observe(
        self, key: str, capacity: int, interval: float, remaining: int, *, now: float | None = None
    ) -> None:
        """The upstream says ``remaining`` tokens are left: lower the bucket to that, never raise it."""

    async def bucket_penalize(
        self, key: str, capacity: int, interval: float, retry_after: float, *, now: float | None = None
    ) -> None:
        """The upstream refused (429): nothing, pending slots included, starts within ``retry_after``."""

    # --- single-flight ------------------------------------------------------------------------------

    async def flight_claim(self, key: str, token: str, lease: float) -> Claim:
        """The value of ``key`` if cached; else the flight on it for ``lease`` s if free; else busy."""

    async def flight_renew(self, key: str, token: str, lease: float) -> bool:
        """Extend our flight's lease; False when it is no longer ours."""

    async def flight_land(self, key: str, token: str, value: Any, ttl: float) -> bool | None:
        """End our flight: store ``value`` if still absent (``None``: store nothing) and wake waiters.

        Returns whether the value was stored, or ``None`` when the flight was no longer ours (it was
        invalidated or expired): then nothing is stored, as the value may predate a write.
        """

    async def flight_drop(self, key: str) -> None:
        """Delete ``key`` and end any flight on it (an invalidation): its filler will not store."""

    def flight_watch(self, key: str) -> AbstractAsyncContextManager[FlightWatch]:
        """Wake-ups for flights on ``key`` while the context is open."""
