"""Every OrderDesk tool through the SDK Client, over real HTTP to the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.refs import Ref
from odmcp.testing import connect

NEW_ORDER = {
    "email": "jane@example.com",
    "shipping": {
        "first_name": "Jane",
        "last_name": "Doe",
        "address1": "1 Main St",
        "city": "San Jose",
        "state": "CA",
        "postal_code": "95131",
        "country": "US",
    },
    "order_items": [
        {"name": "Widget", "code": "W-1", "price": 12.5, "quantity": 2},
        {"name": "Gadget", "code": "G-1", "price": 3, "quantity": 1, "variation_list": {"Size": "L"}},
    ],
    "checkout_data": {"Gift": "yes"},
}


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


def code(result: Any) -> str:
    assert result.is_error
    return str(error_of(result)["code"])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_order_lifecycle_create_get_update_get_delete_get(
    gateway_factory: Any, orderdesk_sandbox: Any, mode: str
) -> None:
    gw = gateway_factory()
    async with connect(gw, mode=mode) as c:
        created = ok(
            await c.call_tool("orders_create", {"order": NEW_ORDER, "idempotency_key": f"life-{mode}-1"})
        )
        oid = created["order"]["id"]
        assert created["order"]["product_total"] == 28
        # a field the gateway has no model for (e.g. one OrderDesk adds in a later API version)
        orderdesk_sandbox.state.store("1001").orders[oid]["x_custom_field"] = {"nested": [1, 2]}
        await gw.workflow.invalidate(Ref("demo", "order", oid), lists=False)  # as a webhook post would
        before = ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]
        assert before["email"] == "jane@example.com" and before["x_custom_field"] == {"nested": [1, 2]}
        orderdesk_sandbox.clear_requests()
        upd = ok(
            await c.call_tool(
                "orders_update",
                {
                    "order_id": oid,
                    "changes": {"shipping": {"city": "Oakland"}, "order_metadata": {"agent": "yes"}},
                },
            )
        )
        assert upd["attempts"] == 1 and upd["changed_fields"] == ["order_metadata.agent", "shipping.city"]
        after = ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]
        deleted = ok(await c.call_tool("orders_delete", {"order_id": oid, "confirm": True}))
        gone = await c.call_tool("orders_get", {"order_id": oid})
    # every field not named is kept (the sandbox, like OrderDesk, stores only fields it knows;
    # the PUT body below shows the gateway sent the unknown one back too)
    untouched = set(before) - {"shipping", "order_metadata", "date_updated", "x_custom_field"}
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    assert after["shipping"] == {**before["shipping"], "city": "Oakland"}
    assert after["order_metadata"] == {"agent": "yes"}
    # the upstream saw GET then a full PUT carrying every item with its id
    log = orderdesk_sandbox.requests(path_prefix=f"/orders/{oid}")
    assert [r.method for r in log][:2] == ["GET", "PUT"]
    put = log[1].json
    assert {i["id"] for i in put["order_items"]} == {i["id"] for i in created["order"]["order_items"]}
    assert put["email"] == "jane@example.com" and put["x_custom_field"] == {"nested": [1, 2]}
    assert "order_shipments" not in put
    assert deleted == {"deleted": True, "id": oid} and code(gone) == "NOT_FOUND"


async def test_empty_maps_arrive_as_lists_and_are_written_back_as_lists(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        oid = ok(await c.call_tool("orders_create", {"order": {**NEW_ORDER, "checkout_data": {}}}))["order"][
            "id"
        ]
        raw = orderdesk_sandbox.order(oid)
        got = ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]
        ok(await c.call_tool("orders_update", {"order_id": oid, "changes": {"email": "new@example.com"}}))
    assert raw["order_metadata"] == [] and got["order_metadata"] == {} and got["checkout_data"] == {}
    put = orderdesk_sandbox.requests(method="PUT")[-1].json
    assert put["order_metadata"] == [] and put["checkout_data"] == []


async def test_list_filters_and_pagination(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        page1 = ok(await c.call_tool("orders_list", {"limit": 10}))
        page2 = ok(await c.call_tool("orders_list", {"limit": 10, "offset": page1["next_offset"]}))
        folder = ok(
            await c.call_tool("orders_list", {"folder_id": 2, "limit": 500, "fields": ["id", "folder_id"]})
        )
        last = ok(await c.call_tool("orders_list", {"limit": 500}))
    assert len(page1["orders"]) == 10 and page1["next_offset"] == 10 and page1["total_records"] == 36
    assert not {o["id"] for o in page1["orders"]} & {o["id"] for o in page2["orders"]}
    assert folder["orders"] and all(o["folder_id"] == 2 for o in folder["orders"])
    assert last["next_offset"] is None and len(last["orders"]) == 36


async def test_move_and_history_note(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    async with connect(gateway_factory()) as c:
        ids = [o["id"] for o in ok(await c.call_tool("orders_list", {"folder_id": 1, "limit": 2}))["orders"]]
        moved = ok(await c.call_tool("orders_move", {"order_ids": ids, "folder_name": "Closed"}))
        both = await c.call_tool("orders_move", {"order_ids": ids, "folder_id": 3, "folder_name": "Closed"})
        noted = ok(await c.call_tool("orders_add_note", {"order_id": ids[0], "note": "Called the customer"}))
        after = ok(await c.call_tool("orders_get", {"order_id": ids[0]}))["order"]
    assert moved["totals"] == {"ok": 2} and [r["target"] for r in moved["results"]] == ids
    assert code(both) == "VALIDATION"
    assert after["folder_id"] == 3  # the move invalidated the cached order
    history = orderdesk_sandbox.order(ids[0], with_history=True)["order_history"]
    assert any(h["note"] == "Called the customer" for h in history) and noted["message"]


async def test_update_folder_change_goes_through_move_orders(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        oid = ok(await c.call_tool("orders_list", {"folder_id": 1, "limit": 1}))["orders"][0]["id"]
        upd = ok(await c.call_tool("orders_update", {"order_id": oid, "changes": {"folder_id": 2}}))
    assert upd["order"]["folder_id"] == 2
    moves = orderdesk_sandbox.requests(method="POST", path_prefix="/move-orders")
    assert moves and moves[-1].json == {"order_id_list": [int(oid)], "destination_folder_id": 2}


async def test_order_items_tools(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    async with connect(gateway_factory()) as c:
        oid = ok(await c.call_tool("orders_create", {"order": NEW_ORDER}))["order"]["id"]
        added = ok(
            await c.call_tool(
                "order_items_add", {"order_id": oid, "item": {"name": "Extra", "price": 1, "quantity": 3}}
            )
        )
        assert added["message"] == "Order Item Added"
        items = orderdesk_sandbox.order(oid)["order_items"]
        extra = next(i for i in items if i["name"] == "Extra")
        ok(
            await c.call_tool(
                "order_items_update", {"order_id": oid, "item_id": extra["id"], "item": {"quantity": 5}}
            )
        )
        mid = ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]
        ok(await c.call_tool("order_items_delete", {"order_id": oid, "item_id": extra["id"]}))
        final = ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]
    mid_extra = next(i for i in mid["order_items"] if i["id"] == extra["id"])
    assert mid_extra["quantity"] == 5 and mid_extra["name"] == "Extra"  # untouched item fields kept
    assert [i["name"] for i in final["order_items"]] == ["Widget", "Gadget"]


async def test_shipment_tools(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        oid = ok(await c.call_tool("orders_create", {"order": NEW_ORDER}))["order"]["id"]
        ship = {"tracking_number": "1Z999", "carrier_code": "UPS", "shipment_method": "Ground"}
        added = ok(await c.call_tool("shipments_add", {"order_id": oid, "shipment": ship}))
        assert added["message"] == "Shipment Added"
        dup = await c.call_tool("shipments_add", {"order_id": oid, "shipment": ship})
        listed = ok(await c.call_tool("shipments_list", {"order_id": oid}))
        sid = listed["shipments"][0]["id"]
        ok(
            await c.call_tool(
                "shipments_update",
                {"order_id": oid, "shipment_id": sid, "shipment": {"carrier_code": "FedEx"}},
            )
        )
        again = ok(await c.call_tool("shipments_list", {"order_id": oid}))
        ok(await c.call_tool("shipments_delete", {"order_id": oid, "shipment_id": sid}))
        empty = ok(await c.call_tool("shipments_list", {"order_id": oid}))
    assert code(dup) == "VALIDATION" and "already has a shipment with tracking number" in dup.content[0].text
    assert (
        again["shipments"][0]["carrier_code"] == "FedEx"
        and again["shipments"][0]["tracking_number"] == "1Z999"
    )
    assert empty["shipments"] == []


async def test_inventory_tools(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        listed = ok(await c.call_tool("inventory_list", {"limit": 5}))
        created = ok(
            await c.call_tool(
                "inventory_create",
                {"item": {"name": "Mug", "code": "MUG-1", "price": 9, "stock": 4, "location": "A1"}},
            )
        )
        iid = str(created["item"]["id"])
        got = ok(await c.call_tool("inventory_get", {"item_id": iid}))
        upd = ok(await c.call_tool("inventory_update", {"item_id": iid, "changes": {"stock": 7}}))
        by_code = ok(await c.call_tool("inventory_list", {"code": "MUG-1"}))
        unconfirmed = await c.call_tool("inventory_delete", {"item_id": iid})
        ok(await c.call_tool("inventory_delete", {"item_id": iid, "confirm": True}))
        gone = await c.call_tool("inventory_get", {"item_id": iid})
    assert len(listed["items"]) == 5 and listed["next_offset"] == 5
    assert got["item"]["code"] == "MUG-1"
    assert upd["item"]["stock"] == 7 and upd["item"]["location"] == "A1"  # full PUT kept the rest
    assert [i["code"] for i in by_code["items"]] == ["MUG-1"]
    assert code(unconfirmed) == "CONFIRMATION_REQUIRED" and code(gone) == "NOT_FOUND"


async def test_store_get_never_shows_credentials(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        store = ok(await c.call_tool("store_get", {}))["store"]
    assert store["folders"] == {"1": "New", "2": "Prepared", "3": "Closed", "4": "Canceled"}
    text = json.dumps(store)
    assert "sandbox-key" not in text and "api_key" not in text and "smtp_password" not in text


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("orders_get", {"order_id": "../store"}),
        ("orders_get", {"order_id": "1/../../x"}),
        ("orders_get", {"order_id": "%2e%2e"}),
        ("orders_get", {"order_id": "1?x="}),
        ("orders_get", {"order_id": 12.5}),
        ("orders_get", {"order_id": True}),
        ("orders_update", {"order_id": "200001", "changes": {"order_total": 1}}),
        ("orders_update", {"order_id": "200001", "changes": "email=x"}),
        (
            "orders_update",
            {"order_id": "200001", "changes": {"notes": None, "checkout_data": {"k": "x" * 4000}}},
        ),
        (
            "orders_update",
            {"order_id": "200001", "changes": {"order_items": [{"id": "../1", "quantity": 2}]}},
        ),
        (
            "orders_update",
            {"order_id": "200001", "changes": {"order_items": [{"id": "1", "quantity": "many"}]}},
        ),
        ("orders_create", {"order": {"order_items": []}}),
        ("orders_create", {"order": {**NEW_ORDER, "order_metadata": {"k": "y" * 2500}}}),
        ("orders_add_note", {"order_id": "200001", "note": "n" * 1801}),
        ("orders_move", {"order_ids": ["200001", "../x"], "folder_id": 2}),
        ("orders_delete", {"order_id": "..", "confirm": True}),
        ("order_items_add", {"order_id": "200001", "item": {"name": "x", "quantity": "lots"}}),
        ("shipments_add", {"order_id": "200001", "shipment": {"carrier_code": "UPS"}}),
        ("inventory_create", {"item": {"name": "no code"}}),
        ("inventory_update", {"item_id": "x1", "changes": {"stock": 1}}),
    ],
)
async def test_bad_input_is_refused_with_no_upstream_write(
    gateway_factory: Any, orderdesk_sandbox: Any, tool: str, args: dict[str, Any]
) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(tool, args)
    assert code(result) == "VALIDATION", result.content[0].text
    writes = [r for r in orderdesk_sandbox.requests() if r.method in ("POST", "PUT", "DELETE")]
    assert writes == []


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("order_items_add", {"order_id": "200001", "item": {"name": "x", "quantity": -3}}),
        ("order_items_add", {"order_id": "200001", "item": {"name": "x", "price": -10}}),
        ("order_items_add", {"order_id": "200001", "item": {"price": 1, "quantity": 1}}),
        ("inventory_update", {"item_id": "1", "changes": {"id": 999}}),
        ("inventory_update", {"item_id": "1", "changes": {"date_added": "2000-01-01"}}),
    ],
)
async def test_item_and_inventory_rules_are_checked_before_any_write(
    gateway_factory: Any, orderdesk_sandbox: Any, tool: str, args: dict[str, Any]
) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(tool, args)
    assert code(result) == "VALIDATION", result.content[0].text
    assert [r for r in orderdesk_sandbox.requests() if r.method in ("POST", "PUT", "DELETE")] == []


async def test_item_update_merges_maps_key_by_key_and_checks_the_result(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        order = ok(await c.call_tool("orders_create", {"order": NEW_ORDER}))["order"]
        gadget = next(i for i in order["order_items"] if i["name"] == "Gadget")
        args = {"order_id": order["id"], "item_id": gadget["id"]}
        ok(await c.call_tool("order_items_update", {**args, "item": {"variation_list": {"Color": "Red"}}}))
        bad = await c.call_tool("order_items_update", {**args, "item": {"quantity": 0}})
    item = next(i for i in orderdesk_sandbox.order(order["id"])["order_items"] if i["id"] == gadget["id"])
    assert item["variation_list"] == {"Size": "L", "Color": "Red"}
    assert code(bad) == "VALIDATION"


async def test_a_numeric_id_sent_as_a_json_number_is_accepted(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_get", {"order_id": 200001})
    assert ok(result)["order"]["id"] == "200001"
