"""Rate limit: many agents against OrderDesk's real leaky bucket (20 requests, refilled at 3/s).

    .venv/bin/python bench/bench_ratelimit.py [--quick]

The sandbox (own process) enforces the bucket; the gateway (in-process, memory cache) runs its
client-side limiter with the same numbers. 20 agents, each with its own in-process MCP ``Client``,
make 200 ``orders_get`` calls over 50 distinct orders (each order 4 times, shuffled with a fixed seed,
dealt round-robin to the agents); --quick makes 60 calls over 30 orders.

Physical limit: the bucket lets 20 requests through at once and then 3 per second, so N upstream
requests cannot finish before (N - 20) / 3 s. N is counted from the sandbox's request log
(accepted requests). Targets: 0 errors seen by agents; 0 upstream 429s (or a handful, all absorbed
by retries); elapsed within 10% of the physical limit.
"""

from __future__ import annotations

import asyncio
import random
import time

from common import SandboxProcess, build_gateway, header, machine, parse_quick, summary, target, unique_prefix

AGENTS = 20
CAPACITY = 20
REFILL = 3.0


async def main() -> None:
    from odmcp.testing import connect

    args = parse_quick(__doc__.splitlines()[0])
    calls, distinct = (60, 30) if args.quick else (200, 50)
    print(
        f"rate-limit benchmark ({'quick' if args.quick else 'full'}; {machine()}): {AGENTS} agents, "
        f"{calls} orders_get over {distinct} orders; bucket {CAPACITY} + {REFILL:g}/s on both sides"
    )
    async with SandboxProcess(rate_limit_enabled=True, seed_orders=max(36, distinct)) as sb:
        ids = (await sb.order_ids())[:distinct]
        plan = [ids[i % distinct] for i in range(calls)]
        random.Random(42).shuffle(plan)
        work = [plan[a::AGENTS] for a in range(AGENTS)]
        gw = build_gateway(sb, unique_prefix("ratelimit"))
        errors: list[str] = []
        latencies: list[float] = []

        async def agent(mine: list[str], ready: asyncio.Event) -> None:
            async with connect(gw) as client:
                await client.call_tool("gateway_ping", {})
                await ready.wait()
                for oid in mine:
                    t0 = time.perf_counter()
                    r = await client.call_tool("orders_get", {"order_id": oid})
                    latencies.append(time.perf_counter() - t0)
                    if r.is_error:
                        errors.append(r.content[0].text[:160])

        ready = asyncio.Event()
        tasks = [asyncio.create_task(agent(w, ready)) for w in work]
        await asyncio.sleep(0.3)  # every agent connected and waiting
        await sb.clear_requests()
        t0 = time.perf_counter()
        ready.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        log = await sb.requests()

    accepted = [r for r in log if r["status"] != 429]
    throttled = [r for r in log if r["status"] == 429]
    unique = len({r["path"] for r in accepted})
    n = len(accepted)
    limit = max(0.0, (n - CAPACITY) / REFILL)
    header("results")
    print(
        f"  calls: {calls} ({len(errors)} errors); upstream requests: {n} accepted for {unique} distinct paths, "
        f"{len(throttled)} answered 429"
    )
    for e in errors[:3]:
        print(f"  error: {e}")
    lat = sorted(latencies)
    print(f"  per-call latency: p50 {lat[len(lat) // 2] * 1000:.1f} ms, max {lat[-1] * 1000:.0f} ms")
    print(
        f"  elapsed {elapsed:.2f} s; physical limit ({n} - {CAPACITY}) / {REFILL:g} = {limit:.2f} s; "
        f"ratio {elapsed / limit if limit else float('nan'):.3f}"
    )
    within = limit > 0 and abs(elapsed - limit) <= 0.10 * limit
    target("ratelimit_errors", f"{len(errors)} errors in {calls} calls", "0", not errors)
    target(
        "ratelimit_429s",
        f"{len(throttled)} upstream 429s ({'all absorbed' if not errors else 'not all absorbed'})",
        "0, or a handful each absorbed",
        len(throttled) <= 5 and not errors,
    )
    target(
        "ratelimit_elapsed",
        f"{elapsed:.2f} s vs physical limit {limit:.2f} s ({(elapsed / limit - 1) * 100:+.1f}%)"
        if limit
        else f"{elapsed:.2f} s (no limit: {n} requests fit the burst)",
        "within 10% of the limit",
        within,
    )
    summary(
        "ratelimit",
        f"{calls} calls, {len(errors)} errors, {n} upstream requests, {len(throttled)} 429s, "
        f"{elapsed:.2f} s vs limit {limit:.2f} s",
    )


if __name__ == "__main__":
    asyncio.run(main())
