"""The fenced lease (``MutationLocks.hold`` → ``Lease``) on the shared Redis, between two replicas."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from odmcp.cache import Cache
from odmcp.errors import LeaseLost, Unavailable
from odmcp.locks import MutationLocks

KEY = "1001:order:42"


def locks(cache: Cache, lease: float = 1.0, wait: float = 10.0) -> MutationLocks:
    return MutationLocks(cache, lease, wait)


async def test_guard_records_a_fence_that_settled_clears(replicas: Callable[..., Cache]) -> None:
    cache = replicas()
    fence = cache.lock_key(KEY) + ":fence"
    async with locks(cache).hold(KEY) as lease:
        assert lease.shared and lease.key == KEY
        await lease.guard(30.0)
        assert 29_000 < await cache.backend.client.pttl(fence) <= 30_000
        await lease.settled()
        assert await cache.backend.client.exists(fence) == 0
    assert await cache.backend.client.exists(cache.lock_key(KEY)) == 0


async def test_the_lock_and_its_fence_share_the_stores_hash_tag(replicas: Callable[..., Cache]) -> None:
    cache = replicas()
    assert cache.lock_key(KEY).startswith(f"{cache.settings.prefix}:{{1001}}:lock:order:42")
    assert cache.obj_key("1001", "order", "42") == f"{cache.settings.prefix}:{{1001}}:order:42"


async def test_a_holder_that_died_mid_write_is_waited_out_and_one_that_finished_is_not(
    replicas: Callable[..., Cache], caplog: pytest.LogCaptureFixture
) -> None:
    """The first holder's lock lapses (its renewal stopped, as in a dead process) while its fence is
    set: the second holder waits, and goes on as soon as the fence is cleared (the request finished)."""
    dead, alive = replicas(), replicas()
    first = locks(dead, lease=0.3)
    entered = asyncio.Event()
    cleared = asyncio.Event()

    async def doomed() -> None:
        async with first.hold(KEY) as lease:
            lock = lease._lock
            assert lock is not None
            lock._renewer.cancel()  # type: ignore[attr-defined]  # the process "dies": no more renewals
            await lease.guard(20.0)
            entered.set()
            await cleared.wait()
            await lease.settled()  # the request it sent has finished

    task = asyncio.create_task(doomed())
    await entered.wait()
    caplog.set_level(logging.WARNING, logger="odmcp.locks")
    t0 = time.monotonic()

    async def finish_later() -> None:
        await asyncio.sleep(1.0)
        cleared.set()

    finisher = asyncio.create_task(finish_later())
    async with locks(alive).hold(KEY) as lease:
        waited = time.monotonic() - t0
        await lease.guard(5.0)
        await lease.settled()
    await asyncio.gather(task, finisher)
    assert 0.9 < waited < 3.0, waited  # waited for the request, not for the 20 s deadline
    assert any("left a write in flight" in r.getMessage() and KEY in r.getMessage() for r in caplog.records)


async def test_guard_refuses_once_the_lock_was_taken_over(replicas: Callable[..., Cache]) -> None:
    a, b = replicas(), replicas()
    async with locks(a, lease=0.3).hold(KEY) as lease:
        lock = lease._lock
        assert lock is not None
        lock._renewer.cancel()  # type: ignore[attr-defined]  # a stalled holder: no renewal
        async with locks(b).hold(KEY):
            with pytest.raises(LeaseLost) as info:
                await lease.guard(5.0)
    assert info.value.retryable and "nothing was written" in str(info.value)
    assert str(info.value).startswith("CONFLICT: ")


async def test_hold_refuses_when_the_shared_backend_is_down(
    own_redis: object, replicas: Callable[..., Cache]
) -> None:
    cache = replicas(url=own_redis.url)  # type: ignore[attr-defined]
    own_redis.stop()  # type: ignore[attr-defined]
    with pytest.raises(Unavailable) as info:
        async with locks(cache).hold(KEY):
            pass
    assert str(info.value).startswith("UNAVAILABLE: the shared lock is unavailable")
    assert info.value.retryable and "nothing was written" in str(info.value)
