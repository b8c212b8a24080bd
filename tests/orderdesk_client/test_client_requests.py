"""What goes on the wire: headers, bodies, query strings, and ids refused before any request."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from odmcp.config import Secret
from odmcp.errors import ValidationFailed
from odmcp_orderdesk.client import OrderDeskClient, make_session
from odmcp_orderdesk.ratelimit import LeakyBucket
from odmcp_orderdesk.settings import OrderDeskSettings, OrderDeskStore

UA = OrderDeskSettings().user_agent


def expected_headers(od: Any, *, body: bool) -> dict[str, str]:
    h = {
        "ORDERDESK-STORE-ID": od.STORE_ID,
        "ORDERDESK-API-KEY": od.API_KEY,
        "User-Agent": UA,
        "Accept": "application/json",
    }
    if body:
        h["Content-Type"] = "application/json"
    return h


async def test_get_sends_exactly_the_auth_headers_and_no_body(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    mocked.get(od.url("/orders/1"), payload=od.ok(order={"id": "1"}))
    await client.get_order("1")
    (call,) = od.calls(mocked, "GET", "/orders/1")
    assert call.kwargs["headers"] == expected_headers(od, body=False)
    assert call.kwargs["data"] is None
    assert call.kwargs["allow_redirects"] is False


async def test_put_and_post_send_json_bytes_with_content_type(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    mocked.put(od.url("/orders/7"), payload=od.ok(order={"id": "7"}))
    mocked.post(od.url("/orders/7/order-items"), payload=od.ok(message="Order Item Added"))
    await client.update_order("7", {"id": "7", "checkout_data": {}, "order_shipments": [{"id": "1"}]})
    assert await client.add_order_item("7", {"name": "Widget", "variation_list": {}}) == {
        "message": "Order Item Added"
    }
    (put,) = od.calls(mocked, "PUT", "/orders/7")
    assert put.kwargs["headers"] == expected_headers(od, body=True)
    assert isinstance(put.kwargs["data"], bytes)
    assert msgspec.json.decode(put.kwargs["data"]) == {"id": "7", "checkout_data": []}
    (post,) = od.calls(mocked, "POST", "/orders/7/order-items")
    assert msgspec.json.decode(post.kwargs["data"]) == {"name": "Widget", "variation_list": []}


async def test_delete_has_no_body(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    mocked.delete(od.url("/orders/7/shipments/9"), payload=od.ok(message="Shipment 9 Deleted"))
    assert await client.delete_shipment(7, 9) == {"message": "Shipment 9 Deleted"}
    (call,) = od.calls(mocked, "DELETE", "/orders/7/shipments/9")
    assert call.kwargs["data"] is None and "Content-Type" not in call.kwargs["headers"]


async def test_query_drops_none_joins_lists_and_sends_bools_as_digits(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    mocked.get(
        od.url("/orders?folder_id=1,2&get_order_history=1&limit=10&order=DESC"), payload=od.ok(orders=[])
    )
    await client.list_orders(folder_id=[1, "2"], get_order_history=True, limit=10, order="desc", email=None)
    (call,) = od.calls(mocked, "GET", "/orders")
    assert call.kwargs["params"] == {
        "folder_id": "1,2",
        "get_order_history": "1",
        "limit": "10",
        "order": "DESC",
    }


async def test_move_orders_uses_the_documented_body_keys(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/move-orders"), payload=od.ok(message="1 Orders Moved", results=[]))
    mocked.post(od.url("/move-orders"), payload=od.ok(message="1 Orders Moved", results=[]))
    await client.move_orders(["29491"], folder_id=9384)
    await client.move_orders([29490], folder_name="Prepared")
    first, second = od.calls(mocked, "POST", "/move-orders")
    assert msgspec.json.decode(first.kwargs["data"]) == {
        "order_id_list": [29491],
        "destination_folder_id": 9384,
    }
    assert msgspec.json.decode(second.kwargs["data"]) == {
        "order_id_list": [29490],
        "destination_folder_name": "Prepared",
    }


async def test_batch_shipments_body_is_a_raw_array(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    results = [{"order_id": "1", "status": "success", "message": "Shipment Added"}]
    mocked.post(od.url("/batch-shipments"), payload=od.ok(results=results))
    assert await client.batch_shipments([{"order_id": 1, "tracking_number": "YT1"}]) == results
    (call,) = od.calls(mocked, "POST", "/batch-shipments")
    assert msgspec.json.decode(call.kwargs["data"]) == [{"order_id": 1, "tracking_number": "YT1"}]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_order("../store"),
        lambda c: c.get_order("1/../../x"),
        lambda c: c.get_order("%2e%2e"),
        lambda c: c.delete_order("1?x="),
        lambda c: c.get_order_item("1", "2/../3"),
        lambda c: c.update_shipment("1", True, {}),
        lambda c: c.get_inventory_item(""),
        lambda c: c.move_orders(["1", "x"], folder_id=3),
        lambda c: c.move_orders(["1"]),
        lambda c: c.batch_shipments([{"tracking_number": "1Z"}]),
        lambda c: c.batch_update_inventory([{"id": "a"}]),
        lambda c: c.update_order("12", {"id": "13"}),
        lambda c: c.list_orders(folder_id="1,2"),
        lambda c: c.list_orders(limit=501),
        lambda c: c.list_orders(status="open"),
        lambda c: c.list_orders(order="sideways"),
        lambda c: c.list_inventory(offset=-1),
        lambda c: c.add_order_history("1", "x" * 1801),
        lambda c: c.add_order_history("1", "  "),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    client: OrderDeskClient, mocked: Any, od: Any, call: Any
) -> None:
    with pytest.raises(ValidationFailed):
        await call(client)
    assert od.count(mocked) == 0


async def test_real_wire_get_has_no_content_headers_and_post_is_json() -> None:
    """Against a real aiohttp server (not a mock): what actually reaches the socket."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.read()))
        if request.method == "GET":
            return web.json_response(
                {"status": "success", "order": {"id": "5"}}, headers={"X-Tokens-Remaining": "19"}
            )
        return web.json_response({"status": "success", "order": {"id": "6", "source_id": "S-1"}})

    app = web.Application()
    app.router.add_route("*", "/api/v2/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        base = str(server.make_url("/api/v2"))
        store = OrderDeskStore(name="s", store_id="11", api_key=Secret("wire-key"), base_url=base)
        settings = OrderDeskSettings()
        async with make_session(settings) as session:
            client = OrderDeskClient(store, session, settings, limiter=LeakyBucket(enabled=False))
            assert (await client.get_order(5))["id"] == "5"
            assert (await client.create_order({"source_id": "S-1", "order_items": []}))["id"] == "6"
    (get_method, get_headers, get_body), (post_method, post_headers, post_body) = seen
    assert get_method == "GET" and get_body == b""
    assert "Content-Type" not in get_headers and "Content-Length" not in get_headers
    assert get_headers["ORDERDESK-API-KEY"] == "wire-key" and get_headers["User-Agent"] == settings.user_agent
    assert post_method == "POST" and post_headers["Content-Type"] == "application/json"
    assert msgspec.json.decode(post_body) == {"source_id": "S-1", "order_items": []}


async def test_make_session_applies_pool_size_and_timeouts() -> None:
    settings = OrderDeskSettings(max_connections=7, connect_timeout=2.0, request_timeout=9.0)
    session = make_session(settings)
    try:
        assert isinstance(session.connector, aiohttp.TCPConnector) and session.connector.limit == 7
        assert (session.timeout.total, session.timeout.connect) == (9.0, 2.0)
        assert not session.headers
    finally:
        await session.close()
