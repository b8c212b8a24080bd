"""Order create / full-replacement PUT / delete / history / move, and the test-only strict mode."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig
from odmcp_orderdesk.sandbox.state import HISTORY_CAP
from odmcp_orderdesk.testing import new_order


async def test_create_fills_defaults_and_computes_totals(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    body = new_order(discount_list=[{"name": "Promo", "code": "P", "amount": "2.00"}], source_id="")
    body["order_items"][0]["total"] = 999  # unknown/read-only fields are ignored
    status, resp, _ = await call(http, "POST", sbx.base_url + "/orders", json=body)
    assert status == 200 and resp["status"] == "success"
    order = resp["order"]
    assert isinstance(order["id"], str) and order["source_id"] == order["id"]
    assert order["source_name"] == "Order Desk" and order["payment_status"] == "Captured"
    assert order["folder_id"] == 1
    assert order["customer"]["first_name"] == "Jane" and "address3" not in order["customer"]
    assert order["quantity_total"] == 3 and order["weight_total"] == 1
    assert order["product_total"] == 28 and order["discount_total"] == 2
    assert order["order_total"] == 28 + 5 + 1.5 - 2 == order["processor_balance"]
    assert order["checkout_data"] == [] and order["order_metadata"] == []
    assert [i["variation_list"] for i in order["order_items"]] == [[], {"Size": "L"}]
    assert all(isinstance(i["id"], str) for i in order["order_items"])
    assert order["email_count"] == "1" and order["order_shipments"] == []
    assert order["date_added"] == order["date_updated"]
    stored = sbx.order(order["id"])
    assert stored == order


async def test_create_copies_shipping_from_customer_and_accepts_company(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = new_order(source_id="T-2", customer={"company": "Acme", "city": "Austin"})
    del body["shipping"]
    status, resp, _ = await call(http, "POST", sbx.base_url + "/orders", json=body)
    assert status == 200
    assert resp["order"]["shipping"]["company"] == "Acme" and resp["order"]["shipping"]["address3"] == ""


async def test_create_validation_errors(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    url = sbx.base_url + "/orders"
    status, resp, _ = await call(http, "POST", url, json=new_order(order_items=[]))
    assert status == 400 and resp["status"] == "error" and "order item" in resp["message"]
    nameless = new_order(shipping={"first_name": "Only", "city": "X"})
    status, resp, _ = await call(http, "POST", url, json=nameless)
    assert status == 400 and "name" in resp["message"]
    status, resp, _ = await call(
        http, "POST", url, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and resp["message"] == "Invalid JSON body"
    status, resp, _ = await call(http, "POST", url, json=new_order(checkout_data={"x": "y" * 3600}))
    assert status == 400
    assert len(sbx.orders()) == 36


async def test_duplicate_source_id_is_rejected_naming_the_existing_order(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sbx.base_url + "/orders"
    _, first, _ = await call(http, "POST", url, json=new_order(source_id="DUP-1"))
    status, resp, _ = await call(http, "POST", url, json=new_order(source_id="DUP-1"))
    assert status == 400 and resp["status"] == "error"
    assert first["order"]["id"] in resp["message"]
    status, _, _ = await call(http, "POST", url, json=new_order(source_id="DUP-1", source_name="Shopify"))
    assert status == 200


async def test_put_is_a_full_replacement(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    _, created, _ = await call(http, "POST", sbx.base_url + "/orders", json=new_order(source_id="PUT-1"))
    order = created["order"]
    await call(
        http, "POST", f"{sbx.base_url}/orders/{order['id']}/shipments", json={"tracking_number": "1Z999"}
    )
    _, fetched, _ = await call(http, "GET", f"{sbx.base_url}/orders/{order['id']}")
    current = fetched["order"]
    body = copy.deepcopy(current)
    del body["email"]  # omitted -> blanked
    del body["shipping_total"]  # omitted number -> 0
    body["shipping"] = {"first_name": "New", "last_name": "Name"}  # nested object replaced wholesale
    keep, _gone = body["order_items"]
    keep["quantity"] = 5  # update by id
    body["order_items"] = [keep, {"name": "Added", "price": 1}]  # add without id, drop the other
    body["order_shipments"] = []  # ignored
    body["folder_id"] = 3  # ignored: the order keeps its folder
    body["order_total"] = 12345  # read-only, recomputed
    body["checkout_data"] = {"Gift": "yes"}
    status, resp, _ = await call(http, "PUT", f"{sbx.base_url}/orders/{order['id']}", json=body)
    assert status == 200
    new = resp["order"]
    assert new["email"] == "" and new["shipping_total"] == 0
    assert new["shipping"]["first_name"] == "New" and new["shipping"]["address1"] == ""
    assert new["customer"] == current["customer"]
    assert new["order_items"][0]["id"] == keep["id"]
    assert len(new["order_items"]) == 2 and new["order_items"][1]["id"] not in {
        i["id"] for i in current["order_items"]
    }
    assert new["order_items"][0]["quantity"] == 5 and new["quantity_total"] == 6
    assert new["product_total"] == 12.5 * 5 + 1 and new["order_total"] == 62.5 + 1 + 1.5
    assert len(new["order_shipments"]) == 1 and new["folder_id"] == 1
    assert new["checkout_data"] == {"Gift": "yes"}
    assert new["date_added"] == current["date_added"] and new["date_updated"] >= current["date_updated"]
    status, again, _ = await call(http, "PUT", f"{sbx.base_url}/orders/{order['id']}", json=new)
    assert sbx.order(order["id"]) == again["order"]


async def test_date_updated_is_the_wall_clock_second_like_orderdesk(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    """Six PUTs in a row are stamped with the current second each, never pushed ahead of the clock, so
    writes in one second share a date_updated (a client can't detect a change by date_updated alone)."""
    order = sbx.orders()[0]
    url = f"{sbx.base_url}/orders/{order['id']}"
    before = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    stamps = []
    for n in range(6):
        _, resp, _ = await call(http, "PUT", url, json={**order, "email": f"w{n}@example.com"})
        stamps.append(resp["order"]["date_updated"])
    after = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert all(before <= stamp <= after for stamp in stamps), (before, stamps, after)
    assert stamps == sorted(stamps)
    if before == after:  # all six in one second: one shared date_updated
        assert set(stamps) == {before}


async def test_put_without_items_key_removes_all_items(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order = sbx.orders()[0]
    del order["order_items"]
    _, resp, _ = await call(http, "PUT", f"{sbx.base_url}/orders/{order['id']}", json=order)
    assert resp["order"]["order_items"] == [] and resp["order"]["product_total"] == 0


async def test_delete_order(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order_id = sbx.orders()[0]["id"]
    status, resp, _ = await call(http, "DELETE", f"{sbx.base_url}/orders/{order_id}")
    assert status == 200 and resp["message"] == f"Order {order_id} Deleted"
    status, resp, _ = await call(http, "DELETE", f"{sbx.base_url}/orders/{order_id}")
    assert status == 404 and resp == {**resp, "status": "error", "message": "Order Not Found"}


async def test_order_history_append_cap_and_read(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order = sbx.orders()[0]
    store = sbx.state.store("1001")
    for n in range(HISTORY_CAP + 4):
        sbx.state.add_history(store, order["id"], {"note": f"n{n}"})
    url = f"{sbx.base_url}/orders/{order['id']}/order-history"
    status, resp, _ = await call(http, "POST", url, json={"note": "last", "source_name": "Gateway"})
    assert status == 200 and resp["total_records"] == HISTORY_CAP
    history = resp["order"]["order_history"]
    assert len(history) == HISTORY_CAP and history[-1]["note"] == "last"
    assert history[-1]["source_name"] == "Gateway" and set(history[-1]) == {
        "source_name",
        "note",
        "date_added",
    }
    assert history[0]["note"] == "n5"
    assert resp["order"]["date_updated"] == order["date_updated"]  # history is not an order write
    status, resp, _ = await call(http, "POST", url, json={"source_name": "x"})
    assert status == 400
    _, single, _ = await call(http, "GET", f"{sbx.base_url}/orders/{order['id']}")
    assert "order_history" not in single["order"]
    params = {"get_order_history": "1", "source_id": order["source_id"]}
    _, listing, _ = await call(http, "GET", sbx.base_url + "/orders", params=params)
    assert listing["orders"][0]["order_history"][-1]["note"] == "last"


async def test_move_orders_results_history_and_errors(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    first, second = [o for o in sbx.orders() if o["folder_id"] == 1][:2]
    body = {"order_id_list": [int(first["id"]), second["id"], 999], "destination_folder_name": "Prepared"}
    status, resp, _ = await call(http, "POST", sbx.base_url + "/move-orders", json=body)
    assert status == 200 and resp["status"] == "success" and resp["message"] == "2 Orders Moved"
    ok1, ok2, bad = resp["results"]
    assert ok1 == {
        "order_id": int(first["id"]),
        "message": "Order Moved to Prepared Folder",
        "original_folder_id": 1,
    }
    assert ok2["order_id"] == second["id"]
    assert bad["order_id"] == 999 and bad["message"] == "Order Not Found"
    moved = sbx.order(first["id"], with_history=True)
    assert moved is not None and moved["folder_id"] == 2
    assert moved["date_updated"] >= first["date_updated"]
    assert "Prepared" in moved["order_history"][-1]["note"]
    body2: dict[str, Any] = {"order_id_list": [first["id"]], "destination_folder_id": 3}
    _, resp, _ = await call(http, "POST", sbx.base_url + "/move-orders", json=body2)
    assert resp["results"][0]["original_folder_id"] == 2
    status, resp, _ = await call(
        http,
        "POST",
        sbx.base_url + "/move-orders",
        json={"order_id_list": [first["id"]], "destination_folder_id": 77},
    )
    assert status == 400 and resp["status"] == "error"


async def test_strict_concurrency_mode_answers_409_on_stale_date_updated() -> None:
    """A test-only mode: OrderDesk has no 409 and no conditional PUT (notes §7)."""
    async with Sandbox(SandboxConfig(strict_concurrency=True, seed_orders=2, rate_limit_enabled=False)) as sb:
        async with aiohttp.ClientSession(headers=sb.headers()) as http:
            order = sb.orders()[0]
            sb.edit_order("1001", order["id"], {"email": "someone-else@example.com"})
            status, resp, _ = await call(http, "PUT", f"{sb.base_url}/orders/{order['id']}", json=order)
            assert status == 409
            assert resp["message"] == "Order has been modified (date_updated mismatch)"
            fresh = sb.order(order["id"])
            status, resp, _ = await call(http, "PUT", f"{sb.base_url}/orders/{order['id']}", json=fresh)
            assert status == 200


async def test_email_count_counts_current_orders_with_the_email(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sbx.base_url + "/orders"
    _, first, _ = await call(http, "POST", url, json=new_order(source_id="EC-1", email="Sam@Example.com"))
    _, second, _ = await call(http, "POST", url, json=new_order(source_id="EC-2", email="sam@example.com"))
    assert (first["order"]["email_count"], second["order"]["email_count"]) == ("1", "2")
    await call(http, "DELETE", f"{url}/{first['order']['id']}")
    sbx.edit_order("1001", second["order"]["id"], {"email": "other@example.com"})
    _, third, _ = await call(http, "POST", url, json=new_order(source_id="EC-3", email="sam@example.com"))
    assert third["order"]["email_count"] == "1"
