"""The fleet's shared rate-limit bucket: the Lua GCRA script and SharedBucket, on real Redis, with an
injected clock (the script takes ``now`` instead of Redis ``TIME``), so every slot is exact."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from odmcp.cache import RETRY_INTERVAL, Cache
from odmcp.config import RateLimitSettings as HostRateLimit
from odmcp.fleet import FleetPrimitives
from odmcp.ratelimit import FLEET_SPARE, SharedBucket

T = 1 / 3
CAP = 20
BURST = CAP - FLEET_SPARE  # a fleet leaves one token unused as a margin for jitter


def fleet_of(cache: Cache) -> FleetPrimitives:
    assert cache.fleet is not None
    return cache.fleet


def RateLimitSettings(**settings: Any) -> HostRateLimit:
    """An upstream's limit as a store plugin gives it (the host's own default is no limit)."""
    return HostRateLimit(**{"capacity": 20, "refill_per_sec": 3.0, "enabled": True, **settings})


def bucket(cache: Cache, clock: Any, member: str, **settings: Any) -> SharedBucket:
    return SharedBucket(
        cache,
        fleet_of(cache),
        cache.key("bucket", "store-1"),
        RateLimitSettings(**settings),
        name="store-1",
        member=member,
        clock=clock.clock,
        sleep=clock.sleep,
    )


# --- the script ---------------------------------------------------------------------------------


async def test_script_hands_out_the_burst_then_one_slot_per_interval_in_arrival_order(
    replicas: Callable[..., Cache],
) -> None:
    fleet = fleet_of(replicas())
    key = replicas().key("bucket", "b")
    delays = []
    for i in range(25):  # three replicas taking turns, all at the same instant
        r = await fleet.bucket_reserve(key, CAP, T, hint=0.0, member=f"r{i % 3}", now=100.0)
        delays.append(r.delay)
    assert delays[:20] == [0.0] * 20
    assert delays[20:] == pytest.approx([T, 2 * T, 3 * T, 4 * T, 5 * T], abs=1e-5)
    assert r.replicas == 3
    assert r.ahead == pytest.approx(25 * T, abs=1e-5)
    # time passes: nine tokens back after 3 s past the last slot
    r = await fleet.bucket_reserve(key, CAP, T, hint=0.0, member="r0", now=100.0 + 5 * T + 3.0)
    assert r.delay == 0.0
    assert r.ahead == pytest.approx(CAP * T - 8 * T, abs=1e-5)  # 11 taken: 20 - 9 + the new one


async def test_script_observe_only_ever_lowers_the_bucket(replicas: Callable[..., Cache]) -> None:
    fleet = fleet_of(replicas())
    key = replicas().key("bucket", "b")
    await fleet.bucket_observe(key, CAP, T, 20, now=50.0)
    await fleet.bucket_observe(key, CAP, T, 5, now=50.0)  # someone else used 15 tokens
    await fleet.bucket_observe(key, CAP, T, 12, now=50.0)  # a higher count is ignored
    delays = [(await fleet.bucket_reserve(key, CAP, T, hint=0, member="a", now=50.0)).delay for _ in range(6)]
    assert delays == pytest.approx([0, 0, 0, 0, 0, T], abs=1e-5)


async def test_script_penalty_moves_pending_slots_behind_the_retry_delay(
    replicas: Callable[..., Cache],
) -> None:
    fleet = fleet_of(replicas())
    key = replicas().key("bucket", "b")
    for _ in range(22):  # 20 now, slots at T and 2T handed out
        last = await fleet.bucket_reserve(key, CAP, T, hint=0, member="a", now=10.0)
    assert last.shift == 0.0
    await fleet.bucket_penalize(key, CAP, T, 5.0, now=10.0)
    # the sleepers holding T and 2T read the shift when they wake: both move by 5 - T
    assert await fleet.bucket_shift(key) == pytest.approx(5.0 - T, abs=1e-5)
    nxt = await fleet.bucket_reserve(key, CAP, T, hint=0, member="a", now=10.0)
    assert nxt.delay == pytest.approx(5.0 + 2 * T, abs=1e-5)  # spacing continues after the penalty


async def test_script_penalty_on_a_full_bucket_leaves_one_token_at_retry_time(
    replicas: Callable[..., Cache],
) -> None:
    fleet = fleet_of(replicas())
    key = replicas().key("bucket", "b")
    await fleet.bucket_penalize(key, CAP, T, 2.0, now=0.0)
    first = await fleet.bucket_reserve(key, CAP, T, hint=0, member="a", now=0.0)
    second = await fleet.bucket_reserve(key, CAP, T, hint=0, member="a", now=0.0)
    assert (first.delay, second.delay) == pytest.approx((2.0, 2.0 + T), abs=1e-5)
    assert await fleet.bucket_shift(key) == 0.0  # nobody was waiting: no slot had to move


async def test_script_rebuilds_a_lost_bucket_as_drained_as_the_caller_knew(
    replicas: Callable[..., Cache],
) -> None:
    cache = replicas()
    fleet = fleet_of(cache)
    key = cache.key("bucket", "b")
    r = await fleet.bucket_reserve(key, CAP, T, hint=CAP * T, member="a", now=0.0)  # as if Redis restarted
    assert r.delay == pytest.approx(T, abs=1e-5)  # empty: the next token comes after one interval
    await cache.backend.delete(key)
    r = await fleet.bucket_reserve(key, CAP, T, hint=10_000.0, member="a", now=0.0)
    assert r.delay == pytest.approx(T, abs=1e-5)  # a hint never builds more than an empty bucket
    await cache.backend.delete(key)
    r = await fleet.bucket_reserve(key, CAP, T, hint=0.0, member="a", now=0.0)
    assert r.delay == 0.0


async def test_replicas_outside_the_window_stop_counting(replicas: Callable[..., Cache]) -> None:
    fleet = fleet_of(replicas())
    key = replicas().key("bucket", "b")
    await fleet.bucket_reserve(key, CAP, T, hint=0, member="old", now=0.0)
    r = await fleet.bucket_reserve(key, CAP, T, hint=0, member="new", now=301.0)
    assert r.replicas == 1


# --- SharedBucket ---------------------------------------------------------------------------------


async def test_three_replicas_share_one_bucket(replicas: Callable[..., Cache], step_time: Any) -> None:
    a, b, c = (bucket(replicas(), step_time, m) for m in "abc")
    for _ in range(BURST):
        await a.acquire()
    assert step_time.sleeps == []  # the burst: the upstream's 20 less the fleet's spare token
    await b.acquire()
    await c.acquire()
    await a.acquire()
    # each waited exactly one interval after the one before: one bucket, not three
    assert step_time.sleeps == pytest.approx([T, T, T], abs=1e-5)
    assert (b.replicas, c.replicas, a.replicas) == (2, 3, 3)  # replicas seen on the bucket so far


async def test_a_429_seen_by_one_replica_holds_back_a_waiter_on_another(
    replicas: Callable[..., Cache], step_time: Any
) -> None:
    a, b = bucket(replicas(), step_time, "a"), bucket(replicas(), step_time, "b")
    for _ in range(BURST):
        await a.acquire()

    async def meanwhile(delay: float) -> None:
        await a.penalize(3.0)  # while b sleeps for its slot, a gets a 429 with X-Retry-After: 3

    step_time.on_sleep = meanwhile
    start = step_time.now
    await b.acquire()
    assert step_time.now - start == pytest.approx(3.0, abs=1e-5)  # woke at T, slept on to the new slot
    assert step_time.sleeps == pytest.approx([T, 3.0 - T], abs=1e-5)


async def test_observe_costs_no_round_trip_when_the_upstream_has_more_tokens(
    replicas: Callable[..., Cache], step_time: Any
) -> None:
    cache = replicas()
    a = bucket(cache, step_time, "a")
    await a.acquire()
    calls = []
    real = fleet_of(cache).bucket_observe

    async def counted(*args: Any, **kw: Any) -> None:
        calls.append(args)
        await real(*args, **kw)

    cache.fleet.bucket_observe = counted  # type: ignore[method-assign, union-attr]
    await a.observe(19)  # what we believe already (18 of our 19, plus the spare)
    assert calls == []
    await a.observe(5)  # someone else spends this store's tokens: 4 left for us
    assert len(calls) == 1
    for _ in range(4):
        await a.acquire()
    assert step_time.sleeps == []
    await a.acquire()
    assert step_time.sleeps == pytest.approx([T], abs=1e-5)


async def test_redis_outage_paces_each_replica_with_its_share_logged_once(
    own_redis: Any, replicas: Callable[..., Cache], step_time: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caches = [replicas(own_redis.url) for _ in range(3)]
    a, b, c = (bucket(cache, step_time, m) for cache, m in zip(caches, "abc", strict=True))
    for x in (a, b, c, a):  # a's second reservation sees all three
        await x.acquire()
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="odmcp.ratelimit"):
        for _ in range(10):
            await a.acquire()
    assert a.degraded and a.share() == pytest.approx(1 / 3)
    # a third of the bucket (6 tokens, 1 per second), as drained as the shared bucket was (4 of 20
    # taken: 1.33 s of refill), so 4 at once, then one per second
    assert step_time.sleeps == pytest.approx([T, 1.0, 1.0, 1.0, 1.0, 1.0], abs=1e-3)
    assert caplog.text.count("does not answer") == 1  # once per outage, however many calls
    assert a.available() < 1


async def test_fallback_share_is_configurable_and_never_unlimited(
    own_redis: Any, replicas: Callable[..., Cache], step_time: Any
) -> None:
    a = bucket(replicas(own_redis.url), step_time, "a", fallback_share=0.25)
    own_redis.kill()
    for _ in range(6):
        await a.acquire()
    assert a.degraded
    assert step_time.sleeps == pytest.approx([1 / 0.75], abs=1e-3)  # 5 tokens, then 0.75/s


async def test_unknown_fleet_size_assumes_two_replicas(
    own_redis: Any, replicas: Callable[..., Cache]
) -> None:
    cache = replicas(own_redis.url)
    own_redis.kill()
    b = SharedBucket(
        cache, fleet_of(cache), "k", RateLimitSettings(), name="s", member="m", clock=lambda: 0.0
    )
    assert b.share() == 0.5
    RateLimitSettings(fallback_share=1.0)
    with pytest.raises(ValueError):
        RateLimitSettings(fallback_share=0.0)


async def test_a_redis_restart_neither_refills_the_bucket_nor_loses_the_pace(
    own_redis: Any, replicas: Callable[..., Cache], step_time: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a = bucket(replicas(own_redis.url), step_time, "a")
    for _ in range(BURST):
        await a.acquire()
    own_redis.kill()
    own_redis.start()  # empty: the bucket is gone
    await a.acquire()
    assert not a.degraded
    assert step_time.sleeps == pytest.approx([T], abs=1e-5)  # rebuilt empty, not full: no new burst

    own_redis.kill()
    for _ in range(3):
        await a.acquire()  # on the local share meanwhile (half: nobody else was seen)
    assert a.degraded
    own_redis.start()
    await asyncio.sleep(RETRY_INTERVAL + 0.1)  # the cache skips a failed backend this long
    with caplog.at_level(logging.WARNING, logger="odmcp.ratelimit"):
        await a.acquire()
    assert not a.degraded and "answers again" in caplog.text
    assert step_time.sleeps[-1] > 0  # still paced: the bucket came back as drained as it was


@pytest.mark.sandbox(rate_limit_enabled=True)
@pytest.mark.parametrize(("backend", "kind"), [("memory", "LeakyBucket"), ("redis", "SharedBucket")])
async def test_each_upstream_store_gets_one_limiter_of_the_backends_kind(
    gateway_factory: Any, orderdesk_sandbox: Any, backend: str, kind: str
) -> None:
    from odmcp_orderdesk.runtime import runtime

    demo = orderdesk_sandbox.config.stores[0]
    same = {"store_id": demo.store_id, "api_key": demo.api_key, "base_url": orderdesk_sandbox.base_url}
    stores = [{"name": "demo", "default": True, **same}, {"name": "twin", **same}]
    gw = gateway_factory(overrides={"cache.backend": backend, "stores": stores})
    await gw.startup()
    try:
        rt = runtime(gw)
        assert type(rt.client("demo").limiter).__name__ == kind
        assert rt.client("twin").limiter is rt.client("demo").limiter  # OrderDesk meters per store
    finally:
        await gw.shutdown()


async def test_script_reserve_leaves_tokens_for_interactive_callers(replicas: Callable[..., Cache]) -> None:
    fleet = fleet_of(replicas())
    key = replicas().key("bucket", "reserve")
    # a bulk job keeping 5 tokens free starts 15 at once, then waits while 5 are left...
    bulk = [
        (await fleet.bucket_reserve(key, CAP, T, hint=0, member="a", now=7.0, reserve=5)).delay
        for _ in range(16)
    ]
    assert bulk[:15] == [0.0] * 15 and bulk[15] > 0
    # ...and an interactive call at that instant still starts at once, ahead of it
    single = await fleet.bucket_reserve(key, CAP, T, hint=0, member="b", now=7.0)
    assert single.delay == 0.0
