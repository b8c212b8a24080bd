"""``GET /orders`` filters, sorting and pagination."""

from __future__ import annotations

import aiohttp
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox
from odmcp_orderdesk.testing import new_order


async def _list(http: aiohttp.ClientSession, sbx: Sandbox, **params: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    status, body, _ = await call(http, "GET", sbx.base_url + "/orders", params=params)
    return status, body


async def test_pagination_defaults_limits_and_envelope(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body = await _list(http, sbx)
    assert status == 200
    assert (body["total_records"], body["records_returned"], body["offset"], body["limit"]) == (36, 36, 0, 50)
    seen = []
    for offset in range(0, 40, 10):
        _, page = await _list(http, sbx, limit="10", offset=str(offset))
        assert page["limit"] == 10 and page["offset"] == offset and page["total_records"] == 36
        seen += [o["id"] for o in page["orders"]]
    assert len(seen) == 36 == len(set(seen))
    assert (await _list(http, sbx, limit="500"))[0] == 200
    status, body = await _list(http, sbx, limit="501")
    assert status == 400 and body["status"] == "error"
    assert (await _list(http, sbx, limit="abc"))[0] == 400


async def test_sorting(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    _, body = await _list(http, sbx)
    added = [o["date_added"] for o in body["orders"]]
    assert added == sorted(added, reverse=True)
    _, body = await _list(http, sbx, order="asc")
    assert [o["date_added"] for o in body["orders"]] == sorted(added)
    _, body = await _list(http, sbx, order_by="order_total", order="ASC")
    totals = [o["order_total"] for o in body["orders"]]
    assert totals == sorted(totals)
    _, body = await _list(http, sbx, order_by="shipping_last_name", order="asc")
    names = [o["shipping"]["last_name"].lower() for o in body["orders"]]
    assert names == sorted(names)
    _, body = await _list(http, sbx, order_by="date_modified")
    updated = [o["date_updated"] for o in body["orders"]]
    assert updated == sorted(updated, reverse=True)


async def test_field_filters(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    orders = sbx.orders()
    target = orders[5]
    _, body = await _list(http, sbx, source_id=target["source_id"], source_name=target["source_name"])
    assert [o["id"] for o in body["orders"]] == [target["id"]]
    _, body = await _list(http, sbx, email=target["email"].upper())
    assert target["id"] in {o["id"] for o in body["orders"]}
    assert all(o["email"] == target["email"] for o in body["orders"])
    _, body = await _list(http, sbx, customer_id=target["customer_id"])
    assert [o["id"] for o in body["orders"]] == [target["id"]]
    _, body = await _list(http, sbx, shipping_last_name=target["shipping"]["last_name"].lower())
    assert body["total_records"] == sum(
        o["shipping"]["last_name"] == target["shipping"]["last_name"] for o in orders
    )
    _, body = await _list(http, sbx, customer_first_name=target["customer"]["first_name"])
    assert target["id"] in {o["id"] for o in body["orders"]}

    by_folder = {f: sum(o["folder_id"] == f for o in orders) for f in (1, 2, 3, 4)}
    _, body = await _list(http, sbx, folder_id="2,3")
    assert body["total_records"] == by_folder[2] + by_folder[3]
    _, body = await _list(http, sbx, folder_name="Closed")
    assert body["total_records"] == by_folder[3] and by_folder[3] > 0
    _, body = await _list(http, sbx, folder_name="No Such Folder")
    assert body["total_records"] == 0 and body["orders"] == []


async def test_date_filters_accept_several_formats(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    orders = sbx.orders()
    added = sorted(o["date_added"] for o in orders)
    pivot = added[20]
    expected = sum(o["date_added"] >= pivot for o in orders)
    iso = pivot.replace(" ", "T") + ".000Z"
    for value in (pivot, iso):
        _, body = await _list(http, sbx, search_start_date=value)
        assert body["total_records"] == expected
    day = pivot[:10]
    _, body = await _list(http, sbx, search_end_date=day)  # a bare date is midnight
    assert body["total_records"] == sum(o["date_added"] < day for o in orders)
    _, body = await _list(http, sbx, search_start_date=added[3], search_end_date=added[6])
    assert body["total_records"] == 4
    status, body = await _list(http, sbx, search_start_date="yesterday-ish")
    assert status == 400

    _, created, _ = await call(http, "POST", sbx.base_url + "/orders", json=new_order(source_id="MOD-1"))
    touched = sbx.touch_order("1001", orders[0]["id"])
    assert touched["date_updated"] > orders[0]["date_updated"]
    _, body = await _list(http, sbx, modified_start_date=created["order"]["date_updated"])
    assert {o["id"] for o in body["orders"]} == {created["order"]["id"], touched["id"]}
    _, body = await _list(http, sbx, modified_end_date="2000-01-01")
    assert body["total_records"] == 0
