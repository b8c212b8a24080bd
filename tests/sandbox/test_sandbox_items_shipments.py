"""Order-item and shipment endpoints, including duplicate tracking and batch shipments."""

from __future__ import annotations

import aiohttp
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox
from odmcp_orderdesk.testing import new_order


async def _created(sbx: Sandbox, http: aiohttp.ClientSession, source_id: str) -> dict:  # type: ignore[type-arg]
    _, resp, _ = await call(http, "POST", sbx.base_url + "/orders", json=new_order(source_id=source_id))
    return resp["order"]  # type: ignore[no-any-return]


async def test_order_item_crud_recomputes_totals(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order = await _created(sbx, http, "ITEMS-1")
    url = f"{sbx.base_url}/orders/{order['id']}/order-items"
    status, resp, _ = await call(http, "GET", url)
    assert status == 200 and resp["total_records"] == 2 and len(resp["order_items"]) == 2

    body = {"name": "Second Widget", "code": "widget2", "price": 12.99, "variation_list": {"Size": "Large"}}
    status, resp, _ = await call(http, "POST", url, json=body)
    assert status == 200 and resp["status"] == "success" and resp["message"] == "Order Item Added"
    assert set(resp) == {"status", "message", "execution_time"}
    after_add = sbx.order(order["id"])
    assert after_add is not None
    new_item = after_add["order_items"][-1]
    assert isinstance(new_item["id"], str) and new_item["quantity"] == 1
    assert after_add["product_total"] == 28 + 12.99 and after_add["date_updated"] >= order["date_updated"]

    status, resp, _ = await call(http, "GET", f"{url}/{new_item['id']}")
    assert resp["order_item"] == new_item
    status, resp, _ = await call(http, "PUT", f"{url}/{new_item['id']}", json={"name": "Renamed", "price": 1})
    assert resp["message"] == "Order Item Updated"
    item = sbx.order(order["id"])["order_items"][-1]  # type: ignore[index]
    assert item["name"] == "Renamed" and item["code"] == "" and item["variation_list"] == []  # full replace
    status, resp, _ = await call(http, "DELETE", f"{url}/{new_item['id']}")
    assert status == 200 and resp["message"] == f"Order Item {new_item['id']} Deleted"
    assert sbx.order(order["id"])["product_total"] == 28  # type: ignore[index]
    status, resp, _ = await call(http, "GET", f"{url}/{new_item['id']}")
    assert status == 404 and resp["status"] == "error"


async def test_shipments_crud_duplicate_tracking_and_url_guess(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    order = await _created(sbx, http, "SHIP-1")
    url = f"{sbx.base_url}/orders/{order['id']}/shipments"
    body = {
        "tracking_number": "1Z2398479234",
        "carrier_code": "UPS",
        "shipment_method": "Ground",
        "weight": 3.55,
    }
    status, resp, _ = await call(http, "POST", url, json=body)
    assert status == 200 and resp["message"] == "Shipment Added"
    status, resp, _ = await call(http, "POST", url, json=body)
    assert status == 400 and resp["status"] == "error" and resp["message"] == "Shipment Not Added"
    await call(http, "POST", url, json={"tracking_number": "9400100000000000000000", "carrier_code": "USPS"})

    _, resp, _ = await call(http, "GET", url)
    assert resp["total_records"] == 2
    ups, usps = resp["shipments"]
    assert ups["tracking_url"].endswith("trackNums=1Z2398479234") and "usps.com" in usps["tracking_url"]
    assert ups["weight"] == "3.55" and ups["cost"] == "" and ups["order_id"] == order["id"]
    assert ups["store_id"] == "1001" and len(ups["date_shipped"]) == 10 and len(ups["date_added"]) == 19
    assert isinstance(ups["id"], str)

    _, one, _ = await call(http, "GET", f"{url}/{ups['id']}")
    assert one["shipment"] == ups
    status, resp, _ = await call(http, "PUT", f"{url}/{ups['id']}", json={**body, "tracking_number": "1ZNEW"})
    assert status == 200 and resp["message"] == "Shipment Updated"
    status, resp, _ = await call(http, "PUT", f"{url}/{usps['id']}", json={"tracking_number": "1ZNEW"})
    assert status == 400 and resp["message"] == "Shipment Not Added"
    status, resp, _ = await call(http, "DELETE", f"{url}/{usps['id']}")
    assert resp["message"] == f"Shipment {usps['id']} Deleted"
    final = sbx.order(order["id"])
    assert final is not None and [s["tracking_number"] for s in final["order_shipments"]] == ["1ZNEW"]
    status, _, _ = await call(http, "GET", f"{url}/{usps['id']}")
    assert status == 404


async def test_batch_shipments_reports_per_entry_results(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order = await _created(sbx, http, "BATCH-1")
    batch = [
        {"order_id": int(order["id"]), "tracking_number": "YT1", "carrier_code": "Yunexpress"},
        {"order_id": order["id"], "tracking_number": "YT1"},
        {"order_id": 1, "tracking_number": "YT2"},
        {"source_id": "BATCH-1", "source_name": "Order Desk", "tracking_number": "YT3"},
    ]
    status, resp, _ = await call(http, "POST", sbx.base_url + "/batch-shipments", json=batch)
    assert status == 200 and resp["status"] == "success"
    results = resp["results"]
    assert [r["status"] for r in results] == ["success", "error", "error", "success"]
    assert results[0]["order_id"] == int(order["id"]) and results[0]["message"] == "Shipment Added"
    assert results[1]["message"] == "Shipment Not Added" and results[2]["message"] == "Order Not Found"
    stored = sbx.order(order["id"])
    assert stored is not None and [s["tracking_number"] for s in stored["order_shipments"]] == ["YT1", "YT3"]
    status, resp, _ = await call(http, "POST", sbx.base_url + "/batch-shipments", json={"shipments": batch})
    assert status == 400
