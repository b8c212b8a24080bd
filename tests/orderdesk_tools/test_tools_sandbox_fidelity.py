"""Issue 11 §7 end to end: the gateway against the sandbox's less flattering behaviours — amounts sent
as strings, timing reported as a message, ``*_local`` date filters, GETs without a body."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from odmcp.testing import connect
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.wire import normalize_order

TIMING = "Execution took"


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


def amounts(order: dict[str, Any]) -> list[Any]:
    return [v for i in order["order_items"] for v in (i["price"], i["quantity"])]


@pytest.mark.sandbox(string_numbers=1.0)
async def test_amounts_as_strings_make_no_spurious_diff_and_no_type_flip_flop(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    order = orderdesk_sandbox.orders()[0]
    oid, item = order["id"], order["order_items"][0]
    assert all(isinstance(v, str) for v in amounts(order))  # as OrderDesk sometimes sends them
    same = {"id": item["id"], "price": float(item["price"]), "quantity": int(item["quantity"])}
    update = {"order_id": oid, "changes": {"email": "string-amounts@example.com"}}
    async with connect(gateway_factory()) as c:
        orderdesk_sandbox.clear_requests()
        unchanged = ok(
            await c.call_tool("orders_update", {"order_id": oid, "changes": {"order_items": [same]}})
        )
        no_put = orderdesk_sandbox.requests(method="PUT")
        first = ok(await c.call_tool("orders_update", update))
        again = ok(await c.call_tool("orders_update", update))
        more = {"id": item["id"], "quantity": str(int(item["quantity"]) + 2)}  # a real change, as a string
        bumped = ok(await c.call_tool("orders_update", {"order_id": oid, "changes": {"order_items": [more]}}))
        got = ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]
    puts = orderdesk_sandbox.requests(method="PUT")
    assert unchanged["changed_fields"] == [] and no_put == []  # 19 vs "19": nothing to write
    assert first["changed_fields"] == ["email"] and again["changed_fields"] == []
    assert bumped["changed_fields"] == [f"order_items[{item['id']}].quantity"]
    assert len(puts) == 2  # the email, then the quantity; the repeat sent nothing
    for put in puts:  # every amount goes out as a JSON number, whatever OrderDesk sent
        assert all(isinstance(v, int | float) for v in amounts(put.json)), amounts(put.json)
    assert puts[1].json["order_items"][0]["quantity"] == int(item["quantity"]) + 2
    upstream = orderdesk_sandbox.order(oid)
    assert upstream["email"] == "string-amounts@example.com"
    assert upstream["order_items"][0]["quantity"] == str(int(item["quantity"]) + 2)
    assert got == normalize_order(upstream)  # the read shows upstream truth, strings and all


@pytest.mark.sandbox(timing_style="message")
async def test_timing_reported_as_a_message_never_reaches_a_tool_result(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """Every response without a message of its own says "Execution took …" here (notes §2)."""
    oid = orderdesk_sandbox.orders()[0]["id"]
    item_id = orderdesk_sandbox.orders()[0]["order_items"][0]["id"]
    new_order = {
        "shipping": {"first_name": "Ann", "last_name": "Lee", "address1": "1 Main St"},
        "order_items": [{"name": "Widget", "price": 5, "quantity": 1}],
    }
    calls: list[tuple[str, dict[str, Any]]] = [
        ("stores_list", {}),
        ("store_get", {}),
        ("orders_list", {"limit": 3}),
        ("orders_get", {"order_id": oid}),
        ("orders_update", {"order_id": oid, "changes": {"email": "t@example.com"}}),
        ("orders_add_note", {"order_id": oid, "note": "timing"}),
        ("orders_move", {"order_ids": [oid], "folder_id": 2}),
        ("order_items_add", {"order_id": oid, "item": {"name": "Extra", "price": 1}}),
        ("order_items_update", {"order_id": oid, "item_id": item_id, "item": {"quantity": 4}}),
        ("shipments_add", {"order_id": oid, "shipment": {"tracking_number": "T1"}}),
        ("shipments_list", {"order_id": oid}),
        ("inventory_list", {"limit": 2}),
        ("inventory_create", {"item": {"name": "Mug", "code": "MUG-T", "price": 9, "stock": 1}}),
        ("orders_create", {"order": new_order, "idempotency_key": "timing-create-1"}),
    ]
    async with connect(gateway_factory()) as c:
        results = [(tool, await c.call_tool(tool, args)) for tool, args in calls]
        iid = str(results[-2][1].structured_content["item"]["id"])
        results.append(("inventory_get", await c.call_tool("inventory_get", {"item_id": iid})))
    timed = [r for r in orderdesk_sandbox.requests() if r.status == 200]
    assert len(timed) >= len(calls)
    for tool, result in results:
        text = result.content[0].text + json.dumps(result.structured_content)
        assert not result.is_error, (tool, text)
        assert TIMING not in text, tool
        assert "execution_time" not in text, tool


async def test_a_filtered_list_end_to_end(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    """Date filters through the tool (UTC) and the client's *_local filters (store time zone) select
    the same orders as the sandbox's own data says they should."""
    orders = sorted(orderdesk_sandbox.orders(), key=lambda o: o["date_added"])
    lo, hi = orders[5]["date_added"], orders[14]["date_added"]
    expected = sorted(o["id"] for o in orders if lo <= o["date_added"] <= hi and o["folder_id"] == 1)
    gw = gateway_factory()
    async with connect(gw) as c:
        listed = ok(
            await c.call_tool(
                "orders_list",
                {"search_start_date": lo, "search_end_date": hi, "folder_id": 1, "limit": 500},
            )
        )
        client = runtime(gw).client("demo")
        tz = (await client.get_store())["settings"]["timezone"]
        local = await client.list_orders(
            search_start_date_local=_to_local(lo, tz), search_end_date_local=_to_local(hi, tz), folder_id=1
        )
    assert expected and sorted(o["id"] for o in listed["orders"]) == expected
    assert listed["total_records"] == len(expected)
    assert sorted(o["id"] for o in local["orders"]) == expected
    sent = [
        r.query
        for r in orderdesk_sandbox.requests(method="GET", path_prefix="/orders")
        if r.path == "/orders"
    ]
    assert sent[-1]["search_start_date_local"] == _to_local(lo, tz)
    # and every GET the gateway made carried no body and no Content-Type (the sandbox refuses those)
    gets = orderdesk_sandbox.requests(method="GET")
    assert gets and all(r.status == 200 and "content-type" not in r.headers for r in gets)


def _to_local(utc_text: str, tz_name: str) -> str:
    from zoneinfo import ZoneInfo

    utc = datetime.strptime(utc_text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("UTC"))
    local = utc.astimezone(ZoneInfo(tz_name))
    assert local.utcoffset() in (timedelta(hours=-7), timedelta(hours=-8))  # America/Los_Angeles
    return local.strftime("%Y-%m-%d %H:%M:%S")
