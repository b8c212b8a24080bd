"""Issue 11 §7: the sandbox doesn't flatter its clients — base path, GET hygiene, both timing forms,
numeric strings, ``*_local`` date filters (each fact from the notes, see sandbox/assumptions.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import aiohttp
import pytest
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig
from odmcp_orderdesk.sandbox import assumptions as A
from odmcp_orderdesk.testing import new_order

TIMING = re.compile(r"^Execution took \d+\.\d{4} seconds$")


async def test_only_the_api_v2_base_path_answers(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order_id = sbx.orders()[0]["id"]
    root = sbx.root_url
    for url in (
        f"{root}/orders/{order_id}",  # no base path
        f"{root}/api/orders/{order_id}",  # the old v1 prefix
        f"{sbx.base_url}/orders/{order_id}/",  # trailing slash
        f"{sbx.base_url}/orders/",
        f"{sbx.base_url}/",
        sbx.base_url,
    ):
        status, body, _ = await call(http, "GET", url)
        assert (status, body["status"], body["message"]) == (404, "error", A.MSG_ROUTE_NOT_FOUND), url
    status, body, _ = await call(http, "PUT", f"{root}/orders/{order_id}", json=sbx.orders()[0])
    assert status == 404
    status, _, _ = await call(http, "GET", f"{sbx.base_url}/orders/{order_id}")
    assert status == 200
    assert [r.path for r in sbx.requests(status=404)][:2] == [
        f"/orders/{order_id}",
        f"/api/orders/{order_id}",
    ]


async def test_a_get_with_a_body_or_content_type_is_refused(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = f"{sbx.base_url}/orders/{sbx.orders()[0]['id']}"
    refused = [
        {"headers": {"Content-Type": "application/json"}},
        {"data": b'{"a": 1}'},
        {"json": {}},
    ]
    for kwargs in refused:
        status, body, _ = await call(http, "GET", url, **kwargs)
        assert status == A.STATUS_GET_WITH_BODY and body["message"] == A.MSG_GET_WITH_BODY, kwargs
    status, _, _ = await call(http, "GET", url)
    assert status == 200
    sbx.config.refuse_get_body = False  # the switch, for clients under test that can't comply
    status, _, _ = await call(http, "GET", url, headers={"Content-Type": "application/json"})
    assert status == 200


async def test_timing_comes_in_both_documented_forms(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order_id = sbx.orders()[0]["id"]
    _, one, _ = await call(http, "GET", f"{sbx.base_url}/orders/{order_id}")
    _, many, _ = await call(http, "GET", sbx.base_url + "/orders", params={"limit": "1"})
    for body in (one, many):  # as the docs' examples for these two endpoints show it
        assert TIMING.match(body["message"]) and "execution_time" not in body
    _, store, _ = await call(http, "GET", sbx.base_url + "/store")
    assert "message" not in store and re.match(r"^\d+\.\d{4} seconds$", store["execution_time"])
    item = {"name": "X", "price": 1}
    _, added, _ = await call(http, "POST", f"{sbx.base_url}/orders/{order_id}/order-items", json=item)
    assert added["message"] == "Order Item Added" and "execution_time" in added  # a message of its own
    _, missing, _ = await call(http, "GET", f"{sbx.base_url}/orders/999999")
    assert missing["message"] == "Order Not Found" and "execution_time" in missing

    sbx.config.timing_style = "message"
    _, store, _ = await call(http, "GET", sbx.base_url + "/store")
    assert TIMING.match(store["message"]) and "execution_time" not in store
    sbx.config.timing_style = "execution_time"
    _, one, _ = await call(http, "GET", f"{sbx.base_url}/orders/{order_id}")
    assert "message" not in one and "execution_time" in one


def _item_types(order: dict) -> set[tuple[type, type]]:  # type: ignore[type-arg]
    return {(type(i["price"]), type(i["quantity"])) for i in order["order_items"]}


async def test_some_orders_carry_prices_and_quantities_as_strings(sbx: Sandbox) -> None:
    """Deterministic per order id and seed: the default config turns it on for some orders only."""
    orders = sbx.orders()
    stringy = [o["id"] for o in orders if _item_types(o) == {(str, str)}]
    numeric = [o["id"] for o in orders if _item_types(o) <= {(int, int), (float, int)}]
    assert stringy and numeric and len(stringy) + len(numeric) == len(orders)
    async with Sandbox(SandboxConfig(seed_anchor="2025-06-30 12:00:00")) as again:
        assert [o["id"] for o in again.orders() if _item_types(o) == {(str, str)}] == stringy
    order = next(o for o in orders if o["id"] == stringy[0])
    quantities = sum(int(i["quantity"]) for i in order["order_items"])
    assert isinstance(order["quantity_total"], int) and order["quantity_total"] == quantities


@pytest.mark.parametrize("share", [0.0, 1.0])
async def test_string_numbers_on_every_write_path(share: float) -> None:
    config = SandboxConfig(seed_orders=0, rate_limit_enabled=False, string_numbers=share)
    async with Sandbox(config) as sb, aiohttp.ClientSession(headers=sb.headers()) as http:
        _, created, _ = await call(http, "POST", sb.base_url + "/orders", json=new_order())
        order = created["order"]
        url = f"{sb.base_url}/orders/{order['id']}"
        _, put, _ = await call(http, "PUT", url, json={**order, "email": "x@example.com"})
        await call(http, "POST", url + "/order-items", json={"name": "More", "price": 2, "quantity": 4})
        _, listed, _ = await call(http, "GET", url + "/order-items")
    expected = {(str, str)} if share else {(int, int), (float, int)}
    for o in (order, put["order"], {"order_items": listed["order_items"]}):
        assert _item_types(o) <= expected and _item_types(o)
    assert put["order"]["product_total"] == 12.5 * 2 + 3  # totals stay numbers, computed from strings
    assert listed["order_items"][-1]["quantity"] == ("4" if share else 4)


async def test_local_date_filters_use_the_store_time_zone(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    """search_*_date_local: the order date in the store's local time (settings.timezone,
    America/Los_Angeles: UTC-7 in summer); the plain filters are UTC."""
    _, store, _ = await call(http, "GET", sbx.base_url + "/store")
    assert store["store"]["settings"]["timezone"] == "America/Los_Angeles"
    orders = sorted(sbx.orders(), key=lambda o: o["date_added"])
    pivot = next(o for o in orders if o["date_added"] > "2025-06-01")  # summer time
    utc = datetime.strptime(pivot["date_added"], "%Y-%m-%d %H:%M:%S")
    local = (utc - timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")

    async def ids(**params: str) -> list[str]:
        _, body, _ = await call(http, "GET", sbx.base_url + "/orders", params={**params, "limit": "500"})
        return sorted(o["id"] for o in body["orders"])

    later = sorted(o["id"] for o in orders if o["date_added"] >= pivot["date_added"])
    assert (
        await ids(search_start_date_local=local) == later == await ids(search_start_date=pivot["date_added"])
    )
    assert pivot["id"] not in await ids(search_end_date=local)  # the same text read as UTC: 7 h earlier
    earlier = sorted(o["id"] for o in orders if o["date_added"] <= pivot["date_added"])
    assert await ids(search_end_date_local=local) == earlier
    iso = utc.strftime("%Y-%m-%dT%H:%M:%SZ")  # an explicit offset wins over the store's zone
    assert await ids(search_start_date_local=iso) == later
    status, body, _ = await call(
        http, "GET", sbx.base_url + "/orders", params={"search_end_date_local": "soon"}
    )
    assert status == 400 and body["message"] == A.MSG_BAD_DATE.format(field="search_end_date_local")
