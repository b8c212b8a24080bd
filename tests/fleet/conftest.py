"""Fixtures for the fleet tests: caches on the shared Redis under a private prefix, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from odmcp.cache import Cache
from odmcp.config import CacheSettings
from odmcp.metrics import Metrics
from odmcp_cache_redis.backend import RedisBackend


@pytest.fixture
def prefix() -> str:
    return f"test-fleet-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def replicas(prefix: str, redis_url: str) -> AsyncIterator[Callable[..., Cache]]:
    """``replicas(url=None, **settings)``: a new Cache on Redis, as one more replica would have."""
    made: list[Cache] = []

    def make(url: str | None = None, **settings: Any) -> Cache:
        cs = CacheSettings(backend="redis", prefix=prefix, redis_url=url or redis_url, **settings)
        cache = Cache(RedisBackend.from_settings(cs), cs, Metrics())
        made.append(cache)
        return cache

    yield make
    cleanup = RedisBackend(redis_url)
    try:
        keys = [k async for k in cleanup.client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await cleanup.client.delete(*keys)
    finally:
        await cleanup.close()
        for cache in made:
            await cache.close()


class StepTime:
    """A clock that moves only when someone sleeps; each sleep returns at once and is recorded.

    ``on_sleep`` (async, optional) runs inside a sleep before the clock moves: what other replicas do
    while this one waits.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], Any] | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(round(delay, 6))
        if self.on_sleep is not None:
            hook, self.on_sleep = self.on_sleep, None
            await hook(delay)
        self.now += max(0.0, delay)


@pytest.fixture
def step_time() -> StepTime:
    return StepTime()
