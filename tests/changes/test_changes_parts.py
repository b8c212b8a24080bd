"""Reverts of item, shipment and inventory changes (issue 24): part fields restored where still ours,
deleted items and shipments re-added with their new ids reported, an inventory change restored like an
order field; a revert of a revert puts the change back."""

from __future__ import annotations

from typing import Any

from odmcp.middleware import error_of
from odmcp.testing import connect


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


async def test_item_shipment_and_inventory_changes_are_undone(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    sb = orderdesk_sandbox
    order = next(o for o in sb.orders() if o.get("order_shipments") and len(o["order_items"]) >= 2)
    oid = str(order["id"])
    first, second = order["order_items"][0], order["order_items"][1]
    shipment = order["order_shipments"][0]
    async with connect(gateway_factory()) as c:
        inv = _ok(await c.call_tool("inventory_list", {"limit": 1}))["items"][0]
        inv_full = _ok(await c.call_tool("inventory_get", {"item_id": str(inv["id"])}))
        inv_item = inv_full.get("item", inv_full)
        qty = int(float(first["quantity"]))
        _ok(
            await c.call_tool(
                "order_items_update",
                {"order_id": oid, "item_id": str(first["id"]), "item": {"quantity": qty + 5}},
            )
        )
        _ok(await c.call_tool("order_items_delete", {"order_id": oid, "item_id": str(second["id"])}))
        _ok(
            await c.call_tool(
                "shipments_update",
                {"order_id": oid, "shipment_id": str(shipment["id"]), "shipment": {"carrier_code": "DHL"}},
            )
        )
        _ok(await c.call_tool("shipments_delete", {"order_id": oid, "shipment_id": str(shipment["id"])}))
        _ok(
            await c.call_tool("inventory_update", {"item_id": str(inv_item["id"]), "changes": {"stock": 777}})
        )
        listed = _ok(await c.call_tool("changes_list", {"limit": 50}))["changes"]
        assert [e["action"] for e in listed] == [
            "update",
            "delete_shipment",
            "update_shipment",
            "delete_item",
            "update_item",
        ]
        assert all(e["revertible"] for e in listed)
        answers = [await c.call_tool("changes_revert", {"change_id": e["change_id"]}) for e in listed]
        again = _ok(await c.call_tool("changes_list", {"limit": 4}))["changes"]
        inv_now = _ok(await c.call_tool("inventory_get", {"item_id": str(inv_item["id"])}))
    # the shipment's update can't be undone after its delete was: the re-added one has a new id
    gone = error_of(answers[2])
    assert gone["code"] == "NOT_FOUND" and f"no shipment {shipment['id']} any more" in gone["message"]
    reports = [_ok(a) if i != 2 else {} for i, a in enumerate(answers)]
    now = sb.order(oid)
    items = {str(i["id"]): i for i in now["order_items"]}
    assert int(float(items[str(first["id"])]["quantity"])) == qty  # the item's field restored
    readded = reports[3]["results"][0]["new_id"]  # the deleted item, re-added under a new id
    assert readded != str(second["id"]) and items[readded]["name"] == second["name"]
    shipments = now.get("order_shipments") or []
    back = [s for s in shipments if s.get("tracking_number") == shipment.get("tracking_number")]
    assert len(back) == 1 and str(back[0]["id"]) == reports[1]["results"][0]["new_id"]
    assert back[0].get("carrier_code") == "DHL"  # re-added as it was right before its delete
    assert float(inv_now.get("item", inv_now)["stock"]) == float(inv_item["stock"])
    assert reports[0]["results"][0]["restored"] == ["stock"]
    # the reverts are journaled too, newest first, and can be undone in turn
    assert [e["tool"] for e in again] == ["changes.revert"] * 4 and all(e["revertible"] for e in again)


async def test_an_added_item_is_journaled_with_its_id_and_found_without_it(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    sb = orderdesk_sandbox
    oid = "200015"
    item = {"name": "ID-PROBE", "code": "IDP-1", "price": 2, "quantity": 1}
    async with connect(gateway_factory()) as c:
        sb.clear_requests()
        _ok(await c.call_tool("order_items_add", {"order_id": oid, "item": item}))
        # GET (snapshot), POST, GET (the new item's id: OrderDesk answers with a message only)
        assert [r.method for r in sb.requests()] == ["GET", "POST", "GET"]
        (added,) = _ok(await c.call_tool("changes_list", {"order_id": oid}))["changes"]
        new = [i for i in sb.order(oid)["order_items"] if i["name"] == "ID-PROBE"]
        assert added["new_id"] == str(new[0]["id"])
        # the read-back fails: the add is still reported (it is there), its id is not journaled, and
        # the revert finds the one new item that matches it
        sb.add_fault(method="GET", path=rf"^/orders/{oid}$", status=500, skip=1, times=10)
        _ok(await c.call_tool("order_items_add", {"order_id": oid, "item": {**item, "name": "ID-PROBE-2"}}))
        sb.clear_faults()
        second = _ok(await c.call_tool("changes_list", {"order_id": oid}))["changes"][0]
        assert "new_id" not in second and second["revertible"]
        _ok(await c.call_tool("changes_revert", {"change_id": second["change_id"]}))
        _ok(await c.call_tool("changes_revert", {"change_id": added["change_id"]}))
    assert not [i for i in sb.order(oid)["order_items"] if str(i["name"]).startswith("ID-PROBE")]
