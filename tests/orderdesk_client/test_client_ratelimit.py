"""LeakyBucket: 20 tokens, 3 per second, FIFO without a stampede, and corrections from the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from odmcp.ratelimit import LeakyBucket
from odmcp_orderdesk.settings import OrderDeskRateLimit as RateLimitSettings

T = 1 / 3


def bucket(vt: Any) -> LeakyBucket:
    return LeakyBucket.from_settings(RateLimitSettings(), clock=vt.clock, sleep=vt.sleep)


async def start(b: LeakyBucket, vt: Any, n: int, done: list[tuple[int, float]]) -> list[asyncio.Task[None]]:
    async def caller(i: int) -> None:
        await b.acquire()
        done.append((i, vt.now))

    tasks = [asyncio.create_task(caller(i)) for i in range(n)]
    await vt.settle()
    return tasks


async def test_burst_of_capacity_then_one_per_interval_in_arrival_order(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[int, float]] = []
    await start(b, vt, 25, done)
    await vt.run()
    assert [i for i, _ in done] == list(range(25))
    assert [t for _, t in done[:20]] == [0.0] * 20
    assert [t for _, t in done[20:]] == pytest.approx([T, 2 * T, 3 * T, 4 * T, 5 * T])
    # Each waiter slept exactly once, to its own slot: nobody woke just to go back to sleep.
    assert vt.sleeps == pytest.approx([T, 2 * T, 3 * T, 4 * T, 5 * T])
    assert b.waiting == 0


async def test_bucket_refills_over_time(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[int, float]] = []
    await start(b, vt, 20, done)
    assert b.available() == pytest.approx(0)
    vt.now = 3.0  # nine tokens back
    assert b.available() == pytest.approx(9)
    vt.now = 100.0
    assert b.available() == pytest.approx(20)  # never above capacity


async def test_observe_only_ever_lowers_the_estimate(vt: Any) -> None:
    b = bucket(vt)
    await b.observe(20)
    assert b.available() == pytest.approx(20)
    await b.observe(5)
    assert b.available() == pytest.approx(5)
    await b.observe(12)  # the server thinks more are left: ignore, ours is the safer number
    assert b.available() == pytest.approx(5)
    done: list[tuple[int, float]] = []
    await start(b, vt, 6, done)
    await vt.run()
    assert [t for _, t in done] == pytest.approx([0, 0, 0, 0, 0, T])


async def test_observe_shifts_callers_already_waiting_and_keeps_their_order(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[int, float]] = []
    await start(b, vt, 22, done)  # 20 now, two waiting for 1/3 and 2/3
    assert b.waiting == 2
    await b.observe(0)  # agrees with us once the two unsent reservations are left out: no change
    vt.now = 0.2  # 0.6 of a token refilled locally, but the server still says 0
    await b.observe(0)
    await vt.run()
    assert [i for i, _ in done] == list(range(22))
    assert [t for _, t in done[20:]] == pytest.approx([T + 0.2, 2 * T + 0.2])


async def test_penalize_holds_everyone_including_waiters_until_retry_after(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[int, float]] = []
    await start(b, vt, 22, done)
    await b.penalize(5.0)
    await vt.run()
    assert [i for i, _ in done] == list(range(22))
    assert [t for _, t in done[20:]] == pytest.approx([5.0, 5.0 + T])
    late: list[tuple[int, float]] = []
    await start(b, vt, 1, late)
    await vt.run()
    assert late[0][1] == pytest.approx(5.0 + 2 * T)  # spacing continues after the penalty


async def test_penalize_on_a_full_bucket_leaves_one_token_at_retry_time(vt: Any) -> None:
    b = bucket(vt)
    await b.penalize(2.0)
    done: list[tuple[int, float]] = []
    await start(b, vt, 2, done)
    await vt.run()
    assert [t for _, t in done] == pytest.approx([2.0, 2.0 + T])


async def test_shorter_penalty_than_the_queue_changes_nothing_for_waiters(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[int, float]] = []
    await start(b, vt, 23, done)
    await b.penalize(0.1)
    await vt.run()
    assert [t for _, t in done[20:]] == pytest.approx([T, 2 * T, 3 * T])


async def test_cancelled_waiter_leaves_the_queue(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[int, float]] = []
    tasks = await start(b, vt, 22, done)
    tasks[20].cancel()
    await vt.run()
    assert tasks[20].cancelled()
    assert b.waiting == 0
    assert done[-1][0] == 21 and done[-1][1] == pytest.approx(2 * T)  # keeps its own slot


async def test_disabled_bucket_never_waits() -> None:
    async def no_sleep(delay: float) -> None:
        raise AssertionError("a disabled bucket must not sleep")

    b = LeakyBucket.from_settings(RateLimitSettings(enabled=False), sleep=no_sleep)
    for _ in range(100):
        await b.acquire()
    await b.penalize(60)
    await b.observe(0)
    await b.acquire()
    assert "disabled" in repr(b)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        LeakyBucket(0, 3.0)
    with pytest.raises(ValueError):
        LeakyBucket(20, 0)


async def test_a_reserve_leaves_tokens_for_interactive_callers_who_go_first(vt: Any) -> None:
    b = bucket(vt)
    done: list[tuple[str, float]] = []

    async def caller(name: str, reserve: int) -> None:
        await b.acquire(reserve=reserve)
        done.append((name, vt.now))

    # a bulk job with a reserve of 5 takes 15 tokens at once, then waits while 5 stay free
    bulk = [asyncio.create_task(caller(f"bulk{i}", 5)) for i in range(17)]
    await vt.settle()
    assert [n for n, t in done if t == 0.0] == [f"bulk{i}" for i in range(15)]
    # an interactive call arriving now starts at once, ahead of the waiting bulk requests
    interactive = asyncio.create_task(caller("get", 0))
    await vt.settle()
    assert done[-1] == ("get", 0.0)
    await vt.run()
    await asyncio.gather(*bulk, interactive)
    assert [n for n, _ in done[16:]] == ["bulk15", "bulk16"]
    assert all(t > 0 for _, t in done[16:])
