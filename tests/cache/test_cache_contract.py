"""One contract for every cache backend: the host's facade must not care which one it was given.

The Redis run uses the shared server on 127.0.0.1:6379 with a fresh ``test-<uuid>`` prefix per test
and deletes exactly the keys the test touched (never KEYS, FLUSHDB or clear()).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from odmcp.cache_backend import CacheBackend
from odmcp.config import CacheSettings
from odmcp_cache_memory import plugin as memory_plugin
from odmcp_cache_memory.backend import MemoryBackend
from odmcp_cache_redis import plugin as redis_plugin
from odmcp_cache_redis.backend import RedisBackend

SHARED_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Harness:
    backend: CacheBackend
    prefix: str
    used: list[str] = field(default_factory=list)

    def key(self, name: str, prefix: str | None = None) -> str:
        """A fully built key (the host adds the prefix; backends store keys as given)."""
        key = f"{prefix or self.prefix}:{name}"
        self.used.append(key)
        return key


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    prefix = f"test-{uuid.uuid4().hex}"
    if request.param == "memory":
        mem = MemoryBackend(max_entries=1000)
        yield Harness(mem, prefix)
        await mem.close()
        return
    backend = RedisBackend(SHARED_REDIS, op_timeout=0.5)
    if not await backend.ping():
        await backend.close()
        pytest.fail("no Redis on 127.0.0.1:6379: the test suite needs one (see README)")
    harness = Harness(backend, prefix)
    try:
        yield harness
    finally:
        if harness.used:
            await backend.client.delete(*harness.used)
        await backend.close()


ORDER: dict[str, Any] = {
    "id": "1001",
    "email": "zoë@example.com",
    "order_total": 129.9,
    "folder_id": 7,
    "paid": True,
    "shipping": {"first_name": "Zoë", "city": "Zürich", "note": "日本語 ✓ 🚚"},
    "order_items": [
        {"id": "1", "name": "Größe L", "price": 19.9, "quantity": 2, "variation_list": {"Size": "L"}},
        {
            "id": "2",
            "name": "Café",
            "price": 0.1,
            "quantity": 1,
            "metadata": {"deep": [[1, [2, {"x": None}]]]},
        },
    ],
    "big": 2**53 + 1,
    "negative": -3,
    "empty": {"list": [], "dict": {}, "str": ""},
}


async def test_backend_shape(cache: Harness) -> None:
    assert isinstance(cache.backend, CacheBackend)
    assert cache.backend.name in {"memory", "redis"}
    assert cache.backend.local is (cache.backend.name == "memory")
    assert await cache.backend.ping() is True


async def test_get_set_miss(cache: Harness) -> None:
    b, k = cache.backend, cache.key("order:1")
    assert await b.get(k) is None
    await b.set(k, {"a": 1}, 30.0)
    assert await b.get(k) == {"a": 1}
    await b.set(k, ["overwritten", 2], 30.0)
    assert await b.get(k) == ["overwritten", 2]
    for scalar in ("text", 42, 1.5, False, True, 0):
        await b.set(k, scalar, 30.0)
        got = await b.get(k)
        assert got == scalar and type(got) is type(scalar)


async def test_ttl_expiry(cache: Harness) -> None:
    b, short, long = cache.backend, cache.key("short"), cache.key("long")
    await b.set(short, {"v": 1}, 0.5)
    await b.set(long, {"v": 2}, 30.0)
    assert await b.get(short) == {"v": 1}
    await asyncio.sleep(0.8)
    assert await b.get(short) is None
    assert await b.get(long) == {"v": 2}
    assert await b.delete(short) is False  # expired means gone
    assert await b.add(short, {"v": 3}, 30.0) is True  # and free again


async def test_integer_ttl_is_accepted(cache: Harness) -> None:
    # an int TTL must not reach aiocache's deprecated setex path (warnings are errors here)
    await cache.backend.set(cache.key("int-ttl"), 1, 5)  # deliberately an int
    assert await cache.backend.get(cache.key("int-ttl")) == 1


async def test_non_positive_ttl_stores_nothing(cache: Harness) -> None:
    b, k = cache.backend, cache.key("zero")
    await b.set(k, "old", 30.0)
    await b.set(k, "new", 0.0)
    assert await b.get(k) is None
    assert await b.add(k, "x", 0.0) is True
    assert await b.get(k) is None


async def test_add_is_set_if_absent(cache: Harness) -> None:
    b, k = cache.backend, cache.key("idem")
    assert await b.add(k, {"first": True}, 30.0) is True
    assert await b.add(k, {"second": True}, 30.0) is False
    assert await b.get(k) == {"first": True}
    assert await b.delete(k) is True
    assert await b.add(k, {"third": True}, 30.0) is True
    assert await b.get(k) == {"third": True}


async def test_add_with_short_ttl_expires(cache: Harness) -> None:
    b, k = cache.backend, cache.key("add-ttl")
    assert await b.add(k, 1, 0.15) is True
    await asyncio.sleep(0.3)
    assert await b.get(k) is None
    assert await b.add(k, 2, 30.0) is True


async def test_concurrent_add_has_one_winner(cache: Harness) -> None:
    k = cache.key("race")
    results = await asyncio.gather(*(cache.backend.add(k, i, 30.0) for i in range(20)))
    assert results.count(True) == 1


async def test_delete(cache: Harness) -> None:
    b, k = cache.backend, cache.key("gone")
    assert await b.delete(k) is False
    await b.set(k, 1, 30.0)
    assert await b.delete(k) is True
    assert await b.get(k) is None
    assert await b.delete(k) is False


async def test_incr_is_monotonic(cache: Harness) -> None:
    b, k = cache.backend, cache.key("orders:listgen")
    assert await b.get(k) is None
    assert [await b.incr(k) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert await b.get(k) == 5  # the host reads generations with get
    values = await asyncio.gather(*(b.incr(k) for _ in range(50)))
    assert sorted(values) == list(range(6, 56))
    assert await b.get(k) == 55


async def test_incr_on_a_value_is_a_type_error(cache: Harness) -> None:
    k = cache.key("not-a-counter")
    await cache.backend.set(k, {"a": 1}, 30.0)
    with pytest.raises(TypeError):
        await cache.backend.incr(k)
    assert await cache.backend.get(k) == {"a": 1}


async def test_values_are_copied(cache: Harness) -> None:
    b, k = cache.backend, cache.key("order:copy")
    value: dict[str, Any] = {"items": [{"qty": 1}], "tags": ["a"]}
    await b.set(k, value, 30.0)
    value["items"][0]["qty"] = 99
    value["tags"].append("mutated-after-set")
    first = await b.get(k)
    assert first == {"items": [{"qty": 1}], "tags": ["a"]}
    first["items"][0]["qty"] = 42
    first["new"] = True
    second = await b.get(k)
    assert second == {"items": [{"qty": 1}], "tags": ["a"]}
    assert second is not first
    added = {"x": [1]}
    assert await b.add(cache.key("order:copy-add"), added, 30.0)
    added["x"].append(2)
    assert await b.get(cache.key("order:copy-add")) == {"x": [1]}


async def test_unicode_and_nested_values(cache: Harness) -> None:
    b = cache.backend
    k = cache.key("ordér:ünïcode:日本:🚚")
    await b.set(k, ORDER, 30.0)
    got = await b.get(k)
    assert got == ORDER
    assert got["big"] == 2**53 + 1 and isinstance(got["order_total"], float)


async def test_unencodable_value_leaves_cache_unchanged(cache: Harness) -> None:
    b, k = cache.backend, cache.key("bad")
    await b.set(k, {"ok": 1}, 30.0)
    with pytest.raises(TypeError):
        await b.set(k, {"bad": object()}, 30.0)
    assert await b.get(k) == {"ok": 1}


async def test_prefix_isolation(cache: Harness) -> None:
    b = cache.backend
    other = f"test-{uuid.uuid4().hex}"
    mine, theirs = cache.key("order:1"), cache.key("order:1", prefix=other)
    # a prefix that is a string prefix of the other must not collide either
    longer = cache.key("order:1", prefix=cache.prefix + "x")
    await b.set(mine, "mine", 30.0)
    await b.set(theirs, "theirs", 30.0)
    await b.set(longer, "longer", 30.0)
    assert await b.get(mine) == "mine"
    assert await b.get(theirs) == "theirs"
    assert await b.delete(theirs) is True
    assert await b.get(mine) == "mine"
    assert await b.get(longer) == "longer"
    assert await b.incr(cache.key("gen")) == 1
    assert await b.incr(cache.key("gen", prefix=other)) == 1


async def test_lock_shape(cache: Harness) -> None:
    cm = cache.backend.lock(cache.key("lock:x"), 5.0, 0.5)
    if cache.backend.local:
        assert cm is None  # the host's asyncio locks are enough in one process
        return
    assert isinstance(cache.backend, RedisBackend) and cm is not None
    async with cm:
        assert await cache.backend.client.exists(cache.key("lock:x")) == 1
    assert await cache.backend.client.exists(cache.key("lock:x")) == 0


async def test_close_is_idempotent(cache: Harness) -> None:
    await cache.backend.close()
    await cache.backend.close()


@pytest.mark.parametrize(
    ("module", "name", "factory_of"),
    [(memory_plugin, "memory", MemoryBackend), (redis_plugin, "redis", RedisBackend)],
)
async def test_plugin_registers_factory(module: Any, name: str, factory_of: type) -> None:
    registered: dict[str, Callable[[CacheSettings], CacheBackend]] = {}
    module.gateway_register_cache_backends(register=lambda n, f: registered.__setitem__(n, f))
    assert list(registered) == [name]
    backend = registered[name](
        CacheSettings(backend=name, max_entries=5, redis_url=SHARED_REDIS, op_timeout=0.3)
    )
    try:
        assert isinstance(backend, factory_of)
        assert backend.name == name
    finally:
        await backend.close()


def test_redis_url_is_parsed_into_the_pool() -> None:
    b = RedisBackend("rediss://user:p%40ss@cache.internal:6380/3?socket_timeout=2", op_timeout=0.3)
    kw = b.client.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"]) == ("cache.internal", 6380, 3)
    assert (kw["username"], kw["password"]) == ("user", "p@ss")
    assert kw["socket_timeout"] == 2.0  # an explicit URL option wins
    assert kw["socket_connect_timeout"] == 0.3
    assert b.client.connection_pool.connection_class.__name__ == "SSLConnection"
    plain = RedisBackend("redis://127.0.0.1", op_timeout=0.3).client.connection_pool.connection_kwargs
    assert (plain["port"], plain["db"], plain["socket_timeout"]) == (6379, 0, 0.3)
    with pytest.raises(ValueError, match="unix socket"):
        RedisBackend("unix:///tmp/redis.sock")


async def test_redis_lock_needs_a_lease() -> None:
    b = RedisBackend(SHARED_REDIS)
    try:
        with pytest.raises(ValueError, match="lease"):
            b.lock("test-x:lock", 0, 1.0)
    finally:
        await b.close()
