"""The Redis backend's lock excludes other connections *and other processes* (aiocache's RedLock
does not), gives up with TimeoutError after ``wait``, and frees itself when a holder dies."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator

import pytest

from odmcp_cache_redis.backend import RedisBackend

URL = "redis://127.0.0.1:6379/0"

HOLDER = """
import sys, redis
r = redis.Redis(host="127.0.0.1", port=6379, db=0)
lock = r.lock(sys.argv[1], timeout=float(sys.argv[2]), blocking=False)
print("locked" if lock.acquire() else "busy", flush=True)
sys.stdin.read()  # hold until the parent closes stdin (or kills us: the lease frees the key)
if lock.owned():
    lock.release()
r.close()
"""

TRY_LOCK = """
import sys, redis
r = redis.Redis(host="127.0.0.1", port=6379, db=0)
lock = r.lock(sys.argv[1], timeout=5, blocking=False)
got = lock.acquire()
print("locked" if got else "busy", flush=True)
if got:
    lock.release()
r.close()
"""


@pytest.fixture
async def key() -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex}:lock:order:1"
    yield name
    cleanup = RedisBackend(URL)
    try:
        await cleanup.client.delete(name)
    finally:
        await cleanup.close()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    """Two backends with their own pools: as two gateway replicas would be."""
    a, b = RedisBackend(URL, op_timeout=0.5), RedisBackend(URL, op_timeout=0.5)
    if not await a.ping():
        await a.close()
        await b.close()
        pytest.fail("no Redis on 127.0.0.1:6379: the test suite needs one (see README)")
    yield a, b
    await a.close()
    await b.close()


async def test_second_holder_waits_then_times_out(pair: tuple[RedisBackend, RedisBackend], key: str) -> None:
    a, b = pair
    async with a.lock(key, 10.0, 1.0):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            async with b.lock(key, 10.0, 0.3):
                pytest.fail("entered a lock another connection holds")
        waited = time.monotonic() - t0
        assert 0.2 <= waited < 1.0
    async with b.lock(key, 10.0, 0.3):  # free again once released
        pass


async def test_waiter_enters_when_holder_releases(pair: tuple[RedisBackend, RedisBackend], key: str) -> None:
    a, b = pair
    order: list[str] = []

    held = asyncio.Event()

    async def holder() -> None:
        async with a.lock(key, 10.0, 1.0):
            order.append("a-in")
            held.set()
            await asyncio.sleep(0.2)
            order.append("a-out")

    task = asyncio.create_task(holder())
    await held.wait()
    async with b.lock(key, 10.0, 2.0):
        order.append("b-in")
    await task
    assert order == ["a-in", "a-out", "b-in"]


async def test_lease_frees_the_key_after_a_crashed_holder(
    pair: tuple[RedisBackend, RedisBackend], key: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    crashed = a.lock(key, 0.3, 1.0)
    await crashed.__aenter__()  # and never __aexit__: the holder "crashed" ...
    assert crashed._renewer is not None
    crashed._renewer.cancel()  # ... and with its process went the lease renewal
    t0 = time.monotonic()
    async with b.lock(key, 10.0, 2.0):
        assert 0.15 <= time.monotonic() - t0 < 1.5
        # the crashed holder coming back late must not release b's lock (token compare-and-delete)
        with caplog.at_level(logging.WARNING, logger="odmcp_cache_redis"):
            await crashed.__aexit__(None, None, None)
        assert "expired before release" in caplog.text
        assert await b.client.exists(key) == 1


async def test_lock_held_in_another_process_excludes_this_one(
    pair: tuple[RedisBackend, RedisBackend], key: str
) -> None:
    a, _ = pair
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, key, "10", stdin=PIPE, stdout=PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.strip() == b"locked"
        with pytest.raises(TimeoutError):
            async with a.lock(key, 10.0, 0.3):
                pytest.fail("entered a lock held by another process")
        proc.stdin.close()  # the other process releases and exits
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        async with a.lock(key, 10.0, 1.0):
            pass
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_lock_held_here_excludes_another_process(
    pair: tuple[RedisBackend, RedisBackend], key: str
) -> None:
    a, _ = pair

    async def other_process() -> str:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", TRY_LOCK, key, stdout=PIPE)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return out.decode().strip()

    async with a.lock(key, 10.0, 1.0):
        assert await other_process() == "busy"
    assert await other_process() == "locked"


async def test_a_held_lock_is_renewed_beyond_its_lease() -> None:
    """A slow holder keeps the lock: the lease is renewed while held, and the key dies with a crash."""
    import uuid

    from odmcp_cache_redis.backend import RedisBackend

    a, b = RedisBackend("redis://127.0.0.1:6379/0"), RedisBackend("redis://127.0.0.1:6379/0")
    key = f"test-renew-{uuid.uuid4().hex}"
    try:
        holder = a.lock(key, lease=0.3, wait=0.0)
        assert holder is not None
        async with holder:
            await asyncio.sleep(0.8)  # well past the 0.3 s lease
            other = b.lock(key, lease=0.3, wait=0.05)
            assert other is not None
            with pytest.raises(TimeoutError):
                async with other:
                    pass
        again = b.lock(key, lease=0.3, wait=0.5)
        assert again is not None
        async with again:  # released on exit: free at once
            pass
    finally:
        await a.close()
        await b.close()


RENEWING_HOLDER = """
import asyncio, sys
from odmcp.config import MutationSettings
from odmcp_cache_redis.backend import RedisBackend

async def main():
    backend = RedisBackend("redis://127.0.0.1:6379/0")
    async with backend.lock(sys.argv[1], MutationSettings().lock_lease, 1.0):
        print("locked", flush=True)
        await asyncio.sleep(3600)  # a replica at work, renewing its lease, until it is killed

asyncio.run(main())
"""


async def test_a_killed_holder_blocks_the_key_for_at_most_the_default_lease(
    pair: tuple[RedisBackend, RedisBackend], key: str
) -> None:
    """``kill -9`` of a replica holding an order's lock: another replica gets it within the default
    lease (5 s), where the old 30 s default blocked the order for half a minute."""
    from odmcp.config import MutationSettings

    lease = MutationSettings().lock_lease
    a, _ = pair
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", RENEWING_HOLDER, key, stdout=PIPE)
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"locked"
        with pytest.raises(TimeoutError):  # alive: it keeps the lock
            async with a.lock(key, lease, 0.2):
                pytest.fail("entered a lock held by a live replica")
        proc.kill()
        await proc.wait()
        t0 = time.monotonic()
        async with a.lock(key, lease, lease + 2):
            took = time.monotonic() - t0
        assert took <= lease + 0.5, took
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
