"""Stampede: 100 concurrent ``orders_get`` calls for one (uncached) order.

    .venv/bin/python bench/bench_stampede.py [--quick]

The sandbox runs in its own process with 20 ms latency (so the calls really overlap) and its rate
limit off. The calls go through one in-process MCP ``Client`` (``asyncio.gather``). Upstream requests
are counted from the sandbox's request log. The same burst is then sent to a gateway with
``cache.enabled = false``, which shows what single-flight saves. Target: exactly 1 upstream request.
"""

from __future__ import annotations

import asyncio
import time

from common import SandboxProcess, build_gateway, header, machine, parse_quick, summary, target, unique_prefix

LATENCY_MS = 20.0


async def burst(
    sb: SandboxProcess, order_id: str, n: int, extra: dict[str, object]
) -> tuple[int, int, float]:
    """(upstream GETs of the order, tool errors, elapsed s) for ``n`` concurrent calls."""
    from odmcp.testing import connect

    gw = build_gateway(sb, unique_prefix("stampede"), extra)
    async with connect(gw) as client:
        await client.call_tool("gateway_ping", {})  # start-up out of the way
        await sb.clear_requests()
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(client.call_tool("orders_get", {"order_id": order_id}) for _ in range(n))
        )
        elapsed = time.perf_counter() - t0
    errors = sum(1 for r in results if r.is_error)
    ids = {str(r.structured_content["order"]["id"]) for r in results if not r.is_error}
    if ids and ids != {order_id}:
        print(f"  unexpected ids in results: {sorted(ids)[:5]}")
    upstream = len([r for r in await sb.requests(method="GET") if r["path"] == f"/orders/{order_id}"])
    return upstream, errors, elapsed


async def main() -> None:
    parse_quick(__doc__.splitlines()[0])  # --quick changes nothing: the run takes well under a second
    n = 100
    print(f"stampede benchmark ({machine()}); {n} concurrent orders_get, sandbox latency {LATENCY_MS:g} ms")
    async with SandboxProcess(latency_ms=LATENCY_MS) as sb:
        ids = await sb.order_ids()
        header("cache on (single-flight)")
        up_on, err_on, t_on = await burst(sb, ids[0], n, {})
        print(f"  upstream GETs: {up_on}; tool errors: {err_on}; elapsed {t_on * 1000:.1f} ms")
        header("cache.enabled = false")
        up_off, err_off, t_off = await burst(sb, ids[1], n, {"cache.enabled": False})
        print(f"  upstream GETs: {up_off}; tool errors: {err_off}; elapsed {t_off * 1000:.1f} ms")
    ratio = up_off / up_on if up_on else float("inf")
    print(f"\nupstream requests: cache on {up_on} vs cache off {up_off} ({ratio:.0f}x fewer with the cache)")
    target(
        "stampede_upstream",
        f"{up_on} upstream request(s) for {n} calls, {err_on} errors",
        "exactly 1",
        up_on == 1 and err_on == 0,
    )
    summary(
        "stampede",
        f"{n} concurrent calls -> {up_on} upstream GET with the cache, {up_off} without "
        f"({ratio:.0f}x); {t_on * 1000:.0f} ms vs {t_off * 1000:.0f} ms",
    )


if __name__ == "__main__":
    asyncio.run(main())
