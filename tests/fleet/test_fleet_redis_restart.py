"""Redis restarted in the middle of a paced run of three replicas: no tool call fails, and the upstream
sees no burst beyond its bucket (each replica falls back to its share, then rebuilds the shared bucket
as drained as it knew it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest

from odmcp.testing import connect

CAPACITY, REFILL = 20, 3.0


@pytest.mark.sandbox(rate_limit_enabled=True, seed_orders=36, latency_ms=5)
async def test_redis_restart_mid_run_gives_no_errors_and_no_burst(
    orderdesk_sandbox: Any, gateway_factory: Any, own_redis: Any
) -> None:
    prefix = f"test-restart-{uuid.uuid4().hex[:12]}"
    overrides = {"cache.backend": "redis", "cache.redis_url": own_redis.url, "cache.prefix": prefix}
    gateways = [gateway_factory(overrides=overrides) for _ in range(3)]
    ids = [str(o["id"]) for o in orderdesk_sandbox.orders()][:36]
    errors: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(gw)) for gw in gateways for _ in range(3)]

        async def agent(i: int) -> None:
            for oid in ids[i :: len(clients)]:
                r = await clients[i].call_tool("orders_get", {"order_id": oid})
                if r.is_error:
                    errors.append(r.content[0].text[:200])

        orderdesk_sandbox.clear_requests()
        t0 = time.time()
        run = asyncio.gather(*(agent(i) for i in range(len(clients))))
        await asyncio.sleep(1.5)  # the burst is spent, callers wait for slots
        own_redis.kill()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own_redis.start)  # empty: the shared bucket is gone
        await asyncio.wait_for(run, 30)
    assert errors == []
    log = [r for r in orderdesk_sandbox.requests(path_prefix="/orders/") if r.ts >= t0]
    assert len([r for r in log if r.status == 200]) == len(ids)
    throttled = [r for r in log if r.status == 429]
    assert len(throttled) <= 4, [round(r.ts - t0, 2) for r in throttled]
    # attempts (429s included) in any one-second window: the bucket's burst plus its refill, never
    # three buckets' worth or an unlimited flood
    times = sorted(r.ts for r in log)
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= CAPACITY + REFILL + 2, busiest
