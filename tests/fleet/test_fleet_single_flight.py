"""Single-flight across replicas: caches on one Redis make one load per key in the whole fleet, waiters
are woken (not polling), a dead filler is replaced within its lease, and a write ends a flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from odmcp.cache import Cache


class Loader:
    """Counts loads; each takes ``delay`` seconds (or waits for ``gate``)."""

    def __init__(self, delay: float = 0.05, value: Any = None) -> None:
        self.delay = delay
        self.calls = 0
        self.value = value if value is not None else {"id": "1", "v": 1}
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(self.delay)
        return dict(self.value)


async def test_concurrent_misses_on_three_replicas_make_one_load(replicas: Callable[..., Cache]) -> None:
    fleet = [replicas() for _ in range(3)]
    key = fleet[0].key("s", "order", "1")
    load = Loader(delay=0.2)
    results = await asyncio.gather(*(c.get_or_load(key, load, 30) for c in fleet for _ in range(30)))
    assert load.calls == 1
    assert all(r == {"id": "1", "v": 1} for r in results)
    # the two other replicas were woken by the landing, not by polling: one wait each
    waits = [c.metrics.value("cache_flight_waits_total") for c in fleet]
    assert sorted(waits) == [0, 1, 1]


async def test_a_slow_filler_keeps_its_flight_and_waiters_do_not_poll(replicas: Callable[..., Cache]) -> None:
    a, b = replicas(flight_lease=0.3), replicas(flight_lease=0.3)
    key = a.key("s", "order", "2")
    load = Loader(delay=1.2)  # four leases: renewed meanwhile
    results = await asyncio.gather(a.get_or_load(key, load, 30), _later(0.05, b.get_or_load(key, load, 30)))
    assert load.calls == 1 and results[0] == results[1]
    # b only looked again when the lease it was told about ran out (or when woken): a few times, not hot
    assert 1 <= b.metrics.value("cache_flight_waits_total") <= 6


async def test_a_dead_filler_is_replaced_within_its_lease(replicas: Callable[..., Cache]) -> None:
    a, b = replicas(flight_lease=0.5), replicas(flight_lease=0.5)
    key = a.key("s", "order", "3")
    assert a.fleet is not None
    claim = await a.fleet.flight_claim(key, "dead-replica", 0.5)  # claimed, then the replica died
    assert claim.kind == "claimed"
    load = Loader()
    t0 = time.monotonic()
    assert await b.get_or_load(key, load, 30) == {"id": "1", "v": 1}
    took = time.monotonic() - t0
    assert load.calls == 1
    assert 0.3 <= took < 1.2, took


async def test_a_failed_load_wakes_the_waiters_and_the_next_one_loads(replicas: Callable[..., Cache]) -> None:
    a, b = replicas(), replicas()
    key = a.key("s", "order", "4")
    failing = Loader()
    failing.gate = asyncio.Event()

    async def fail() -> Any:
        await failing()
        raise RuntimeError("upstream said no")

    good = Loader()
    first = asyncio.create_task(a.get_or_load(key, fail, 30))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(b.get_or_load(key, good, 30))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    failing.gate.set()
    assert isinstance((await asyncio.gather(first, return_exceptions=True))[0], RuntimeError)
    assert await second == {"id": "1", "v": 1}
    assert time.monotonic() - t0 < 1.0  # woken at once, not after the 3 s lease
    assert good.calls == 1


async def test_a_write_during_a_flight_keeps_its_value_out_of_the_cache(
    replicas: Callable[..., Cache],
) -> None:
    a, b = replicas(), replicas()
    key = a.key("s", "order", "5")
    old = Loader(value={"id": "5", "v": "before the write"})
    old.gate = asyncio.Event()
    reading = asyncio.create_task(a.get_or_load(key, old, 30))
    await asyncio.sleep(0.05)
    await b.invalidate("s", "order", "5", lists=False)  # another replica wrote the order meanwhile
    old.gate.set()
    assert (await reading)["v"] == "before the write"  # the reader that started before gets its answer
    assert await a.get(key) is None  # ... but it does not land: a later read goes upstream
    fresh = Loader(value={"id": "5", "v": "after"})
    assert (await b.get_or_load(key, fresh, 30))["v"] == "after"
    assert fresh.calls == 1


async def test_redis_down_means_every_replica_loads_on_its_own(
    own_redis: Any, replicas: Callable[..., Cache]
) -> None:
    a = replicas(own_redis.url)
    key = a.key("s", "order", "6")
    own_redis.kill()
    load = Loader()
    t0 = time.monotonic()
    assert await a.get_or_load(key, load, 30) == {"id": "1", "v": 1}
    assert load.calls == 1 and time.monotonic() - t0 < 1.0


async def _later(delay: float, coro: Any) -> Any:
    await asyncio.sleep(delay)
    return await coro
