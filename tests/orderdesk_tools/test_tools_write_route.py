"""The one write route, case by case (issue "One write route and a durable journal"): what each tool
says, what is upstream, and what the next read shows, under twins, faults and outside edits.

Interleavings are forced with the sandbox's faults (a held first request makes its twin wait on the
lock; ``skip`` spares the snapshot read and fails the request after it), never with sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from odmcp.api import Ref, hookimpl
from odmcp.middleware import error_of
from odmcp.testing import connect
from odmcp_orderdesk.testing import new_order


def _writes(sandbox: Any, method: str | None = None) -> list[Any]:
    return [r for r in sandbox.requests() if r.method != "GET" and (method is None or r.method == method)]


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


async def test_twin_item_adds_are_both_written_when_the_second_fails_before_applying(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200011"
    item = {"name": "TWIN-ITEM", "code": "TW-1", "price": 3, "quantity": 1}
    # the first POST is held while its twin waits for the lock; the second is refused (a 500, not applied)
    # (the held first POST is the first rule's; the second rule sees only the twin's POST)
    orderdesk_sandbox.add_fault(method="POST", path=rf"^/orders/{oid}/order-items$", delay_ms=200, times=1)
    orderdesk_sandbox.add_fault(method="POST", path=rf"^/orders/{oid}/order-items$", status=500, times=1)
    async with connect(gateway_factory()) as c:
        a, b = await asyncio.gather(
            *(c.call_tool("order_items_add", {"order_id": oid, "item": item}) for _ in range(2))
        )
        after = _ok(await c.call_tool("orders_get", {"order_id": oid}))
    assert _ok(a)["message"] == "Order Item Added" and _ok(b)["message"] == "Order Item Added"
    upstream = [i["name"] for i in orderdesk_sandbox.order(oid)["order_items"]].count("TWIN-ITEM")
    assert upstream == 2  # two calls said "added": two items
    assert [i["name"] for i in after["order"]["order_items"]].count("TWIN-ITEM") == 2
    assert len(_writes(orderdesk_sandbox, "POST")) == 3  # one refused by the fault, sent again once


async def test_twin_notes_are_both_written_when_the_second_fails_before_applying(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200012"
    path = rf"^/orders/{oid}/order-history$"
    orderdesk_sandbox.add_fault(method="POST", path=path, delay_ms=200, times=1)
    orderdesk_sandbox.add_fault(method="POST", path=path, status=500, times=1)
    async with connect(gateway_factory()) as c:
        a, b = await asyncio.gather(
            *(c.call_tool("orders_add_note", {"order_id": oid, "note": "twin note"}) for _ in range(2))
        )
        after = _ok(await c.call_tool("orders_get", {"order_id": oid, "include_history": True}))
    first, second = _ok(a), _ok(b)
    assert {first["note"], second["note"]} == {"twin note"} and first["order_id"] == oid
    history = orderdesk_sandbox.order(oid, with_history=True)["order_history"]
    assert [h["note"] for h in history].count("twin note") == 2
    assert sorted([first["entries"], second["entries"]]) == [len(history) - 1, len(history)]
    assert [h["note"] for h in after["order"]["order_history"]].count("twin note") == 2


async def test_a_note_result_is_small_the_note_and_the_count(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        for i in range(5):
            result = _ok(await c.call_tool("orders_add_note", {"order_id": "200013", "note": f"n{i}"}))
    assert set(result) == {"message", "order_id", "note", "entries", "reconciled"}
    assert result["entries"] == len(orderdesk_sandbox.order("200013", with_history=True)["order_history"])


async def test_a_tracking_number_the_order_already_has_is_refused_before_sending_even_after_a_500(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200014"
    async with connect(gateway_factory()) as c:
        _ok(await c.call_tool("shipments_add", {"order_id": oid, "shipment": {"tracking_number": "1Z999"}}))
        orderdesk_sandbox.clear_requests()
        orderdesk_sandbox.add_fault(method="POST", path=rf"^/orders/{oid}/shipments$", status=500, times=1)
        again = await c.call_tool(
            "shipments_add",
            {"order_id": oid, "shipment": {"tracking_number": "1Z999", "carrier_code": "FedEx"}},
        )
        listed = _ok(await c.call_tool("shipments_list", {"order_id": oid}))
    err = error_of(again)
    assert err["code"] == "VALIDATION" and "1Z999" in err["message"] and "nothing was written" in err["hint"]
    assert _writes(orderdesk_sandbox) == []  # never sent: the snapshot had it
    assert [s["tracking_number"] for s in orderdesk_sandbox.order(oid)["order_shipments"]] == ["1Z999"]
    assert [s["tracking_number"] for s in listed["shipments"]] == ["1Z999"]


async def test_an_existing_sku_is_refused_before_sending(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    inv = orderdesk_sandbox.state.stores[orderdesk_sandbox.store_id].inventory
    existing = inv[sorted(inv)[0]]
    orderdesk_sandbox.add_fault(method="POST", path=r"^/inventory-items$", status=500, times=1)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("inventory_create", {"item": {"name": "Other", "code": existing["code"]}})
    err = error_of(result)
    assert err["code"] == "VALIDATION" and existing["code"] in err["message"]
    assert _writes(orderdesk_sandbox) == []
    assert sum(1 for i in inv.values() if i["code"] == existing["code"]) == 1


@pytest.mark.parametrize(
    ("tool", "args", "path"),
    [
        ("orders_delete", {"order_id": "987654", "confirm": True}, r"^/orders/987654$"),
        ("order_items_delete", {"order_id": "200015", "item_id": "999999"}, r"/order-items/999999$"),
        ("shipments_delete", {"order_id": "200015", "shipment_id": "999999"}, r"/shipments/999999$"),
        ("inventory_delete", {"item_id": "999999", "confirm": True}, r"^/inventory-items/999999$"),
    ],
)
async def test_deleting_what_never_existed_is_not_found_even_when_a_delete_would_get_a_5xx(
    gateway_factory: Any, orderdesk_sandbox: Any, tool: str, args: dict[str, Any], path: str
) -> None:
    orderdesk_sandbox.add_fault(method="DELETE", path=path, status=503, times=1)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(tool, args)
    assert error_of(result)["code"] == "NOT_FOUND", result.content[0].text
    assert _writes(orderdesk_sandbox) == []


async def test_a_delete_whose_answer_is_a_5xx_after_applying_is_deleted_once(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(
        method="DELETE", path=r"^/orders/200016$", status=500, after_apply=True, times=1
    )
    async with connect(gateway_factory()) as c:
        result = _ok(await c.call_tool("orders_delete", {"order_id": "200016", "confirm": True}))
        gone = await c.call_tool("orders_get", {"order_id": "200016"})
    assert result == {"deleted": True, "id": "200016"}
    assert orderdesk_sandbox.order("200016") is None and error_of(gone)["code"] == "NOT_FOUND"
    assert len(_writes(orderdesk_sandbox, "DELETE")) == 1


async def test_a_move_to_the_folder_the_order_is_in_sends_nothing_even_with_a_500_ahead(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    where = orderdesk_sandbox.order("200017")["folder_id"]
    orderdesk_sandbox.add_fault(method="POST", path=r"^/move-orders$", status=500, times=1)
    async with connect(gateway_factory()) as c:
        report = _ok(await c.call_tool("orders_move", {"order_ids": ["200017"], "folder_id": int(where)}))
    (entry,) = report["results"]
    assert entry["outcome"] == "unchanged" and "no folder rules ran" in entry["message"]
    assert "reconciled" not in entry
    assert _writes(orderdesk_sandbox) == []


class OutsideEditor:
    """Edits the order in "the OrderDesk UI" right before the gateway's upload, which then fails with a
    500 (not applied): the values the agent asked for are there, but not by its hand."""

    def __init__(self, sandbox: Any, order_id: str, changes: dict[str, Any]) -> None:
        self.sandbox, self.order_id, self.changes = sandbox, order_id, changes

    @hookimpl(tryfirst=True)
    def gateway_upload(self, ref: Ref) -> None:
        if ref.id == self.order_id:
            self.sandbox.edit_order(self.sandbox.store_id, self.order_id, self.changes)
        return None  # declines: the real upload runs


async def test_values_an_outside_edit_set_while_our_update_failed_are_already_so_not_applied(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200018"
    editor = OutsideEditor(orderdesk_sandbox, oid, {"email": "same@example.com", "shipping_method": "UI"})
    orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{oid}$", status=500, times=1)
    async with connect(gateway_factory(plugins=[editor])) as c:
        result = _ok(
            await c.call_tool("orders_update", {"order_id": oid, "changes": {"email": "same@example.com"}})
        )
        after = _ok(await c.call_tool("orders_get", {"order_id": oid}))
    assert result["message"].startswith("Already so") and "a re-read confirmed" not in result["message"]
    assert len(_writes(orderdesk_sandbox, "PUT")) == 1  # never sent again
    assert orderdesk_sandbox.order(oid)["shipping_method"] == "UI"  # the outside edit was not overwritten
    assert after["order"]["email"] == "same@example.com" and after["order"]["shipping_method"] == "UI"


async def test_every_update_result_has_the_diff_and_the_same_order_shape(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200019"
    async with connect(gateway_factory()) as c:
        _ok(await c.call_tool("shipments_add", {"order_id": oid, "shipment": {"tracking_number": "SHAPE-1"}}))
        dry = _ok(
            await c.call_tool(
                "orders_update", {"order_id": oid, "changes": {"email": "d@x.io"}, "dry_run": True}
            )
        )
        real = _ok(await c.call_tool("orders_update", {"order_id": oid, "changes": {"email": "d@x.io"}}))
        same = _ok(await c.call_tool("orders_update", {"order_id": oid, "changes": {"email": "d@x.io"}}))
    diff = [{"path": "email", "before": dry["changes"][0]["before"], "after": "d@x.io"}]
    assert dry["changes"] == diff and real["changes"] == diff and same["changes"] == []
    assert real["changed_fields"] == ["email"]
    # one shape in all three: the summary (it says the order shipped) and the field the change touched
    assert dry["order"].keys() == real["order"].keys() == same["order"].keys() - {"email"} | {"email"}
    for result in (dry, real, same):
        assert result["order"]["tracked"] is True and result["order"]["email"] == "d@x.io", result["message"]


async def test_orders_update_is_not_advertised_as_idempotent(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in ("orders_update", "orders_update_many"):
        # published only when true (false is the spec's default)
        assert tools[name].annotations is None or not tools[name].annotations.idempotent_hint


async def test_a_create_returns_the_new_order_and_writes_once_under_an_unclear_answer(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="POST", path=r"^/orders$", after_apply=True, status=502, times=1)
    async with connect(gateway_factory()) as c:
        result = _ok(await c.call_tool("orders_create", {"order": new_order(source_id="ROUTE-1")}))
    created = [o for o in orderdesk_sandbox.orders() if o["source_id"] == "ROUTE-1"]
    assert len(created) == 1 and result["order"]["id"] == created[0]["id"]
    assert len(_writes(orderdesk_sandbox, "POST")) == 1


async def test_a_caller_that_leaves_during_the_put_never_hides_the_write(
    gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Any
) -> None:
    import json

    import anyio

    oid = "200020"
    # the PUT is held upstream; the caller gives up while it is on its way
    orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{oid}$", delay_ms=600, times=1)
    async with connect(gateway_factory()) as c:
        _ok(await c.call_tool("orders_get", {"order_id": oid}))  # cached before the write
        with anyio.move_on_after(0.3):
            await c.call_tool("orders_update", {"order_id": oid, "changes": {"email": "left@example.com"}})
        await asyncio.sleep(0.6)  # the write settles in the gateway although nobody waits for it
        after = _ok(await c.call_tool("orders_get", {"order_id": oid}))
    assert orderdesk_sandbox.order(oid)["email"] == "left@example.com"
    assert after["order"]["email"] == "left@example.com"  # not the cached copy from before the write
    (line,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert line["outcome"] == "ok" and line["cancelled"] is True and line["changed_fields"] == ["email"]


# --- what the client no longer does, the route does (the client sends each write once) ------------

#: a short request timeout, so an answer held upstream is a timeout (an unclear, unanswered write)
QUICK = {"orderdesk": {"request_timeout": 0.3}, "mutations.reconcile_settle": 0.05}


async def test_a_shipment_added_with_an_unclear_answer_is_confirmed_by_counting_its_tracking_number(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200012"
    orderdesk_sandbox.add_fault(
        method="POST", path=rf"^/orders/{oid}/shipments$", after_apply=True, drop=True, times=1
    )
    async with connect(gateway_factory()) as c:
        result = _ok(
            await c.call_tool("shipments_add", {"order_id": oid, "shipment": {"tracking_number": "1Z-ROUTE"}})
        )
    assert len(_writes(orderdesk_sandbox, "POST")) == 1  # never sent again
    mine = [s for s in orderdesk_sandbox.order(oid)["order_shipments"] if s["tracking_number"] == "1Z-ROUTE"]
    assert len(mine) == 1
    assert result == {"message": "Shipment Added", "reconciled": True}


async def test_a_shipment_whose_post_may_still_be_in_flight_is_outcome_unknown_naming_how_to_check(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = "200012"
    orderdesk_sandbox.add_fault(method="POST", path=rf"^/orders/{oid}/shipments$", drop=True, times=1)
    async with connect(gateway_factory(overrides=QUICK)) as c:
        result = await c.call_tool(
            "shipments_add", {"order_id": oid, "shipment": {"tracking_number": "1Z-LOST"}}
        )
    err = error_of(result)
    assert err["code"] == "OUTCOME_UNKNOWN" and err["retryable"] is False, err
    assert f"call shipments_list for order {oid} and look for the tracking number" in err["hint"], err
    assert err["hint"].startswith("Do not repeat it blindly"), err
    assert len(_writes(orderdesk_sandbox, "POST")) == 1
    assert all(s["tracking_number"] != "1Z-LOST" for s in orderdesk_sandbox.order(oid)["order_shipments"])


async def test_a_create_after_a_timeout_is_found_by_its_source_id_and_not_posted_again(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="POST", path=r"^/orders$", after_apply=True, delay_ms=900, times=1)
    async with connect(gateway_factory(overrides=QUICK)) as c:
        result = _ok(await c.call_tool("orders_create", {"order": new_order(source_id="ROUTE-T")}))
    created = [o for o in orderdesk_sandbox.orders() if o["source_id"] == "ROUTE-T"]
    assert len(created) == 1 and result["order"]["id"] == created[0]["id"]
    # the held POST was cut off (the sandbox logs no answer for it); a second POST would be logged
    assert _writes(orderdesk_sandbox, "POST") == []
    searches = [r for r in orderdesk_sandbox.requests(method="GET") if r.query.get("source_id") == "ROUTE-T"]
    assert len(searches) == 2  # the snapshot before the POST, the re-read that found it by its source_id


async def test_a_create_answered_500_before_it_was_applied_is_posted_again_with_the_same_source_id(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="POST", path=r"^/orders$", status=500, times=1)
    async with connect(gateway_factory(overrides=QUICK)) as c:
        result = _ok(await c.call_tool("orders_create", {"order": new_order(source_id="ROUTE-5")}))
    created = [o for o in orderdesk_sandbox.orders() if o["source_id"] == "ROUTE-5"]
    assert len(created) == 1 and result["order"]["id"] == created[0]["id"]
    first, second = _writes(orderdesk_sandbox, "POST")  # the re-read showed it absent: sent again
    assert first.json["source_id"] == second.json["source_id"] == "ROUTE-5"


async def test_a_create_is_not_confused_by_an_order_of_another_source_with_the_same_source_id(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory(overrides=QUICK)) as c:
        theirs = _ok(
            await c.call_tool("orders_create", {"order": new_order(source_id="SAME-1", source_name="Amazon")})
        )
        orderdesk_sandbox.add_fault(method="POST", path=r"^/orders$", after_apply=True, status=502, times=1)
        ours = _ok(await c.call_tool("orders_create", {"order": new_order(source_id="SAME-1")}))
    both = [o for o in orderdesk_sandbox.orders() if o["source_id"] == "SAME-1"]
    assert sorted(o["source_name"] for o in both) == ["Amazon", "Order Desk"]
    assert ours["order"]["id"] != theirs["order"]["id"]
    assert ours["order"]["id"] == next(o["id"] for o in both if o["source_name"] == "Order Desk")
    assert len(_writes(orderdesk_sandbox, "POST")) == 2


async def test_a_create_without_a_source_id_is_given_one_before_it_is_sent(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    import re

    order = new_order()
    del order["source_id"]
    async with connect(gateway_factory()) as c:
        result = _ok(await c.call_tool("orders_create", {"order": order}))
    (post,) = _writes(orderdesk_sandbox, "POST")
    assert re.fullmatch(r"mcpgw-[0-9a-f]+", post.json["source_id"])
    assert str(result["order"]["id"]) == str(orderdesk_sandbox.orders()[-1]["id"])


@pytest.mark.parametrize("tool", ["shipments_add", "inventory_create", "orders_create", "orders_update"])
async def test_concurrent_identical_twins_write_once_and_say_so(
    gateway_factory: Any, orderdesk_sandbox: Any, tool: str
) -> None:
    """Two identical calls at the same moment (an agent's retry racing its first try): the effect is
    upstream once, the tools say which call made it, and the next read shows it once."""
    oid = "200021"
    args: dict[str, Any] = {
        "shipments_add": {"order_id": oid, "shipment": {"tracking_number": "TWIN-1Z"}},
        "inventory_create": {"item": {"name": "Twin", "code": "TWIN-SKU"}},
        "orders_create": {"order": new_order(source_id=None), "idempotency_key": "twin-create-key"},
        "orders_update": {"order_id": oid, "changes": {"email": "twin@example.com"}},
    }[tool]
    if tool == "orders_create":
        args["order"].pop("source_id")
    # the first request is held upstream while its twin waits on the lock (or the key)
    path = {
        "shipments_add": "/shipments$",
        "inventory_create": "^/inventory-items$",
        "orders_create": "^/orders$",
    }
    orderdesk_sandbox.add_fault(
        method="PUT" if tool == "orders_update" else "POST",
        path=path.get(tool, rf"^/orders/{oid}$"),
        delay_ms=200,
        times=1,
    )
    async with connect(gateway_factory()) as c:
        a, b = await asyncio.gather(c.call_tool(tool, args), c.call_tool(tool, args))
        if tool == "shipments_add":
            seen = _ok(await c.call_tool("shipments_list", {"order_id": oid}))["shipments"]
            upstream = [s["tracking_number"] for s in orderdesk_sandbox.order(oid)["order_shipments"]]
            assert (
                upstream.count("TWIN-1Z") == 1 and [s["tracking_number"] for s in seen].count("TWIN-1Z") == 1
            )
        elif tool == "inventory_create":
            inv = orderdesk_sandbox.state.stores[orderdesk_sandbox.store_id].inventory.values()
            assert sum(1 for i in inv if i["code"] == "TWIN-SKU") == 1
            listed = _ok(await c.call_tool("inventory_list", {"code": "TWIN-SKU"}))["items"]
            assert len(listed) == 1
        elif tool == "orders_create":
            made = [o for o in orderdesk_sandbox.orders() if o.get("email") == args["order"]["email"]]
            assert len(made) == 1
            assert _ok(a)["order"]["id"] == _ok(b)["order"]["id"] == made[0]["id"]
        else:
            assert orderdesk_sandbox.order(oid)["email"] == "twin@example.com"
            assert (
                _ok(await c.call_tool("orders_get", {"order_id": oid}))["order"]["email"]
                == "twin@example.com"
            )
    results = [a, b]
    if tool in ("shipments_add", "inventory_create"):  # the twin is refused as OrderDesk would: nothing sent
        assert sorted(r.is_error for r in results) == [False, True]
        assert error_of(next(r for r in results if r.is_error))["code"] == "VALIDATION"
    elif tool == "orders_update":  # the twin found it already so and sent nothing
        messages = sorted(_ok(r)["message"] for r in results)
        assert messages[0].startswith("No change") and messages[1] == "Updated."
        assert len(_writes(orderdesk_sandbox, "PUT")) == 1
    write_method = "PUT" if tool == "orders_update" else "POST"
    assert len(_writes(orderdesk_sandbox, write_method)) == 1
