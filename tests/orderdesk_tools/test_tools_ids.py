"""One id, one key: a zero-padded id names the same object for the lock, the cache and the request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from odmcp.testing import connect
from odmcp_orderdesk.ids import check_id

ORDER = "200001"
WITH_SHIPMENT = "200002"
INVENTORY = "2501"


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


@pytest.mark.parametrize(
    ("raw", "canonical"), [("07945181", "7945181"), ("000", "0"), ("0", "0"), (7945181, "7945181")]
)
def test_check_id_strips_leading_zeros(raw: Any, canonical: str) -> None:
    assert check_id("order_id", raw) == canonical


async def test_a_zero_padded_move_invalidates_and_audits_the_real_order(
    gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Path
) -> None:
    async with connect(gateway_factory()) as c:
        cached = ok(await c.call_tool("orders_get", {"order_id": ORDER}))["order"]
        moved = ok(await c.call_tool("orders_move", {"order_ids": ["0" + ORDER, ORDER], "folder_id": 3}))
        after = ok(await c.call_tool("orders_get", {"order_id": ORDER}))["order"]
    assert cached["folder_id"] == 1 and after["folder_id"] == 3  # the cache did not serve the old folder
    move = orderdesk_sandbox.requests(method="POST", path_prefix="/move-orders")
    assert [m.json["order_id_list"] for m in move] == [[int(ORDER)]]  # duplicates collapsed
    assert len(moved["results"]) == 1
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["object_id"] for a in audit if a["tool"] == "orders.move"] == [ORDER]


async def test_padded_and_plain_ids_share_one_cache_entry(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        plain = ok(await c.call_tool("orders_get", {"order_id": ORDER}))["order"]
        orderdesk_sandbox.clear_requests()
        padded = ok(await c.call_tool("orders_get", {"order_id": "00" + ORDER}))["order"]
        item = ok(await c.call_tool("inventory_get", {"item_id": "0" + INVENTORY}))["item"]
    assert padded == plain
    assert [r.path for r in orderdesk_sandbox.requests()] == [f"/inventory-items/{INVENTORY}"]
    assert str(item["id"]) == INVENTORY


async def test_padded_and_plain_writers_share_one_lock(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    async with connect(gateway_factory()) as c:

        async def tag(i: int) -> Any:
            oid = "0" + ORDER if i % 2 else ORDER
            return await c.call_tool(
                "orders_update", {"order_id": oid, "changes": {"order_metadata": {f"k{i}": i}}}
            )

        results = await asyncio.gather(*(tag(i) for i in range(8)))
    assert all(not r.is_error for r in results), [r.content[0].text for r in results if r.is_error]
    stored = orderdesk_sandbox.order(ORDER)["order_metadata"]
    assert {k: stored[k] for k in stored if k.startswith("k")} == {f"k{i}": i for i in range(8)}
    assert {r.path for r in orderdesk_sandbox.requests(method="PUT")} == {f"/orders/{ORDER}"}


async def test_every_id_argument_is_canonical_in_requests_and_results(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    order = orderdesk_sandbox.order(WITH_SHIPMENT)
    item_id = order["order_items"][0]["id"]
    shipment_id = order["order_shipments"][0]["id"]
    padded = {"order_id": "0" + WITH_SHIPMENT}
    async with connect(gateway_factory()) as c:
        ok(await c.call_tool("orders_add_note", {**padded, "note": "hello"}))
        item = ok(await c.call_tool("order_items_delete", {**padded, "item_id": "00" + item_id}))
        ship = ok(await c.call_tool("shipments_delete", {**padded, "shipment_id": "0" + shipment_id}))
        deleted = ok(await c.call_tool("orders_delete", {**padded, "confirm": True}))
    assert item["id"] == item_id and ship["id"] == shipment_id and deleted["id"] == WITH_SHIPMENT
    paths = [r.path for r in orderdesk_sandbox.requests() if r.method in ("POST", "DELETE")]
    assert paths == [
        f"/orders/{WITH_SHIPMENT}/order-history",
        f"/orders/{WITH_SHIPMENT}/order-items/{item_id}",
        f"/orders/{WITH_SHIPMENT}/shipments/{shipment_id}",
        f"/orders/{WITH_SHIPMENT}",
    ]
