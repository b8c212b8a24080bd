"""Every write tool under the faults that make an outcome unclear, through the real MCP client and real
HTTP to the sandbox: the write is applied then answered 500, applied then the connection drops, applied
then answered too late, or answered 500 before it was applied.

For each, three things are asserted: what the tool says, what the upstream holds (exactly one
application), and that the next read through the gateway shows upstream truth (no stale cache).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.testing import connect

FAULTS: dict[str, dict[str, Any]] = {
    "apply_then_500": {"after_apply": True, "status": 500},
    "apply_then_drop": {"after_apply": True, "drop": True},
    "apply_then_timeout": {"after_apply": True, "delay_ms": 1500},
    "500_before_apply": {"status": 500},
}
TUNING = {
    "orderdesk": {"request_timeout": 0.5, "create_settle": 0.05, "max_retries": 2},
    "mutations.reconcile_settle": 0.1,
}

Sandbox = Any
Client = Any


@dataclass
class Case:
    tool: str
    #: method and path regex of the request the fault hits
    method: str
    path: str
    args: Callable[[Sandbox], dict[str, Any]]
    #: how many times the effect is upstream (must be exactly 1 after the call)
    upstream: Callable[[Sandbox, dict[str, Any]], int]
    #: the same, counted from the next read through the gateway
    reread: Callable[[Client, dict[str, Any]], Awaitable[int]]


def _items(sb: Sandbox, oid: str, name: str) -> int:
    return sum(1 for i in sb.order(oid)["order_items"] if i.get("name") == name)


async def _get(c: Client, oid: str, **kw: Any) -> dict[str, Any]:
    result = await c.call_tool("orders_get", {"order_id": oid, **kw})
    assert not result.is_error, result.content[0].text
    return dict(result.structured_content["order"])


def _first_item(sb: Sandbox, oid: str) -> str:
    return str(sb.order(oid)["order_items"][0]["id"])


def _shipment_of(sb: Sandbox) -> tuple[str, str]:
    for o in sb.orders():
        if o.get("order_shipments"):
            return o["id"], str(o["order_shipments"][0]["id"])
    raise AssertionError("the seed has no shipment")


def _inventory_id(sb: Sandbox, index: int) -> str:
    return str(sorted(sb.state.stores[sb.store_id].inventory)[index])


async def _inventory_stock(c: Client, iid: str) -> int:
    result = await c.call_tool("inventory_get", {"item_id": iid})
    return int(float(result.structured_content["item"]["stock"]))


async def _count_notes(c: Client, oid: str, note: str) -> int:
    order = await _get(c, oid, include_history=True)
    return sum(1 for h in order["order_history"] if h.get("note") == note)


CASES: list[Case] = [
    Case(
        "orders_update",
        "PUT",
        r"^/orders/200003$",
        lambda sb: {"order_id": "200003", "changes": {"email": "new@example.com"}},
        lambda sb, a: int(sb.order("200003")["email"] == "new@example.com"),
        lambda c, a: _count(_get(c, "200003"), lambda o: o["email"] == "new@example.com"),
    ),
    Case(
        "orders_update",
        "PUT",
        r"^/orders/200004$",
        lambda sb: {"order_id": "200004", "changes": {"order_items": [{"name": "ADDED", "quantity": 1}]}},
        lambda sb, a: _items(sb, "200004", "ADDED"),
        lambda c, a: _count(_get(c, "200004"), lambda o: sum(i["name"] == "ADDED" for i in o["order_items"])),
    ),
    Case(
        "orders_move",
        "POST",
        r"^/move-orders$",
        lambda sb: {"order_ids": ["200006"], "folder_id": 3},
        lambda sb, a: int(str(sb.order("200006")["folder_id"]) == "3"),
        lambda c, a: _count(_get(c, "200006"), lambda o: str(o["folder_id"]) == "3"),
    ),
    Case(
        "orders_add_note",
        "POST",
        r"^/orders/200007/order-history$",
        lambda sb: {"order_id": "200007", "note": "called the customer"},
        lambda sb, a: sum(
            h["note"] == "called the customer" for h in sb.order("200007", with_history=True)["order_history"]
        ),
        lambda c, a: _count_notes(c, "200007", "called the customer"),
    ),
    Case(
        "order_items_add",
        "POST",
        r"^/orders/200008/order-items$",
        lambda sb: {"order_id": "200008", "item": {"name": "EXTRA", "price": 3, "quantity": 2}},
        lambda sb, a: _items(sb, "200008", "EXTRA"),
        lambda c, a: _count(_get(c, "200008"), lambda o: sum(i["name"] == "EXTRA" for i in o["order_items"])),
    ),
    Case(
        "order_items_update",
        "PUT",
        r"^/orders/200009/order-items/\d+$",
        lambda sb: {"order_id": "200009", "item_id": _first_item(sb, "200009"), "item": {"quantity": 9}},
        lambda sb, a: sum(
            str(i["id"]) == a["item_id"] and float(i["quantity"]) == 9
            for i in sb.order("200009")["order_items"]
        ),
        lambda c, a: _count(
            _get(c, "200009"),
            lambda o: sum(
                str(i["id"]) == a["item_id"] and float(i["quantity"]) == 9 for i in o["order_items"]
            ),
        ),
    ),
    Case(
        "order_items_delete",
        "DELETE",
        r"^/orders/200010/order-items/\d+$",
        lambda sb: {"order_id": "200010", "item_id": _first_item(sb, "200010")},
        lambda sb, a: int(all(str(i["id"]) != a["item_id"] for i in sb.order("200010")["order_items"])),
        lambda c, a: _count(
            _get(c, "200010"), lambda o: all(str(i["id"]) != a["item_id"] for i in o["order_items"])
        ),
    ),
    Case(
        "shipments_add",
        "POST",
        r"^/orders/200011/shipments$",
        lambda sb: {"order_id": "200011", "shipment": {"tracking_number": "TRK-1", "carrier_code": "UPS"}},
        lambda sb, a: sum(s["tracking_number"] == "TRK-1" for s in sb.order("200011")["order_shipments"]),
        lambda c, a: _count(
            _get(c, "200011"), lambda o: sum(s["tracking_number"] == "TRK-1" for s in o["order_shipments"])
        ),
    ),
    Case(
        "shipments_update",
        "PUT",
        r"^/orders/\d+/shipments/\d+$",
        lambda sb: dict(
            zip(("order_id", "shipment_id"), _shipment_of(sb), strict=True), shipment={"carrier_code": "DHL"}
        ),
        lambda sb, a: sum(
            str(s["id"]) == a["shipment_id"] and s["carrier_code"] == "DHL"
            for s in sb.order(a["order_id"])["order_shipments"]
        ),
        lambda c, a: _count(
            _get(c, a["order_id"]),
            lambda o: sum(
                str(s["id"]) == a["shipment_id"] and s["carrier_code"] == "DHL" for s in o["order_shipments"]
            ),
        ),
    ),
    Case(
        "shipments_delete",
        "DELETE",
        r"^/orders/\d+/shipments/\d+$",
        lambda sb: dict(zip(("order_id", "shipment_id"), _shipment_of(sb), strict=True)),
        lambda sb, a: int(
            all(str(s["id"]) != a["shipment_id"] for s in sb.order(a["order_id"])["order_shipments"])
        ),
        lambda c, a: _count(
            _get(c, a["order_id"]),
            lambda o: all(str(s["id"]) != a["shipment_id"] for s in o["order_shipments"]),
        ),
    ),
    Case(
        "inventory_update",
        "PUT",
        r"^/inventory-items/\d+$",
        lambda sb: {"item_id": _inventory_id(sb, 0), "changes": {"stock": 77}},
        lambda sb, a: int(
            int(float(sb.state.stores[sb.store_id].inventory[int(a["item_id"])]["stock"])) == 77
        ),
        lambda c, a: _count(_inventory_stock(c, a["item_id"]), lambda stock: stock == 77),
    ),
    Case(
        "inventory_create",
        "POST",
        r"^/inventory-items$",
        lambda sb: {"item": {"name": "Fault Mug", "code": "FAULT-MUG", "price": 9}},
        lambda sb, a: sum(i["code"] == "FAULT-MUG" for i in sb.state.stores[sb.store_id].inventory.values()),
        lambda c, a: _count(
            c.call_tool("inventory_list", {"code": "FAULT-MUG"}),
            lambda r: sum(i["code"] == "FAULT-MUG" for i in r.structured_content["items"]),
        ),
    ),
    Case(
        "inventory_delete",
        "DELETE",
        r"^/inventory-items/\d+$",
        lambda sb: {"item_id": _inventory_id(sb, 1), "confirm": True},
        lambda sb, a: int(int(a["item_id"]) not in sb.state.stores[sb.store_id].inventory),
        lambda c, a: _count(
            c.call_tool("inventory_get", {"item_id": a["item_id"]}),
            lambda r: (error_of(r) or {}).get("code") == "NOT_FOUND",
        ),
    ),
    Case(
        "orders_create",
        "POST",
        r"^/orders$",
        lambda sb: {
            "order": {
                "shipping": {"first_name": "Ada", "last_name": "L", "address1": "1 Main", "city": "London"},
                "order_items": [{"name": "Engine", "price": 100, "quantity": 1}],
            },
            "idempotency_key": "fault-matrix-key-1",
        },
        lambda sb, a: sum(o["source_id"].startswith("mcpgw-") for o in sb.orders()),
        lambda c, a: _count(
            c.call_tool("orders_list", {"limit": 100}),
            lambda r: sum(
                str(o.get("source_id", "")).startswith("mcpgw-") for o in r.structured_content["orders"]
            ),
        ),
    ),
    Case(
        "orders_delete",
        "DELETE",
        r"^/orders/200015$",
        lambda sb: {"order_id": "200015", "confirm": True},
        lambda sb, a: int(sb.order("200015") is None),
        lambda c, a: _count(
            c.call_tool("orders_get", {"order_id": "200015"}),
            lambda r: (error_of(r) or {}).get("code") == "NOT_FOUND",
        ),
    ),
]


async def _count(value: Awaitable[Any], pred: Callable[[Any], Any]) -> int:
    return int(pred(await value))


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.tool}-{c.path}")
async def test_a_write_with_an_unclear_answer_is_applied_exactly_once_and_said_so(
    case: Case, fault: str, gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    args = case.args(orderdesk_sandbox)
    async with connect(gateway_factory(overrides=TUNING)) as c:
        if case.reread is not None:
            await case.reread(c, args)  # warm the cache: the next read must not serve this copy
        orderdesk_sandbox.add_fault(method=case.method, path=case.path, times=1, **FAULTS[fault])
        result = await c.call_tool(case.tool, args)
        # the tool's words: the change is there, so the tool says it succeeded
        assert not result.is_error, result.content[0].text
        await asyncio.sleep(0)  # nothing left in flight: the fault answered late, not never
        # upstream: exactly once
        assert case.upstream(orderdesk_sandbox, args) == 1
        # the next read through the gateway shows it
        assert await case.reread(c, args) == 1
