"""Issue 4, one process: concurrent updates of one order lose nothing; every PUT follows a fresh GET."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

ORDER_PATH = "/orders/{}"


def first_order_id(sandbox: Any) -> str:
    return str(sandbox.orders()[0]["id"])


async def update_meta(client: Any, order_id: str, key: str, value: str) -> Any:
    return await client.call_tool(
        "orders_update", {"order_id": order_id, "changes": {"order_metadata": {key: value}}}
    )


@pytest.mark.sandbox(latency_ms=5)
async def test_twenty_concurrent_updates_keep_every_key(orderdesk_sandbox: Any, gateway_factory: Any) -> None:
    from odmcp.testing import connect

    oid = first_order_id(orderdesk_sandbox)
    before = orderdesk_sandbox.order(oid)
    item_ids = [i["id"] for i in before["order_items"]]
    assert item_ids, "the seeded order needs items for this test to mean anything"
    orderdesk_sandbox.clear_requests()

    async with connect(gateway_factory()) as client:
        results = await asyncio.gather(*(update_meta(client, oid, f"k{i}", f"v{i}") for i in range(20)))

    assert [r.is_error for r in results] == [False] * 20, [
        r.structured_content for r in results if r.is_error
    ]
    after = orderdesk_sandbox.order(oid)
    meta = after["order_metadata"]
    for i in range(20):
        assert meta.get(f"k{i}") == f"v{i}", sorted(meta)
    # nothing else was lost either: same items, same addresses
    assert [i["id"] for i in after["order_items"]] == item_ids
    assert after["shipping"] == before["shipping"]

    log = [
        r
        for r in orderdesk_sandbox.requests(path_prefix=ORDER_PATH.format(oid))
        if r.path == f"/orders/{oid}"
    ]
    methods = [r.method for r in log]
    assert methods.count("PUT") == 20
    # serialised per order: strictly GET, PUT, GET, PUT, ...
    assert methods == ["GET", "PUT"] * 20
    for put in (r for r in log if r.method == "PUT"):
        body = put.json
        assert isinstance(body, dict)
        assert [str(i.get("id")) for i in body["order_items"]] == item_ids  # full item list, with ids
        assert len(body["order_items"]) == len(before["order_items"])


@pytest.mark.sandbox(latency_ms=20)
async def test_without_the_lock_concurrent_updates_are_lost(
    orderdesk_sandbox: Any, gateway_factory: Any
) -> None:
    """The control: the same load with ``mutations.lock = false`` loses updates (PUT replaces the order)."""
    from odmcp.testing import connect

    oid = first_order_id(orderdesk_sandbox)
    async with connect(gateway_factory(overrides={"mutations.lock": False})) as client:
        results = await asyncio.gather(*(update_meta(client, oid, f"k{i}", f"v{i}") for i in range(20)))
    assert not any(r.is_error for r in results)
    meta = orderdesk_sandbox.order(oid)["order_metadata"]
    kept = [i for i in range(20) if meta.get(f"k{i}") == f"v{i}"]
    assert len(kept) < 20


@pytest.mark.sandbox(latency_ms=100)
async def test_different_orders_are_updated_in_parallel(orderdesk_sandbox: Any, gateway_factory: Any) -> None:
    """The per-key lock serialises one order only: updates of different orders overlap upstream."""
    from odmcp.testing import connect

    ids = [str(o["id"]) for o in orderdesk_sandbox.orders()[:4]]
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        results = await asyncio.gather(*(update_meta(client, oid, "par", oid) for oid in ids))
    assert not any(r.is_error for r in results)
    gets = [r for r in orderdesk_sandbox.requests(method="GET") if r.path in {f"/orders/{i}" for i in ids}]
    puts = [r for r in orderdesk_sandbox.requests(method="PUT") if r.path in {f"/orders/{i}" for i in ids}]
    assert len(gets) == len(puts) == 4
    # all four fetches arrived before the first upload finished: nothing waited for another order's lock
    assert max(g.ts for g in gets) < min(p.ts + p.duration_ms / 1000 for p in puts)
    for oid in ids:
        assert orderdesk_sandbox.order(oid)["order_metadata"]["par"] == oid
