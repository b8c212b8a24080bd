"""Memory: RSS of an idle ``serve --transport http`` process, and after caching 10,000 ~3 KB orders.

    .venv/bin/python bench/bench_memory.py [--quick]

The gateway runs as ``python -m odmcp serve --transport http --config F`` (memory cache backend);
the sandbox runs in another process. RSS is ``VmRSS`` from ``/proc/<pid>/status``:

1. idle: 1 s after ``/healthz`` first answers, before any MCP call;
2. warm: after one MCP ``orders_get`` over HTTP and a few webhook posts (so code paths and pools that
   load lazily are not counted as cache);
3. after 10,000 distinct orders were cached *inside that process*, through its own public path: the
   orders are first created upstream (``POST /orders`` straight to the sandbox, not through the
   gateway), then each is read once with the MCP tool ``orders_get`` (8 clients over Streamable
   HTTP), which caches it. (Order posts to ``/webhooks/orderdesk`` no longer fill the cache: they
   only refresh an order already cached in an older version.) The orders are the sandbox's seeded
   demo orders padded with notes/checkout data to ~3 KB of JSON, with distinct source ids and emails.
   Afterwards ``orders_get`` of a sample of those ids must make no upstream request, which proves
   they are served from the cache.

``cache.max_entries`` is raised from its default 10,000 to 20,000 so that all 10,000 orders fit next
to the few other entries (store settings, list keys); ``cache.ttl.order`` is 3600 s so nothing expires
while reading. Target: <= +60 MB for the 10,000 orders (after - warm). The idle RSS against the SDK
alone is bench_idle.py's target. --quick changes nothing but the sample check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from common import (
    GatewayProcess,
    SandboxProcess,
    header,
    machine,
    parse_quick,
    remove_file,
    rss_mb,
    summary,
    target,
    unique_prefix,
    write_config,
)

N_ORDERS = 10_000
TARGET_BYTES = 3000
READERS = 8


def pad(order: dict[str, Any], i: int) -> dict[str, Any]:
    """A distinct ~3 KB order built from a realistic seeded one (the create body: no id)."""
    o: dict[str, Any] = json.loads(json.dumps(order))
    o.pop("id", None)
    o["source_id"] = f"bench-{i}"
    o["email"] = f"customer{i}@example.com"
    notes = list(o.get("order_notes") or [])
    k = 0
    while len(json.dumps(o)) < TARGET_BYTES - 150:
        notes.append(
            {
                "date_added": o.get("date_added", ""),
                "username": "Customer Service",
                "content": f"Follow-up #{k} for order bench-{i}: customer confirmed the address.",
            }
        )
        o["order_notes"] = notes
        k += 1
    o["checkout_data"] = {**(o.get("checkout_data") or {}), "Delivery Instructions": "Leave at the back door"}
    return o


async def post_all(
    session: aiohttp.ClientSession,
    url: str,
    store_id: str,
    api_key: str,
    orders: list[str],
    concurrency: int = 8,
) -> tuple[int, int]:
    ok = bad = 0
    queue = iter(orders)

    async def worker() -> None:
        nonlocal ok, bad
        for order_json in queue:
            signature = hmac.new(api_key.encode(), order_json.encode(), hashlib.sha256).hexdigest()
            async with session.post(
                url,
                data=urlencode({"order": order_json}),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Order-Desk-Store-Id": store_id,
                    "X-Order-Desk-Hash": signature,
                },
            ) as r:
                await r.read()
                if r.status == 200:
                    ok += 1
                else:
                    bad += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, bad


async def create_all(
    session: aiohttp.ClientSession, sb: SandboxProcess, bodies: list[dict[str, Any]], concurrency: int = 8
) -> tuple[list[str], float]:
    """Create the orders upstream (straight to the sandbox); returns their ids and average JSON size."""
    ids: list[str] = [""] * len(bodies)
    sizes: list[int] = [0] * len(bodies)
    queue = iter(enumerate(bodies))

    async def worker() -> None:
        for i, body in queue:
            async with session.post(sb.base_url + "/orders", json=body, headers=sb.headers()) as r:
                created = (await r.json())["order"]
            ids[i], sizes[i] = str(created["id"]), len(json.dumps(created))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids, sum(sizes) / len(sizes)


async def read_all(clients: list[Any], ids: list[str]) -> int:
    """``orders_get`` every id once, spread over the clients; returns how many answered without error."""
    queue = iter(ids)
    ok = 0

    async def worker(client: Any) -> None:
        nonlocal ok
        for oid in queue:
            r = await client.call_tool("orders_get", {"order_id": oid})
            ok += not r.is_error

    await asyncio.gather(*(worker(c) for c in clients))
    return ok


async def main() -> None:
    from mcp import Client

    args = parse_quick(__doc__.splitlines()[0])
    print(f"memory benchmark ({machine()}): serve --transport http, memory backend, {N_ORDERS} orders")
    async with SandboxProcess() as sb, aiohttp.ClientSession() as session:
        seeded = [await sb.order(oid) for oid in await sb.order_ids()]
        for o in seeded:
            o.pop("order_history", None)  # the admin read includes history; the API's order does not
        t0 = time.perf_counter()
        ids, avg = await create_all(session, sb, [pad(seeded[i % len(seeded)], i) for i in range(N_ORDERS)])
        create_s = time.perf_counter() - t0
        store = sb.config.stores[0]
        path = write_config(
            sb, unique_prefix("memory"), {"cache.max_entries": 20_000, "cache.ttl.order": 3600.0}
        )
        try:
            async with GatewayProcess(path) as gp, contextlib.AsyncExitStack() as stack:
                await asyncio.sleep(1.0)
                idle = rss_mb(gp.pid)
                hook = gp.base_url + "/webhooks/orderdesk"
                clients = [await stack.enter_async_context(Client(gp.mcp_url)) for _ in range(READERS)]
                client = clients[0]
                r = await client.call_tool("orders_get", {"order_id": str(seeded[0]["id"])})
                warm_ok = not r.is_error
                await post_all(
                    session, hook, store.store_id, store.api_key, [json.dumps(o) for o in seeded[:5]]
                )
                await asyncio.sleep(0.5)
                warm = rss_mb(gp.pid)
                t0 = time.perf_counter()
                ok = await read_all(clients, ids)
                fill_s = time.perf_counter() - t0
                await asyncio.sleep(1.0)
                after = rss_mb(gp.pid)
                step = max(1, N_ORDERS // (20 if args.quick else 200))
                sample = [*ids[::step], ids[-1]]
                await sb.clear_requests()
                hits = 0
                for oid in sample:
                    r = await client.call_tool("orders_get", {"order_id": oid})
                    hits += (not r.is_error) and str(r.structured_content["order"]["id"]) == oid
                upstream = len(await sb.requests(method="GET"))
                final = rss_mb(gp.pid)
        finally:
            remove_file(path)

    delta = after - warm
    header("results")
    print(
        f"  orders created upstream in {create_s:.1f} s; read through the gateway (orders_get, "
        f"{READERS} clients): {ok} ok in {fill_s:.1f} s ({ok / fill_s:.0f}/s); "
        f"average order JSON {avg:.0f} B ({avg * N_ORDERS / 1e6:.1f} MB of JSON in total)"
    )
    print(
        f"  cache check: {hits}/{len(sample)} sampled ids served from the cache, {upstream} upstream GETs "
        f"(warm-up call ok: {warm_ok})"
    )
    print(
        f"  RSS idle {idle:.1f} MB (against the SDK alone: bench_idle.py); warm {warm:.1f} MB; after {N_ORDERS} orders {after:.1f} MB "
        f"(+{delta:.1f} MB = {delta * 1024 * 1024 / N_ORDERS:.0f} B per order); after the check {final:.1f} MB"
    )
    target(
        "memory_10k_orders",
        f"+{delta:.1f} MB for {ok} orders of ~{avg / 1000:.1f} KB ({hits}/{len(sample)} verified cached)",
        "<= +60 MB",
        delta <= 60 and ok == N_ORDERS and hits == len(sample) and upstream == 0,
    )
    summary(
        "memory",
        f"idle {idle:.1f} MB, warm {warm:.1f} MB, +{delta:.1f} MB for {ok} cached ~{avg / 1000:.1f} KB orders",
    )


if __name__ == "__main__":
    asyncio.run(main())
