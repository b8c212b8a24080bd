"""Auth, envelopes, wire types, methods, request log, multi-store isolation and admin endpoints."""

from __future__ import annotations

import re
import time

import aiohttp
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig
from odmcp_orderdesk.sandbox import assumptions as A

EXEC_TIME = re.compile(r"^\d+\.\d{4} seconds$")


async def test_auth_failures_are_401_with_error_envelope(sbx: Sandbox) -> None:
    cases = [
        {},
        {"ORDERDESK-STORE-ID": "1001"},
        {"ORDERDESK-STORE-ID": "1001", "ORDERDESK-API-KEY": "wrong"},
        {"ORDERDESK-STORE-ID": "9999", "ORDERDESK-API-KEY": "sandbox-key"},
        {"ORDERDESK-STORE-ID": "1001", "ORDERDESK-API-KEY": "sandbox-key-2"},  # store 2002's key
    ]
    async with aiohttp.ClientSession() as session:
        for headers in cases:
            status, body, _ = await call(session, "GET", sbx.base_url + "/test", headers=headers)
            assert status == 401
            assert body["status"] == "error"
            assert body["message"] == "Invalid store id or api key"
            assert EXEC_TIME.match(body["execution_time"])


async def test_connection_test_and_store_envelopes(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body, headers = await call(http, "GET", sbx.base_url + "/test")
    assert status == 200
    assert body["status"] == "success" and body["message"] == "Connection Successful"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", body["current_date_time"])
    assert headers["Content-Type"].startswith("application/json")

    status, body, _ = await call(http, "GET", sbx.base_url + "/store")
    store = body["store"]
    assert store["id"] == "1001" and store["name"] == "Demo Store"
    assert store["folders"] == {"1": "New", "2": "Prepared", "3": "Closed", "4": "Canceled"}
    assert EXEC_TIME.match(body["execution_time"])
    settings = store["settings"]
    assert "api_key" not in settings
    assert not any(key.startswith("smtp") for key in settings)


async def test_order_wire_types_and_php_empty_maps(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    _, body, _ = await call(http, "GET", sbx.base_url + "/orders", params={"limit": "100"})
    orders = body["orders"]
    assert len(orders) == 36
    saw_empty_map = saw_filled_map = False
    for order in orders:
        for key in ("id", "source_id", "customer_id", "email_count"):
            assert isinstance(order[key], str), key
        assert isinstance(order["folder_id"], int)
        assert "order_history" not in order
        for key in ("checkout_data", "order_metadata"):
            assert order[key] == [] or (isinstance(order[key], dict) and order[key])
            saw_empty_map |= order[key] == []
            saw_filled_map |= isinstance(order[key], dict)
        for item in order["order_items"]:
            assert isinstance(item["id"], str)
            for key in ("variation_list", "metadata"):
                assert item[key] == [] or (isinstance(item[key], dict) and item[key])
        for shipment in order["order_shipments"]:
            assert isinstance(shipment["id"], str) and shipment["order_id"] == order["id"]
    assert saw_empty_map and saw_filled_map
    assert any(o["discount_list"] for o in orders) and any(o["order_notes"] for o in orders)
    assert any(o["order_shipments"] for o in orders)
    assert len({o["folder_id"] for o in orders}) >= 3


async def test_unsupported_methods_and_unknown_routes(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order_id = sbx.orders()[0]["id"]
    for method in ("PATCH", "TRACE"):
        status, body, _ = await call(http, method, f"{sbx.base_url}/orders/{order_id}")
        assert status == 405 and body == {**body, "status": "error", "message": "Method Not Allowed"}
    status, _, _ = await call(http, "DELETE", sbx.base_url + "/orders")
    assert status == A.STATUS_METHOD_NOT_ALLOWED
    status, body, _ = await call(http, "GET", sbx.base_url + "/customers")
    assert status == 404 and body["status"] == "error"
    status, body, _ = await call(http, "GET", sbx.base_url + "/orders/424242")
    assert status == 404 and body["message"] == "Order Not Found"


async def test_method_override_post_as_put(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    item = sbx.state.store("1001").inventory[2501]
    body = {"name": "Renamed", "code": item["code"], "price": 1, "stock": 3}
    headers = {"X-HTTP-Method-Override": "PUT"}
    status, resp, _ = await call(
        http, "POST", sbx.base_url + "/inventory-items/2501", json=body, headers=headers
    )
    assert status == 200 and resp["message"] == "Inventory Item Updated"
    assert sbx.requests()[-1].method == "PUT" and sbx.requests()[-1].raw_method == "POST"


async def test_request_log_masks_api_key_and_filters(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order_id = sbx.orders()[0]["id"]
    await call(http, "GET", sbx.base_url + "/orders", params={"email": "x@example.com"})
    await call(http, "POST", f"{sbx.base_url}/orders/{order_id}/order-history", json={"note": "hi"})
    records = sbx.requests()
    assert [r.method for r in records] == ["GET", "POST"]
    first = records[0]
    assert first["path"] == "/orders" and first.query == {"email": "x@example.com"}
    assert first.headers["orderdesk-api-key"] == "***"
    assert first.headers["orderdesk-store-id"] == "1001"
    assert first.json is None and first.status == 200 and first.store_id == "1001"
    assert "sandbox-key" not in repr([r.to_dict() for r in records])
    post = sbx.requests(method="post", path_prefix="/orders/")
    assert len(post) == 1 and post[0].json == {"note": "hi"}
    sbx.clear_requests()
    assert sbx.requests() == []


async def test_stores_are_isolated(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    other = sbx.orders("2002")[0]["id"]
    status, _, _ = await call(http, "GET", f"{sbx.base_url}/orders/{other}")
    assert status == 404
    async with aiohttp.ClientSession(headers=sbx.headers("2002")) as second:
        status, body, _ = await call(second, "GET", f"{sbx.base_url}/orders/{other}")
        assert status == 200 and body["order"]["id"] == other
        _, store, _ = await call(second, "GET", sbx.base_url + "/store")
        assert store["store"]["id"] == "2002" and "21" in store["store"]["folders"]
        _, listing, _ = await call(second, "GET", sbx.base_url + "/orders")
        assert listing["total_records"] == 8
        assert {o["folder_id"] for o in listing["orders"]} <= {21, 22, 23, 24}


async def test_admin_endpoints_do_not_spend_tokens_or_record() -> None:
    async with Sandbox(SandboxConfig(seed_orders=3)) as sb:
        order_id = sb.orders()[0]["id"]
        async with aiohttp.ClientSession() as admin:
            for _ in range(25):
                status, body, _ = await call(admin, "GET", f"{sb.admin_url}/orders/1001/{order_id}")
                assert status == 200 and body["order"]["id"] == order_id and "order_history" in body["order"]
            assert sb.requests() == []
            _, _, headers = await call(admin, "GET", sb.base_url + "/test", headers=sb.headers())
            assert headers["X-Tokens-Remaining"] == "19"

            status, body, _ = await call(admin, "POST", f"{sb.admin_url}/config", json={"latency_ms": 5})
            assert status == 200 and body["config"]["latency_ms"] == 5.0 and sb.config.latency_ms == 5.0
            status, _, _ = await call(admin, "POST", f"{sb.admin_url}/config", json={"nope": 1})
            assert status == 400

            status, body, _ = await call(
                admin, "POST", f"{sb.admin_url}/orders/1001/{order_id}/edit", json={"email": "ui@example.com"}
            )
            assert body["order"]["email"] == "ui@example.com"
            status, body, _ = await call(admin, "GET", f"{sb.admin_url}/requests")
            assert [r["path"] for r in body["requests"]] == ["/test"]
            assert body["requests"][0]["headers"]["orderdesk-api-key"] == "***"
            await call(admin, "DELETE", f"{sb.admin_url}/requests")
            assert sb.requests() == []

            status, _, _ = await call(admin, "POST", f"{sb.admin_url}/reset")
            assert status == 200 and sb.order(order_id)["email"] != "ui@example.com"  # type: ignore[index]
            status, _, _ = await call(admin, "GET", f"{sb.admin_url}/orders/1001/1")
            assert status == 404


async def test_latency_is_added_to_api_requests_only(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    sbx.config.latency_ms = 60
    started = time.perf_counter()
    status, _, _ = await call(http, "GET", sbx.base_url + "/test")
    assert status == 200 and time.perf_counter() - started >= 0.06
    started = time.perf_counter()
    await call(http, "GET", sbx.admin_url + "/health")
    assert time.perf_counter() - started < 0.06
