"""Inventory items: CRUD, full-replacement PUT, code filter, paging, batch update."""

from __future__ import annotations

import aiohttp
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox


async def test_inventory_list_filters_and_paging(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    url = sbx.base_url + "/inventory-items"
    status, resp, _ = await call(http, "GET", url)
    assert status == 200 and resp["total_records"] == "20" and resp["records_returned"] == 20
    item = resp["inventory_items"][0]
    assert isinstance(item["id"], int) and item["id"] == 2501
    expected = {"name", "code", "price", "cost", "weight", "stock", "update_source", "location", "metadata"}
    assert set(item) >= expected | {"date_added", "date_updated"}
    codes = [i["code"] for i in resp["inventory_items"][:3]]
    _, resp, _ = await call(http, "GET", url, params={"code": f"{codes[0]},{codes[2]},nope"})
    assert [i["code"] for i in resp["inventory_items"]] == [codes[0], codes[2]] and resp[
        "total_records"
    ] == "2"
    _, resp, _ = await call(http, "GET", url, params={"limit": "5", "offset": "18"})
    assert resp["records_returned"] == 2 and resp["total_records"] == "20"
    status, _, _ = await call(http, "GET", url, params={"limit": "501"})
    assert status == 400


async def test_inventory_crud_and_full_replacement(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    url = sbx.base_url + "/inventory-items"
    body = {"name": "Three Wolves T-Shirt", "code": "3wolf-XX", "price": 11.0, "stock": 52, "location": "A1"}
    status, resp, _ = await call(http, "POST", url, json=body)
    assert status == 200 and resp["message"] == "Inventory Item Added" and "inventory_item" not in resp
    status, resp, _ = await call(http, "POST", url, json=body)
    assert status == 400 and resp["status"] == "error"
    status, resp, _ = await call(http, "POST", url, json={"name": "No code"})
    assert status == 400
    _, resp, _ = await call(http, "GET", url, params={"code": "3wolf-XX"})
    item = resp["inventory_items"][0]
    status, resp, _ = await call(http, "GET", f"{url}/{item['id']}")
    assert resp["records_returned"] == 1 and resp["inventory_item"] == item

    status, resp, _ = await call(
        http, "PUT", f"{url}/{item['id']}", json={"name": "Wolves", "code": "3wolf-XX"}
    )
    assert resp["message"] == "Inventory Item Updated"
    _, resp, _ = await call(http, "GET", f"{url}/{item['id']}")
    replaced = resp["inventory_item"]
    assert replaced["name"] == "Wolves" and replaced["stock"] == 0 and replaced["location"] == ""
    assert replaced["price"] == 0 and replaced["date_added"] == item["date_added"]

    status, resp, _ = await call(http, "DELETE", f"{url}/{item['id']}")
    assert resp["message"] == f"Inventory Item {item['id']} Deleted"
    status, resp, _ = await call(http, "GET", f"{url}/{item['id']}")
    assert status == 404 and resp["status"] == "error"


async def test_batch_inventory_update(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    store = sbx.state.store("1001")
    a, b = store.inventory[2501], store.inventory[2502]
    batch = [
        {"id": a["id"], "name": a["name"], "code": a["code"], "price": a["price"], "stock": 7},
        {"id": b["id"], "name": b["name"], "code": a["code"], "price": 1, "stock": 1},  # code clash
        {"name": "Brand New", "code": "NEW-1", "price": 2, "stock": 3},
    ]
    status, resp, _ = await call(http, "PUT", sbx.base_url + "/batch-inventory-items", json=batch)
    assert status == 200 and resp["status"] == "success"
    assert [r["status"] for r in resp["results"]] == ["success", "error", "success"]
    assert store.inventory[2501]["stock"] == 7 and store.inventory[2502]["code"] == b["code"]
    assert "NEW-1" in store.inventory_codes
    status, _, _ = await call(http, "PUT", sbx.base_url + "/batch-inventory-items", json={"items": batch})
    assert status == 400
