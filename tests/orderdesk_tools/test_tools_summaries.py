"""Issue 14: lists return summaries by default, ``fields`` selects ('full', or names, checked before any
request), gets stay full; a list's summaries are built once per cached page, on both cache backends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.testing import connect
from odmcp_orderdesk import summary as summaries
from odmcp_orderdesk.tools import orders as order_tools

REDIS = {"cache.backend": "redis", "cache.redis_url": "redis://127.0.0.1:6379/0", "cache.op_timeout": 2.0}
BACKENDS = pytest.mark.parametrize("cache_overrides", [{}, REDIS], ids=["memory", "redis"])
ORDER_KEYS = set(summaries.ORDER_SUMMARY)


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    data: dict[str, Any] = result.structured_content
    return data


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def expected_summary(order: dict[str, Any], folders: dict[str, str]) -> dict[str, Any]:
    customer = order.get("customer") or order.get("shipping") or {}
    name = f"{customer.get('first_name', '')} {customer.get('last_name', '')}".strip()
    return {
        "id": order["id"],
        "source_id": order["source_id"],
        "date_added": order["date_added"],
        "folder_name": folders[str(order["folder_id"])],
        "customer_name": name or customer.get("company"),
        "email": order["email"],
        "item_count": len(order["order_items"]),
        "order_total": order["order_total"],
        "tracked": any(s.get("tracking_number") for s in order.get("order_shipments") or []),
    }


async def test_orders_list_summarises_each_order_with_what_an_agent_needs(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        folders = ok(await c.call_tool("store_get", {}))["store"]["folders"]
        page = ok(await c.call_tool("orders_list", {"limit": 50}))
        full = ok(await c.call_tool("orders_list", {"limit": 50, "fields": "full"}))
    upstream = {o["id"]: o for o in orderdesk_sandbox.orders()}
    assert page["total_records"] == len(upstream) and page["next_offset"] is None
    assert [o["id"] for o in page["orders"]] == [o["id"] for o in full["orders"]]
    for got in page["orders"]:
        assert got == expected_summary(upstream[got["id"]], folders)
    assert any(o["tracked"] for o in page["orders"]) and not all(o["tracked"] for o in page["orders"])
    # what it costs the model: at most 100 tokens (400 JSON bytes) an order, 5x less than in full
    per_order = size(page["orders"]) / len(page["orders"])
    assert per_order <= 400 and size(full["orders"]) >= 5 * size(page["orders"]), per_order
    assert all(set(upstream[o["id"]]) <= set(o) for o in full["orders"])  # every field OrderDesk has


async def test_fields_selects_top_level_fields_from_the_order_or_its_summary(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        picked = ok(await c.call_tool("orders_list", {"limit": 5, "fields": ["id", "shipping", "tracked"]}))
        got = ok(await c.call_tool("orders_get", {"order_id": "200001", "fields": ["email", "item_count"]}))
        summary = ok(await c.call_tool("orders_get", {"order_id": "200001", "fields": "summary"}))
        whole = ok(await c.call_tool("orders_get", {"order_id": "200001"}))
    order = orderdesk_sandbox.order("200001")
    for o in picked["orders"]:
        assert set(o) == {"id", "shipping", "tracked"} and isinstance(o["shipping"], dict)
    assert got["order"] == {"email": order["email"], "item_count": len(order["order_items"])}
    assert set(summary["order"]) == ORDER_KEYS and summary["order"]["id"] == "200001"
    assert set(order) <= set(whole["order"])  # a get stays full by default


async def test_an_unknown_field_is_refused_with_a_suggestion_before_any_request(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        misspelt = await c.call_tool("orders_list", {"fields": ["id", "emial"]})
        empty = await c.call_tool("orders_list", {"fields": []})
        wrong_type = await c.call_tool("orders_list", {"fields": 5})
        on_get = await c.call_tool("inventory_get", {"item_id": "2501", "fields": ["stok"]})
        on_shipments = await c.call_tool(
            "shipments_list", {"order_id": "200001", "fields": ["trackingnumber"]}
        )
    assert misspelt.content[0].text.startswith(
        "VALIDATION: argument 'fields': order has no field 'emial'; did you mean 'email'? — Use summary "
        "fields (id, source_id, date_added, "
    )
    assert error_of(misspelt)["details"] == {"field": "fields"}
    assert empty.content[0].text.startswith("VALIDATION: argument 'fields' is an empty list — ")
    assert wrong_type.content[0].text.startswith(
        "VALIDATION: argument 'fields' should be 'summary' or 'full' or an array, got 5 — "
    )
    assert "did you mean 'stock'?" in on_get.content[0].text
    assert "did you mean 'tracking_number'?" in on_shipments.content[0].text
    assert orderdesk_sandbox.requests() == []


async def test_history_comes_with_the_summary_when_asked(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        await c.call_tool("orders_add_note", {"order_id": "200003", "note": "summary note"})
        listed = ok(await c.call_tool("orders_list", {"limit": 50, "include_history": True}))
    mine = next(o for o in listed["orders"] if o["id"] == "200003")
    assert set(mine) == ORDER_KEYS | {"order_history"}
    assert "summary note" in [h["note"] for h in mine["order_history"]]


async def test_inventory_and_shipment_lists_summarise_too(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    shipped = next(o for o in orderdesk_sandbox.orders() if o.get("order_shipments"))
    async with connect(gateway_factory()) as c:
        items = ok(await c.call_tool("inventory_list", {"limit": 5}))
        full_items = ok(await c.call_tool("inventory_list", {"limit": 5, "fields": "full"}))
        one = ok(
            await c.call_tool("inventory_get", {"item_id": str(items["items"][0]["id"]), "fields": ["code"]})
        )
        shipments = ok(await c.call_tool("shipments_list", {"order_id": shipped["id"]}))
        full_shipments = ok(
            await c.call_tool("shipments_list", {"order_id": shipped["id"], "fields": "full"})
        )
    assert [set(i) for i in items["items"]] == [set(summaries.INVENTORY_SUMMARY)] * 5
    assert items["next_offset"] == 5 and items["total_records"] >= 5
    for short, whole in zip(items["items"], full_items["items"], strict=True):
        assert short == {k: whole[k] for k in summaries.INVENTORY_SUMMARY}
    assert one["item"] == {"code": items["items"][0]["code"]}
    assert [s["tracking_number"] for s in shipments["shipments"]] == [
        s["tracking_number"] for s in shipped["order_shipments"]
    ]
    assert all(set(s) == set(summaries.SHIPMENT_SUMMARY) for s in shipments["shipments"])
    assert full_shipments["shipments"] == shipped["order_shipments"]


@pytest.mark.sandbox(rate_limit_enabled=False)
async def test_a_summary_says_folder_name_null_when_the_folders_cannot_be_read(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/store$", status=500)
    async with connect(gateway_factory(overrides={"orderdesk": {"max_retries": 0}})) as c:
        page = ok(await c.call_tool("orders_list", {"limit": 3}))
    assert [o["folder_name"] for o in page["orders"]] == [None, None, None]
    assert all(o["folder_id"] for o in page["orders"])  # the folder is never lost


@BACKENDS
async def test_summaries_are_built_once_per_cached_page(
    gateway_factory: Any, orderdesk_sandbox: Any, cache_overrides: dict[str, Any], monkeypatch: Any
) -> None:
    built: list[str] = []
    original = order_tools.order_summary

    def counting(order: dict[str, Any], folders: dict[str, str]) -> dict[str, Any]:
        built.append(str(order.get("id")))
        return original(order, folders)

    monkeypatch.setattr(order_tools, "order_summary", counting)
    async with connect(gateway_factory(overrides=cache_overrides)) as c:
        first = ok(await c.call_tool("orders_list", {"limit": 10}))
        again = ok(await c.call_tool("orders_list", {"limit": 10}))
        picked = ok(await c.call_tool("orders_list", {"limit": 10, "fields": ["id", "customer_name"]}))
        full = ok(await c.call_tool("orders_list", {"limit": 10, "fields": "full"}))
    assert len(built) == 10  # the first call's load; the cached page carries them for the others
    assert again == first and [o["customer_name"] for o in picked["orders"]] == [
        o["customer_name"] for o in first["orders"]
    ]
    assert "customer_name" not in full["orders"][0]
    assert len(orderdesk_sandbox.requests(method="GET", path_regex=r"^/orders$")) == 1
