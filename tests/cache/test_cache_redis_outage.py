"""A Redis that dies, hangs or restarts must make operations fail fast and then recover by itself.

Runs its own ``redis-server`` on a free port (never the shared one) and always stops it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import RedisError

from odmcp_cache_redis.backend import RedisBackend

#: an operation against a dead or hung Redis must give up within this (op_timeout is 0.25 s)
PROMPT = 1.0


@pytest.fixture
async def backend(own_redis: Any) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(own_redis.url, op_timeout=0.25)
    yield b
    await b.close()


def operations(b: RedisBackend) -> dict[str, Callable[[], Awaitable[Any]]]:
    async def locked() -> None:
        async with b.lock("lock:k", 5.0, 0.5):
            pass

    return {
        "get": lambda: b.get("k"),
        "set": lambda: b.set("k", {"v": 1}, 30.0),
        "add": lambda: b.add("k2", 1, 30.0),
        "delete": lambda: b.delete("k"),
        "incr": lambda: b.incr("gen"),
        "lock": locked,
    }


async def assert_all_fail_fast(b: RedisBackend) -> None:
    for name, op in operations(b).items():
        t0 = time.monotonic()
        with pytest.raises(RedisError) as info:  # ConnectionError (refused) or redis TimeoutError (silent)
            await asyncio.wait_for(op(), 5)  # the outer bound only catches a hang; PROMPT is the claim
        elapsed = time.monotonic() - t0
        assert elapsed < PROMPT, f"{name} took {elapsed:.2f}s to fail ({info.type.__name__})"
        # to the host, TimeoutError from a lock means "held elsewhere"; an outage must look different
        assert not isinstance(info.value, TimeoutError), f"{name} raised {info.type.__name__}"
    t0 = time.monotonic()
    assert await b.ping() is False
    assert time.monotonic() - t0 < PROMPT


async def test_killed_then_restarted(own_redis: Any, backend: RedisBackend) -> None:
    await backend.set("k", {"v": 1}, 30.0)
    assert await backend.get("k") == {"v": 1}

    own_redis.kill()
    await assert_all_fail_fast(backend)

    own_redis.start()  # same port, empty data (no persistence)
    assert await backend.ping() is True
    assert await backend.get("k") is None
    await backend.set("k", {"v": 2}, 30.0)
    assert await backend.get("k") == {"v": 2}
    assert await backend.incr("gen") == 1
    async with backend.lock("lock:k", 5.0, 0.5):
        pass


async def test_restart_heals_pooled_connections(own_redis: Any, backend: RedisBackend) -> None:
    # fill the pool with several live connections, then restart Redis behind their back
    await asyncio.gather(*(backend.set(f"k{i}", i, 30.0) for i in range(5)))
    own_redis.kill()
    own_redis.start()
    results = await asyncio.gather(*(backend.get(f"k{i}") for i in range(5)))
    assert results == [None] * 5  # stale sockets were retried on fresh ones, not surfaced as errors


async def test_hung_server_times_out_instead_of_hanging(own_redis: Any, backend: RedisBackend) -> None:
    await backend.set("k", 1, 30.0)
    own_redis.pause()
    try:
        await assert_all_fail_fast(backend)
    finally:
        own_redis.resume()
    assert await backend.get("k") == 1
