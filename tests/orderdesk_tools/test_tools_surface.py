"""Issue 22: results sized for a context window, every documented order search, SKUs with commas, and
errors that point only to tools the caller can call. Through the real MCP client, against the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from odmcp import hookimpl
from odmcp.middleware import error_of
from odmcp.testing import connect
from odmcp_orderdesk import client as od_client
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.summary import ORDER_SUMMARY
from odmcp_orderdesk.testing import new_order

BUDGET = 20_000


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    data: dict[str, Any] = result.structured_content
    return data


def text_bytes(result: Any) -> int:
    return len(result.content[0].text.encode())


# --- the byte budget ------------------------------------------------------------------------------


async def test_a_list_over_the_budget_returns_whole_records_that_fit_and_where_to_go_on(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    every = {o["id"] for o in orderdesk_sandbox.orders()}
    async with connect(gateway_factory(overrides={"gateway.max_result_bytes": BUDGET})) as c:
        whole = await c.call_tool("orders_list", {"limit": 500})  # 36 summaries fit
        pages, offset = [], 0
        while offset is not None:
            page = await c.call_tool("orders_list", {"limit": 500, "offset": offset, "fields": "full"})
            assert text_bytes(page) <= BUDGET
            pages.append(ok(page))
            offset = pages[-1]["next_offset"]
    async with connect(gateway_factory()) as c:
        listed = {
            o["id"]: o
            for o in ok(await c.call_tool("orders_list", {"limit": 500, "fields": "full"}))["orders"]
        }
    assert "truncated" not in ok(whole) and ok(whole)["next_offset"] is None
    first = pages[0]
    assert first["truncated"] is True and 0 < len(first["orders"]) < len(every)
    assert first["next_offset"] == len(first["orders"])
    assert f"continue with offset={len(first['orders'])}" in first["note"]
    assert "gateway.max_result_bytes" in first["note"] and "fields" in first["note"]
    # never a record cut short: each one is the order as a list within the budget shows it
    for order in first["orders"]:
        assert order == listed[order["id"]]
    # following next_offset reaches every order exactly once
    seen = [o["id"] for p in pages for o in p["orders"]]
    assert len(seen) == len(set(seen)) and set(seen) == every
    assert "truncated" not in pages[-1]


async def test_one_object_over_the_budget_becomes_its_summary_with_a_note_naming_fields(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = orderdesk_sandbox.orders()[0]["id"]
    async with connect(gateway_factory(overrides={"gateway.max_result_bytes": 4096})) as c:
        for i in range(40):
            await c.call_tool("orders_add_note", {"order_id": oid, "note": f"Note {i}: checked the stock."})
        big = await c.call_tool("orders_get", {"order_id": oid, "include_history": True})
        small = await c.call_tool("orders_get", {"order_id": oid, "fields": ["id", "email"]})
        over = await c.call_tool("store_get", {})
    data = ok(big)
    assert text_bytes(big) <= 4096 and data["truncated"] is True
    assert set(data["order"]) == set(ORDER_SUMMARY) and data["order"]["id"] == oid
    assert "fields" in data["note"] and f"order {oid}" in data["note"]
    assert ok(small)["order"] == {"id": oid, "email": orderdesk_sandbox.order(oid)["email"]}
    assert "truncated" not in ok(small)
    assert text_bytes(over) <= 4096  # the store's settings fit, or are cut to id, name, folders
    assert "folders" in ok(over)["store"]


async def test_order_history_is_not_a_field_but_include_history(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        refused = await c.call_tool("orders_get", {"order_id": "200001", "fields": ["order_history"]})
    err = error_of(refused)
    assert err is not None and err["code"] == "VALIDATION" and "include_history" in err["hint"]


# --- searches -------------------------------------------------------------------------------------

DAY = "2031-03-04"
#: UTC date_added -> found by a one-day search of DAY (UTC), and by one of DAY in the store's time
#: (America/Los_Angeles: DAY local is DAY 08:00:00 UTC to the next day 07:59:59 UTC)
EDGES = {
    "2031-03-03 23:59:59": (False, False),
    "2031-03-04 00:00:00": (True, False),
    "2031-03-04 07:59:59": (True, False),
    "2031-03-04 08:00:00": (True, True),
    "2031-03-04 23:59:59": (True, True),
    "2031-03-05 00:00:00": (False, True),
    "2031-03-05 07:59:59": (False, True),
    "2031-03-05 08:00:00": (False, False),
}


async def test_a_one_day_search_finds_the_whole_day_at_its_edges(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    store = orderdesk_sandbox.state.store(orderdesk_sandbox.store_id)
    at = {}
    for order, when in zip(orderdesk_sandbox.orders(), EDGES, strict=False):
        store.orders[order["id"]]["date_added"] = when  # as if placed then
        at[order["id"]] = when
    async with connect(gateway_factory()) as c:
        utc = ok(await c.call_tool("orders_list", {"search_start_date": DAY, "search_end_date": DAY}))
        local = ok(
            await c.call_tool("orders_list", {"search_start_date_local": DAY, "search_end_date_local": DAY})
        )
        timed = ok(
            await c.call_tool("orders_list", {"search_start_date": DAY, "search_end_date": f"{DAY} 07:59:59"})
        )
    assert {at[o["id"]] for o in utc["orders"]} == {w for w, (u, _) in EDGES.items() if u}
    assert {at[o["id"]] for o in local["orders"]} == {w for w, (_, lo) in EDGES.items() if lo}
    # a time given is taken as given
    assert {at[o["id"]] for o in timed["orders"]} == {"2031-03-04 00:00:00", "2031-03-04 07:59:59"}
    sent = [r.query for r in orderdesk_sandbox.requests(method="GET", path_prefix="/orders")]
    assert {"search_start_date": DAY, "search_end_date": f"{DAY} 23:59:59"}.items() <= sent[0].items()
    assert sent[1]["search_end_date_local"] == f"{DAY} 23:59:59"


async def test_customer_and_shipping_filters_reach_orderdesk(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    target = orderdesk_sandbox.orders()[3]
    async with connect(gateway_factory()) as c:
        by_shipping = ok(
            await c.call_tool(
                "orders_list",
                {"shipping": {"last_name": target["shipping"]["last_name"]}, "fields": ["id", "shipping"]},
            )
        )
        by_customer = ok(
            await c.call_tool("orders_list", {"customer": {"first_name": target["customer"]["first_name"]}})
        )
        typo = await c.call_tool("orders_list", {"customer": {"lastname": "Doe"}})
    assert target["id"] in {o["id"] for o in by_shipping["orders"]}
    assert all(o["shipping"]["last_name"] == target["shipping"]["last_name"] for o in by_shipping["orders"])
    assert target["id"] in {o["id"] for o in by_customer["orders"]}
    err = error_of(typo)
    assert err is not None and err["code"] == "VALIDATION" and "'last_name'" in err["message"]
    queries = [r.query for r in orderdesk_sandbox.requests(method="GET", path_prefix="/orders")]
    assert {"shipping_last_name": target["shipping"]["last_name"]}.items() <= queries[0].items()
    assert len(queries) == 2  # the typo was refused before any request


# --- SKUs with commas -------------------------------------------------------------------------------


async def test_skus_with_commas_are_found_and_never_reported_missing(
    gateway_factory: Any, orderdesk_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = gateway_factory()
    await gw.startup()
    try:
        client = runtime(gw).client("demo")
        for code in ("RED,XL", "RED", "XL", "PLAIN-1"):
            await client.create_inventory_item({"name": f"Shirt {code}", "code": code, "price": 10})
        orderdesk_sandbox.clear_requests()
        found = await client.find_inventory_by_codes(["RED,XL", "PLAIN-1", "NOPE"])
        asked = [r.query.get("code") for r in orderdesk_sandbox.requests(path_prefix="/inventory-items")]
        monkeypatch.setattr(od_client, "MAX_PAGE_SIZE", 2)  # an inventory larger than what is scanned
        monkeypatch.setattr(od_client, "MAX_SCAN_PAGES", 1)
        with pytest.raises(Exception) as refused:
            await client.find_inventory_by_codes(["ZZZ,1"])
    finally:
        await gw.shutdown()
    assert set(found) == {"RED,XL", "PLAIN-1"} and found["RED,XL"]["name"] == "Shirt RED,XL"
    assert "RED,XL" not in asked  # never sent as a filter OrderDesk would split
    assert getattr(refused.value, "code", None) == "VALIDATION" and "'ZZZ,1'" in str(refused.value)
    monkeypatch.undo()
    async with connect(gateway_factory()) as c:
        listed = ok(await c.call_tool("inventory_list", {"code": ["RED,XL"]}))
        plain = ok(await c.call_tool("inventory_list", {"code": ["RED", "XL"]}))
    assert [i["code"] for i in listed["items"]] == ["RED,XL"]
    assert sorted(i["code"] for i in plain["items"]) == ["RED", "XL"]


# --- errors that point only to visible tools ---------------------------------------------------------


async def test_hints_name_only_the_tools_a_caller_sees(gateway_factory: Any) -> None:
    async with connect(gateway_factory(overrides={"gateway.toolsets": ["orders"]})) as c:
        moved = await c.call_tool("orders_move", {"order_ids": ["200001"], "folder_id": 999})
        missing = await c.call_tool("orders_get", {"order_id": "999999"})
    async with connect(gateway_factory(overrides={"gateway.toolsets": ["bulk"]})) as c:
        bulk_folder = await c.call_tool(
            "orders_update_many", {"order_ids": ["200001"], "changes": {"folder_id": 999}}
        )
    async with connect(gateway_factory()) as c:
        full = await c.call_tool("orders_move", {"order_ids": ["200001"], "folder_id": 999})
    folder = error_of(moved)
    assert (
        folder is not None and "store_get" not in folder["hint"] and "store_get" not in moved.content[0].text
    )
    assert "Use one of the listed folders; nothing was written." == folder["hint"]
    assert "store_get" in error_of(full)["hint"]  # served: still named
    assert "orders_list" in error_of(missing)["hint"]
    bulk = error_of(bulk_folder)
    assert (
        bulk is not None and bulk["code"] == "VALIDATION" and "store_get" not in bulk_folder.content[0].text
    )


async def test_an_idempotency_key_too_short_counts_characters(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        short = await c.call_tool("orders_create", {"order": new_order(), "idempotency_key": "abc"})
    assert "at least 8 characters" in short.content[0].text and "items" not in short.content[0].text


async def test_a_missing_batch_endpoint_is_upstream_naming_it_not_a_bad_id(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="POST", path="^/batch-shipments$", status=404)
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/999999$", status=404)
    async with connect(gateway_factory()) as c:
        batch = await c.call_tool(
            "shipments_add_many", {"shipments": [{"order_id": "200001", "tracking_number": "1Z-404"}]}
        )
        one = await c.call_tool("orders_get", {"order_id": "999999"})
    text = json.dumps(batch.model_dump(mode="json"))
    assert "UPSTREAM" in text and "/batch-shipments" in text and "endpoint was not found" in text
    assert "Check the id" not in text
    assert error_of(one)["code"] == "NOT_FOUND"  # a 404 for an id is still a bad id


async def test_a_list_whose_first_record_alone_is_over_the_budget_shows_its_summary(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    oid = orderdesk_sandbox.orders()[0]["id"]
    email = orderdesk_sandbox.order(oid)["email"]
    async with connect(gateway_factory(overrides={"gateway.max_result_bytes": 4096})) as c:
        for i in range(40):
            await c.call_tool("orders_add_note", {"order_id": oid, "note": f"Note {i}: checked the stock."})
        cut = await c.call_tool(
            "orders_list", {"email": email, "include_history": True, "fields": "full", "limit": 1}
        )
    data = ok(cut)
    assert text_bytes(cut) <= 4096 and data["truncated"] is True
    assert [o["id"] for o in data["orders"]] == [oid] and set(data["orders"][0]) == set(ORDER_SUMMARY)
    assert data["note"].startswith("the first record alone is over") and "fields" in data["note"]


class _Blob(BaseModel):
    lines: list[str]


class _BigReader:
    """A plugin's read tool that does not fit its own result to the budget."""

    @hookimpl
    def gateway_register_tools(self, register: Any) -> None:
        async def blob(n: int) -> _Blob:
            """Return n lines of 100 characters. Cost: 0 requests."""
            return _Blob(lines=["x" * 100] * n)

        register(blob, name="extras.blob", read_only=True)


async def test_the_host_refuses_a_read_result_a_tool_left_over_the_budget(gateway_factory: Any) -> None:
    gw = gateway_factory(plugins=[_BigReader()], overrides={"gateway.max_result_bytes": 4096})
    async with connect(gw) as c:
        small = await c.call_tool("extras_blob", {"n": 10})
        big = await c.call_tool("extras_blob", {"n": 100})
    assert not small.is_error
    err = error_of(big)
    assert err is not None and err["code"] == "VALIDATION" and "gateway.max_result_bytes" in err["message"]
    assert len(big.content[0].text.encode()) < 4096
