"""Issue 20: safe by default when Redis is down. Concurrent updates of one order from three replicas
while their Redis (this test's own ``redis-server``) is stopped mid-run: every update that answered
success is upstream, every other one answered UNAVAILABLE (retryable, nothing written); reads go on."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.testing import connect


@pytest.mark.sandbox(latency_ms=60)
async def test_updates_through_a_redis_outage_are_upstream_or_unavailable(
    orderdesk_sandbox: Any, gateway_factory: Any, own_redis: Any
) -> None:
    sb = orderdesk_sandbox
    oid = str(sb.orders()[0]["id"])
    settings = {
        "cache.backend": "redis",
        "cache.redis_url": own_redis.url,
        "cache.prefix": f"test-outage-{uuid.uuid4().hex[:12]}",
        "mutations.lock_wait": 10.0,
    }
    gateways = [gateway_factory(overrides=settings) for _ in range(3)]
    async with connect(gateways[0]) as a, connect(gateways[1]) as b, connect(gateways[2]) as c:
        clients = [a, b, c]
        calls = [
            asyncio.create_task(
                client.call_tool(
                    "orders_update",
                    {"order_id": oid, "changes": {"order_metadata": {f"r{n}k{i}": "kept"}}},
                )
            )
            for i in range(3)
            for n, client in enumerate(clients)
        ]
        deadline = time.monotonic() + 20
        while not sb.requests(method="PUT"):  # the first write is through: now Redis goes
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        own_redis.stop()
        results = await asyncio.gather(*calls)
        reads = [await client.call_tool("orders_get", {"order_id": oid}) for client in clients]
    meta = sb.order(oid)["order_metadata"]
    keys = [f"r{n}k{i}" for i in range(3) for n in range(3)]
    answered = dict(zip(keys, results, strict=True))
    ok = [k for k, r in answered.items() if not r.is_error]
    refused = {k: error_of(r) for k, r in answered.items() if r.is_error}
    assert all(meta.get(k) == "kept" for k in ok), (ok, sorted(meta))
    assert {e["code"] for e in refused.values()} <= {"UNAVAILABLE"}, refused
    assert all(e["retryable"] and "nothing was written" in e["message"] for e in refused.values())
    assert not any(k in meta for k in refused)
    assert ok and refused  # both sides of the outage were exercised
    assert not any(r.is_error for r in reads)  # reads keep working (from upstream)
