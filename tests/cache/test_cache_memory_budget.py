"""The memory cache is bounded in bytes, frees expired entries and superseded list pages by itself,
and list-generation counters expire (memory and the shared Redis alike)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from odmcp.cache import LISTGEN_TTL_MARGIN, Cache
from odmcp.config import CacheSettings
from odmcp.metrics import Metrics
from odmcp_cache_memory.backend import MemoryBackend
from odmcp_cache_redis.backend import RedisBackend

KB = 1024


def page(n_orders: int, tag: str) -> dict[str, Any]:
    """A list page like orders_list returns: ~2.4 KB per order."""
    order = {"id": "0", "email": "customer@example.com", "notes": "x" * 2300}
    return {"orders": [{**order, "id": f"{tag}-{i}"} for i in range(n_orders)], "tag": tag}


def cache_of(backend: Any, **settings: Any) -> Cache:
    return Cache(backend, CacheSettings(prefix=f"test-{uuid.uuid4().hex[:12]}", **settings), Metrics())


async def test_large_list_pages_stay_within_the_byte_budget() -> None:
    b = MemoryBackend(max_entries=10_000, max_bytes=1024 * KB)
    sizes = []
    for i in range(100):  # 100 pages of ~48 KB: ~4.8 MB offered to a 1 MB budget
        await b.set(f"p:1001:order:list:g{i}:d", page(20, str(i)), 60.0)
        sizes.append(b.bytes)
        assert b.bytes <= b.max_bytes
    assert len(b) < 25  # bounded by bytes long before the entry bound
    assert b.bytes == sum(len(v) for v in b._store._cache.values())  # measured on what is stored
    assert await b.get("p:1001:order:list:g0:d") is None  # least recently used went first
    assert (await b.get("p:1001:order:list:g99:d"))["tag"] == "99"


async def test_a_value_larger_than_the_budget_is_not_kept() -> None:
    b = MemoryBackend(max_bytes=64 * KB)
    await b.set("small", {"v": 1}, 60.0)
    await b.set("huge", page(40, "h"), 60.0)  # ~96 KB
    assert await b.get("huge") is None and await b.get("small") == {"v": 1}
    await b.set("small", page(40, "h"), 60.0)  # an oversized overwrite drops the old value too
    assert await b.get("small") is None and b.bytes == 0
    assert await b.add("other", page(40, "h"), 60.0) is False


async def test_expired_entries_are_freed_without_being_read() -> None:
    b = MemoryBackend()
    for i in range(50):
        await b.set(f"short{i}", page(4, str(i)), 0.05)
    await b.set("long", {"v": 1}, 60.0)
    held = b.bytes
    await asyncio.sleep(0.1)
    assert await b.purge_expired() == 50
    assert len(b) == 1 and b.bytes < held // 50
    assert len(b._store._cache) == 1
    await b.set("short", {"v": 2}, 0.05)
    await asyncio.sleep(0.1)
    await b.set("next", {"v": 3}, 60.0)  # every write frees what has expired, too
    assert "short" not in b._entries and len(b) == 2


async def test_the_plugin_purges_while_the_gateway_runs(gateway_factory, monkeypatch) -> None:
    from odmcp_cache_memory import plugin

    monkeypatch.setattr(plugin, "PURGE_INTERVAL", 0.05)
    gw = gateway_factory()
    await gw.startup()
    try:
        assert gw.cache is not None
        backend = gw.cache.backend
        assert isinstance(backend, MemoryBackend)
        await backend.set("k", {"v": 1}, 0.05)
        await asyncio.sleep(0.3)
        assert len(backend) == 0  # freed by the task, nobody touched the key
    finally:
        await gw.shutdown()
    assert "cache_memory.purge" not in gw.state


async def test_bumping_a_list_generation_frees_the_superseded_pages_at_once() -> None:
    cache = cache_of(MemoryBackend())
    backend = cache.backend
    assert isinstance(backend, MemoryBackend)

    async def fill(store: str, params: dict[str, Any]) -> str:
        key = await cache.list_key(store, "order", params)

        async def load() -> dict[str, Any]:
            return page(20, key)

        await cache.get_or_load(key, load, 60.0)
        return key

    old = [await fill("1001", {"page": p}) for p in range(5)]
    other = await fill("2002", {"page": 0})
    held = backend.bytes
    await cache.invalidate("1001", "order", None, lists=True)
    assert [await backend.get(k) for k in old] == [None] * 5
    assert backend.bytes < held / 5  # only store 2002's page is left
    assert await backend.get(other) is not None
    new = await fill("1001", {"page": 0})
    assert new not in old and await backend.get(new) is not None
    await cache.invalidate("1001", "order", None, lists=True)  # and again from a live counter
    assert await backend.get(new) is None and await backend.get(other) is not None


async def test_memory_generation_counters_expire_and_never_repeat() -> None:
    b = MemoryBackend()
    assert await b.incr("x:listgen", ttl=0.05) == 1
    assert await b.incr("x:listgen", ttl=0.05) == 2
    await asyncio.sleep(0.1)
    assert await b.get("x:listgen") is None and len(b) == 0
    assert await b.incr("x:listgen", ttl=0.05) == 3  # above every value the expired one held


async def test_cache_gives_generation_counters_a_ttl_longer_than_any_list_page() -> None:
    cache = cache_of(MemoryBackend(), ttl={"list": 10.0})
    await cache.invalidate("1001", "order", None, lists=True)
    backend = cache.backend
    assert isinstance(backend, MemoryBackend)
    left = backend._counters[cache.gen_key("1001", "order")] - time.monotonic()
    assert 10.0 < left <= 10.0 + LISTGEN_TTL_MARGIN


async def test_redis_generation_counters_expire_and_restart_above_old_values(redis_url: str) -> None:
    backend = RedisBackend(redis_url, op_timeout=1.0)
    if not await backend.ping():
        await backend.close()
        pytest.fail("no Redis on 127.0.0.1:6379: the test suite needs one (see README)")
    cache = cache_of(backend, ttl={"list": 10.0})
    gen = cache.gen_key("1001", "order")
    key = cache.key("other")
    try:
        await cache.invalidate("1001", "order", None, lists=True)
        ttl_ms = await backend.client.pttl(gen)
        assert 10_000 < ttl_ms <= (10 + LISTGEN_TTL_MARGIN) * 1000
        first = int(await backend.get(gen))
        assert first > time.time_ns() // 1000 - 60_000_000  # seeded from the clock, not 1
        await cache.invalidate("1001", "order", None, lists=True)
        assert int(await backend.get(gen)) == first + 1
        await backend.client.delete(gen)  # as if it had expired
        await asyncio.sleep(0.002)
        assert await backend.incr(gen, ttl=5.0) > first + 1  # a new counter starts above the old
        assert await backend.incr(key) == 1  # no TTL: a plain counter, as before
        assert await backend.client.pttl(key) == -1
    finally:
        await backend.client.delete(gen, key)
        await backend.close()
