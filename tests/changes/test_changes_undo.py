"""Undo for agents (issue 24): an agent's changes listed and reverted, with an outside edit in between.

Everything is real: the in-process MCP client, the gateway, the OrderDesk sandbox over HTTP and the
test's own sqlite journal. The outside edit is made on the sandbox directly (as a person in the UI).
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp.types import ElicitResult

from odmcp.middleware import error_of
from odmcp.testing import connect

OID = "200021"


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


def _accept(asked: list[str]) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    return callback


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_undo_restores_what_is_still_ours_and_lists_the_outside_edit(
    gateway_factory: Any, orderdesk_sandbox: Any, mode: str
) -> None:
    sb = orderdesk_sandbox
    store_id = sb.store_id
    start = sb.order(OID)
    folder0 = str(start["folder_id"])
    target_folder = 3 if folder0 != "3" else 2
    item = {"name": "UNDO-ITEM", "code": "UNDO-1", "price": 4, "quantity": 1}
    shipment = {"tracking_number": "1ZUNDO0001", "carrier_code": "UPS"}
    asked: list[str] = []
    gw = gateway_factory()
    async with connect(gw, mode=mode, elicitation_callback=_accept(asked)) as c:
        _ok(
            await c.call_tool(
                "orders_update",
                {
                    "order_id": OID,
                    "changes": {
                        "email": "agent@example.com",
                        "shipping_method": "Overnight",
                        "shipping": {"city": "Agentville"},
                    },
                },
            )
        )
        _ok(await c.call_tool("order_items_add", {"order_id": OID, "item": item}))
        _ok(await c.call_tool("shipments_add", {"order_id": OID, "shipment": shipment}))
        _ok(await c.call_tool("orders_move", {"order_ids": [OID], "folder_id": target_folder}))
        # a person edits one of the three fields in the UI
        sb.edit_order(store_id, OID, {"shipping_method": "Pickup"})

        listed = _ok(await c.call_tool("changes_list", {"order_id": OID}))["changes"]
        assert [e["action"] for e in listed] == ["move", "add_shipment", "add_item", "update"]
        update = listed[-1]
        assert update["revertible"] and update["outcome"] == "applied"
        fields = {f["path"]: (f["before"], f["after"]) for f in update["fields"]}
        assert fields["email"] == (start["email"], "agent@example.com")
        assert fields["shipping.city"] == (start["shipping"]["city"], "Agentville")
        assert listed[1]["new_id"] and listed[2]["new_id"]  # the added item's and shipment's ids
        assert listed[0]["needs_confirmation"]

        sb.clear_requests()
        reports = {}
        for e in listed:  # newest first, as a person would undo them
            reports[e["action"]] = _ok(await c.call_tool("changes_revert", {"change_id": e["change_id"]}))
        after = _ok(await c.call_tool("orders_get", {"order_id": OID}))["order"]
        shipments = _ok(await c.call_tool("shipments_list", {"order_id": OID}))

    upstream = sb.order(OID)
    # two fields restored, the edited one left alone and listed with its current value
    assert upstream["email"] == start["email"] and upstream["shipping"]["city"] == start["shipping"]["city"]
    assert upstream["shipping_method"] == "Pickup"
    up = reports["update"]["results"][0]
    assert sorted(up["restored"]) == ["email", "shipping.city"]
    assert up["conflicts"] == [{"path": "shipping_method", "wrote": "Overnight", "current": "Pickup"}]
    # the item and the shipment are gone, by the ids the changes recorded
    assert "UNDO-ITEM" not in [i["name"] for i in upstream["order_items"]]
    assert len(upstream["order_items"]) == len(start["order_items"])
    assert all(s.get("tracking_number") != "1ZUNDO0001" for s in shipments.get("shipments", []))
    # moved back after the user confirmed (the folder's rules run again)
    assert str(upstream["folder_id"]) == folder0
    assert len(asked) == 1 and f"folder {folder0}" in asked[0]
    # the next read shows the same
    assert after["email"] == start["email"] and str(after["folder_id"]) == folder0
    assert after["shipping_method"] == "Pickup"
    deletes = [r.path for r in sb.requests(method="DELETE")]
    assert len(deletes) == 2  # the item and the shipment, once each
    assert len(sb.requests(method="PUT")) == 1  # one order PUT restores both fields
    assert len([r for r in sb.requests(method="POST") if "move-orders" in r.path]) == 1


@pytest.mark.parametrize("journal", ["sqlite", "redis"])
async def test_a_revert_is_a_change_listed_and_revertible(
    gateway_factory: Any, orderdesk_sandbox: Any, journal: str
) -> None:
    async with connect(gateway_factory(overrides={"journal.backend": journal})) as c:
        _ok(await c.call_tool("orders_update", {"order_id": OID, "changes": {"email": "a@example.com"}}))
        (change,) = _ok(await c.call_tool("changes_list", {"order_id": OID}))["changes"]
        _ok(await c.call_tool("changes_revert", {"change_id": change["change_id"]}))
        listed = _ok(await c.call_tool("changes_list", {"order_id": OID}))["changes"]
        assert listed[0]["tool"] == "changes.revert" and listed[0]["revertible"]
        assert listed[0]["fields"] == [
            {"path": "email", "before": "a@example.com", "after": change["fields"][0]["before"]}
        ]
        _ok(await c.call_tool("changes_revert", {"change_id": listed[0]["change_id"]}))  # redo
    assert orderdesk_sandbox.order(OID)["email"] == "a@example.com"


async def test_notes_and_deleted_orders_are_not_revertible_but_say_why(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        _ok(await c.call_tool("orders_add_note", {"order_id": OID, "note": "agent was here"}))
        _ok(await c.call_tool("orders_delete", {"order_id": "200022", "confirm": True}))
        page = _ok(await c.call_tool("changes_list", {"fields": "full"}))
        deleted, note = page["changes"]
        # the last page says how far back history goes
        assert page["next_offset"] is None and "pruned" in page["history"] and "7 days" in page["history"]
        assert not note["revertible"] and "append-only" in note["reason"]
        assert "orders_add_note" in note["offer"]
        assert not deleted["revertible"] and deleted["deleted_object"]["id"] == "200022"
        err = error_of(await c.call_tool("changes_revert", {"change_id": note["change_id"]}))
        assert err["code"] == "VALIDATION" and "append-only" in err["message"]
        assert orderdesk_sandbox.order("200022") is None


async def test_a_move_back_needs_confirmation(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    folder0 = str(orderdesk_sandbox.order(OID)["folder_id"])
    target = 3 if folder0 != "3" else 2
    async with connect(gateway_factory()) as c:
        _ok(await c.call_tool("orders_move", {"order_ids": [OID], "folder_id": target}))
        (move,) = _ok(await c.call_tool("changes_list", {}))["changes"]
        err = error_of(await c.call_tool("changes_revert", {"change_id": move["change_id"]}))
        assert err["code"] == "CONFIRMATION_REQUIRED" and "rules" in err["message"]
        assert str(orderdesk_sandbox.order(OID)["folder_id"]) == str(target)
        dry = _ok(await c.call_tool("changes_revert", {"change_id": move["change_id"], "dry_run": True}))
        assert dry["results"][0]["outcome"] == "dry_run"
        _ok(await c.call_tool("changes_revert", {"change_id": move["change_id"], "confirm": True}))
    assert str(orderdesk_sandbox.order(OID)["folder_id"]) == folder0
