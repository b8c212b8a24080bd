"""What the memory backend adds on top of aiocache's SimpleMemoryCache: the LRU bound, counter
eviction policy and loop-independent expiry."""

from __future__ import annotations

import asyncio
import time

from odmcp_cache_memory.backend import MemoryBackend


async def test_bound_holds_under_ten_times_max_entries() -> None:
    b = MemoryBackend(max_entries=100)
    for i in range(1000):
        await b.set(f"k{i}", {"i": i, "pad": "x" * 50}, 30.0)
        assert len(b) <= 100
    assert len(b) == 100
    assert len(b._store._cache) == 100  # the aiocache store shrinks too, not just the index
    assert [await b.get(f"k{i}") for i in range(900)] == [None] * 900
    assert [(await b.get(f"k{i}"))["i"] for i in range(900, 1000)] == list(range(900, 1000))


async def test_least_recently_used_is_evicted_first() -> None:
    b = MemoryBackend(max_entries=3)
    for k in "abc":
        await b.set(k, k, 30.0)
    await b.set("d", "d", 30.0)
    assert await b.get("a") is None
    assert [await b.get(k) for k in "bcd"] == ["b", "c", "d"]


async def test_get_refreshes_recency() -> None:
    b = MemoryBackend(max_entries=3)
    for k in "abc":
        await b.set(k, k, 30.0)
    assert await b.get("a") == "a"  # a is now the most recently used; b is the oldest
    await b.set("d", "d", 30.0)
    assert await b.get("b") is None
    assert await b.get("a") == "a"
    await b.set("e", "e", 30.0)  # order now c, d, a -> c goes
    assert await b.get("c") is None
    assert {k: await b.get(k) for k in "ade"} == {"a": "a", "d": "d", "e": "e"}


async def test_overwrite_refreshes_recency_and_does_not_grow() -> None:
    b = MemoryBackend(max_entries=2)
    await b.set("a", 1, 30.0)
    await b.set("b", 1, 30.0)
    await b.set("a", 2, 30.0)
    assert len(b) == 2
    await b.set("c", 1, 30.0)
    assert await b.get("b") is None
    assert await b.get("a") == 2


async def test_counters_are_evicted_last() -> None:
    b = MemoryBackend(max_entries=3)
    assert await b.incr("gen") == 1
    for i in range(10):
        await b.set(f"k{i}", i, 30.0)
    assert await b.get("gen") == 1
    assert len(b) == 3
    assert await b.incr("gen") == 2


async def test_counter_never_goes_backwards_after_eviction_or_delete() -> None:
    b = MemoryBackend(max_entries=2)
    assert [await b.incr("g1") for _ in range(3)] == [1, 2, 3]
    assert await b.incr("g2") == 1
    assert await b.incr("g3") == 1  # three counters, bound 2: g1 (least recently used) goes
    assert await b.get("g1") is None
    assert await b.incr("g1") > 3  # recreated above every value a retired counter held
    seen = [await b.incr("g4")]
    await b.delete("g4")
    seen.append(await b.incr("g4"))
    await b.set("g4", "overwritten", 30.0)
    await b.delete("g4")
    seen.append(await b.incr("g4"))
    assert seen == sorted(set(seen))


async def test_expired_entries_are_dropped_lazily_and_evicted_first() -> None:
    b = MemoryBackend(max_entries=3)
    await b.set("old", 1, 0.05)
    await b.set("x", 1, 30.0)
    await b.set("y", 1, 30.0)
    await asyncio.sleep(0.1)
    await b.set("z", 1, 30.0)  # evicts "old", the least recently used (and expired) entry
    assert len(b) == 3
    assert [await b.get(k) for k in "xyz"] == [1, 1, 1]
    await b.set("gone", 1, 0.05)
    await asyncio.sleep(0.1)
    assert await b.get("gone") is None
    assert "gone" not in b._entries and "gone" not in b._store._cache


async def test_add_does_not_overwrite_a_counter() -> None:
    b = MemoryBackend(max_entries=10)
    await b.incr("gen")
    assert await b.add("gen", "value", 30.0) is False
    assert await b.get("gen") == 1


def test_expiry_survives_the_event_loop_that_set_it() -> None:
    """aiocache's memory TTL is a loop timer; ours is a deadline checked on read, in any loop."""
    b = MemoryBackend()
    asyncio.run(b.set("k", {"v": 1}, 0.1))
    assert asyncio.run(b.get("k")) == {"v": 1}
    time.sleep(0.2)
    assert asyncio.run(b.get("k")) is None
