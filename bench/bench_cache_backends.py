"""Per-operation latency of the cache backends for a ~3 KB OrderDesk-like order dict.

    .venv/bin/python bench/bench_cache_backends.py [--rounds N] [--redis-url URL]

Sequential awaits over 50 rotating keys; median and p99 per ``set`` and ``get`` in µs. Raw aiocache
``SimpleMemoryCache(timeout=None)`` is the reference: it stores references (no copy, no LRU, no
expiry check), so the gap to ``MemoryBackend`` is the price of copy semantics and the LRU index.
Redis keys live under a fresh ``bench-<uuid>`` prefix and are deleted one by one afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiocache import SimpleMemoryCache

from odmcp_cache_memory.backend import MemoryBackend
from odmcp_cache_redis.backend import RedisBackend

KEYS = 50


def make_order() -> dict[str, Any]:
    fields = ("first_name", "last_name", "company", "address1", "address2", "city", "state", "postal_code")
    address = {k: f"{k.replace('_', ' ').title()} value" for k in fields}
    items = [
        {
            "id": str(9000 + i),
            "name": f"Item {i} - Größe M",
            "price": 19.9 + i,
            "quantity": i + 1,
            "weight": 0.25,
            "code": f"SKU-{i:04d}",
            "delivery_type": "ship",
            "category_code": "apparel",
            "variation_list": {"Size": "M", "Color": "Blue"},
            "metadata": {"gift": i % 2 == 0, "note": ""},
        }
        for i in range(6)
    ]
    order: dict[str, Any] = {
        "id": "123456789",
        "email": "jane.doe@example.com",
        "shipping_method": "UPS Ground",
        "quantity_total": 21,
        "weight_total": 1.5,
        "product_total": 164.4,
        "shipping_total": 9.95,
        "handling_total": 0.0,
        "tax_total": 13.1,
        "discount_total": 0.0,
        "order_total": 187.45,
        "cc_number_masked": "xxxx-1111",
        "cc_exp": "12/29",
        "processor_response": "Approved",
        "payment_type": "Visa",
        "payment_status": "Approved",
        "processor_balance": 187.45,
        "customer_id": "55501",
        "email_count": 2,
        "ip_address": "203.0.113.7",
        "tag_color": "",
        "source_name": "Shopify",
        "source_id": "4711",
        "fulfillment_name": "",
        "fulfillment_id": "",
        "tag_name": "",
        "folder_id": 7,
        "date_added": "2026-05-01 10:11:12",
        "date_updated": "2026-05-02 08:09:10",
        "shipping": address,
        "customer": dict(address),
        "return_address": dict(address),
        "checkout_data": {"Gift Message": "Happy birthday!", "Delivery": "Leave at door"},
        "order_metadata": {"priority": "high", "channel": "web"},
        "discount_list": [],
        "order_notes": [{"date": "2026-05-01", "note": "Customer called"}],
        "order_items": items,
        "order_shipments": [],
    }
    return order


async def measure(
    set_op: Callable[[str, Any], Awaitable[Any]],
    get_op: Callable[[str], Awaitable[Any]],
    keys: list[str],
    value: Any,
    rounds: int,
) -> tuple[list[float], list[float]]:
    sets: list[float] = []
    gets: list[float] = []
    for key in keys:  # warm up (and make every get a hit)
        await set_op(key, value)
        await get_op(key)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for key in keys:
            t0 = clock()
            await set_op(key, value)
            t1 = clock()
            got = await get_op(key)
            t2 = clock()
            sets.append((t1 - t0) / 1000)
            gets.append((t2 - t1) / 1000)
            assert got is not None
    return sets, gets


def summarize(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="passes over the 50 keys (default 200)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    order = make_order()
    size = len(msgspec.json.encode(order))
    prefix = f"bench-{uuid.uuid4().hex}"
    keys = [f"{prefix}:store1:order:{i}" for i in range(KEYS)]
    results: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}

    raw = SimpleMemoryCache(timeout=None)
    s, g = await measure(lambda k, v: raw.set(k, v), raw.get, keys, order, args.rounds)
    results["aiocache SimpleMemoryCache (reference)"] = (summarize(s), summarize(g))

    memory = MemoryBackend(max_entries=10_000)
    s, g = await measure(lambda k, v: memory.set(k, v, 30.0), memory.get, keys, order, args.rounds)
    results["MemoryBackend"] = (summarize(s), summarize(g))
    await memory.close()

    redis = RedisBackend(args.redis_url, op_timeout=1.0)
    try:
        if await redis.ping():
            s, g = await measure(lambda k, v: redis.set(k, v, 30.0), redis.get, keys, order, args.rounds)
            results["RedisBackend"] = (summarize(s), summarize(g))
            await redis.client.delete(*keys)
        else:
            print(f"(no Redis at {args.redis_url}: RedisBackend skipped)")
    finally:
        await redis.close()

    print(f"order: {size} B JSON, {KEYS} keys x {args.rounds} rounds = {KEYS * args.rounds} samples per op")
    print(f"{'backend':40s} {'set med':>8s} {'set p99':>8s} {'get med':>8s} {'get p99':>8s}   (µs)")
    for name, ((sm, sp), (gm, gp)) in results.items():
        print(f"{name:40s} {sm:8.1f} {sp:8.1f} {gm:8.1f} {gp:8.1f}")
    summary = ", ".join(f"{n.split()[0]} set {r[0][0]:.1f}/get {r[1][0]:.1f}" for n, r in results.items())
    print(f"SUMMARY (median µs, {size} B order): {summary}")


if __name__ == "__main__":
    asyncio.run(main())
