"""Contention: many agents updating ONE order at once, with and without the mutation lock.

    .venv/bin/python bench/bench_contention.py [--quick]

20 agents x 5 updates each (--quick: 10 x 3) on one order; every update sets its own
``order_metadata`` key, so at the end the order must hold one key per successful update. Lost updates
= successful updates whose key is missing. The sandbox runs in its own process with 5 ms latency per
request (so read-merge-write races are visible) and its rate limit off. Four runs, each on a fresh order:

1. 1 process  - one in-process gateway (memory cache, in-process lock), each agent its own MCP Client;
2. 2 processes - two ``serve --transport http`` gateways sharing one Redis (cache and lock), agents split
   between them, each agent its own Streamable HTTP MCP Client;
3. and 4. the same two with ``mutations.lock = false``: the losses the lock prevents.

The upper bound for one order is 1 / (GET + PUT latency): with the lock, updates of one order are
strictly serial. GET + PUT is measured in the same run (raw aiohttp, sequential, median of 20).
Target: 0 lost updates with the lock (1 and 2 processes).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
from common import (
    REDIS_URL,
    GatewayProcess,
    SandboxProcess,
    build_gateway,
    cache_keys_for_orders,
    delete_redis_keys,
    header,
    machine,
    parse_quick,
    remove_file,
    summary,
    target,
    tool_error_text,
    unique_prefix,
    write_config,
)

LATENCY_MS = 5.0


async def get_put_latency(sb: SandboxProcess, order_id: str, rounds: int = 20) -> float:
    """Median seconds of one raw GET + PUT of an order (what one locked update must spend upstream)."""
    url = f"{sb.base_url}/orders/{order_id}"
    headers = sb.headers()  # no Content-Type on the GET (OrderDesk asks for none); json= sets it on the PUT
    samples = []
    async with aiohttp.ClientSession() as s:
        for i in range(rounds + 2):
            t0 = time.perf_counter()
            async with s.get(url, headers=headers) as r:
                order = (await r.json())["order"]
            order["order_metadata"] = {"probe": str(i)}
            async with s.put(url, headers=headers, json=order) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"PUT answered {r.status}")
            if i >= 2:
                samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def run_agents(
    clients: list[Any], order_id: str, tag: str, per_agent: int
) -> tuple[int, list[str], float]:
    """Every client makes ``per_agent`` updates; returns (successes, error texts, elapsed s)."""
    ok = 0
    errors: list[str] = []

    async def agent(a: int, client: Any) -> None:
        nonlocal ok
        for u in range(per_agent):
            r = await client.call_tool(
                "orders_update",
                {"order_id": order_id, "changes": {"order_metadata": {f"{tag}a{a}u{u}": str(u)}}},
            )
            if r.is_error:
                errors.append(tool_error_text(r))
            else:
                ok += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(agent(a, c) for a, c in enumerate(clients)))
    return ok, errors, time.perf_counter() - t0


async def count_keys(sb: SandboxProcess, order_id: str, tag: str) -> int:
    meta = (await sb.order(order_id)).get("order_metadata") or {}
    return sum(1 for k in meta if k.startswith(tag)) if isinstance(meta, dict) else 0


async def one_process(sb: SandboxProcess, order_id: str, agents: int, per: int, lock: bool) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from odmcp.testing import connect

    gw = build_gateway(sb, unique_prefix("contention1"), {"mutations.lock": lock})
    tag = "p1l" if lock else "p1n"
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(gw)) for _ in range(agents)]
        await clients[0].call_tool("gateway_ping", {})
        ok, errors, elapsed = await run_agents(clients, order_id, tag, per)
    return {"ok": ok, "errors": errors, "elapsed": elapsed, "present": await count_keys(sb, order_id, tag)}


async def two_processes(
    sb: SandboxProcess, order_id: str, agents: int, per: int, lock: bool
) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from mcp import Client

    prefix = unique_prefix("contention2")
    extra = {"mutations.lock": lock, "cache.backend": "redis", "cache.redis_url": REDIS_URL}
    paths = [write_config(sb, prefix, extra) for _ in range(2)]
    tag = "p2l" if lock else "p2n"
    try:
        async with AsyncExitStack() as stack:
            gws = [await stack.enter_async_context(GatewayProcess(p)) for p in paths]
            clients = [await stack.enter_async_context(Client(gws[a % 2].mcp_url)) for a in range(agents)]
            await asyncio.gather(*(c.call_tool("gateway_ping", {}) for c in clients))
            ok, errors, elapsed = await run_agents(clients, order_id, tag, per)
    finally:
        for p in paths:
            remove_file(p)
        await delete_redis_keys(cache_keys_for_orders(prefix, sb.store_id, [order_id]))
    return {"ok": ok, "errors": errors, "elapsed": elapsed, "present": await count_keys(sb, order_id, tag)}


def show(name: str, r: dict[str, Any], bound: float) -> None:
    lost = r["ok"] - r["present"]
    rate = r["ok"] / r["elapsed"] if r["elapsed"] else 0.0
    r["lost"], r["rate"] = lost, rate
    print(
        f"  {name:28s} ok {r['ok']:3d}  errors {len(r['errors']):2d}  keys present {r['present']:3d}  "
        f"LOST {lost:3d}  {r['elapsed']:6.2f} s  {rate:6.1f} updates/s ({rate / bound * 100:5.1f}% of bound)"
    )
    for e in r["errors"][:2]:
        print(f"      error: {e}")


async def main() -> None:
    args = parse_quick(__doc__.splitlines()[0])
    agents, per = (10, 3) if args.quick else (20, 5)
    print(
        f"contention benchmark ({'quick' if args.quick else 'full'}; {machine()}): {agents} agents x {per} "
        f"updates on one order; sandbox latency {LATENCY_MS:g} ms per request"
    )
    async with SandboxProcess(latency_ms=LATENCY_MS) as sb:
        ids = await sb.order_ids()
        gp = await get_put_latency(sb, ids[10])
        bound = 1.0 / gp
        print(
            f"GET + PUT latency (raw aiohttp, median): {gp * 1000:.2f} ms -> upper bound {bound:.1f} updates/s per order"
        )
        header("results")
        runs = {
            "1 process, lock": await one_process(sb, ids[0], agents, per, True),
            "2 processes+Redis, lock": await two_processes(sb, ids[1], agents, per, True),
            "1 process, NO lock": await one_process(sb, ids[2], agents, per, False),
            "2 processes+Redis, NO lock": await two_processes(sb, ids[3], agents, per, False),
        }
        for name, r in runs.items():
            show(name, r, bound)
    total = agents * per
    a, b = runs["1 process, lock"], runs["2 processes+Redis, lock"]
    c, d = runs["1 process, NO lock"], runs["2 processes+Redis, NO lock"]
    print(
        f"\nwithout the lock {c['lost']} of {c['ok']} (1 process) and {d['lost']} of {d['ok']} (2 processes) "
        "acknowledged updates were lost"
    )
    target(
        "contention_lost[1proc]",
        f"{a['lost']} lost of {total} ({len(a['errors'])} errors); "
        f"{a['rate']:.1f} updates/s, bound {bound:.1f}",
        "0 lost",
        a["lost"] == 0 and not a["errors"],
    )
    target(
        "contention_lost[2proc]",
        f"{b['lost']} lost of {total} ({len(b['errors'])} errors); "
        f"{b['rate']:.1f} updates/s, bound {bound:.1f}",
        "0 lost",
        b["lost"] == 0 and not b["errors"],
    )
    summary(
        "contention",
        f"lock: lost {a['lost']}/{total} (1 proc, {a['rate']:.1f}/s) and {b['lost']}/{total} "
        f"(2 procs, {b['rate']:.1f}/s) vs bound {bound:.1f}/s; no lock: lost {c['lost']} and {d['lost']}",
    )


if __name__ == "__main__":
    asyncio.run(main())
