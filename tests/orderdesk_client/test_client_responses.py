"""Reading responses: envelopes unwrapped and normalised, errors mapped, per-entry failures surfaced."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from odmcp.errors import (
    AuthError,
    Conflict,
    GatewayError,
    NotFound,
    UpstreamError,
    ValidationFailed,
)
from odmcp_orderdesk.client import OrderDeskClient
from odmcp_orderdesk.settings import OrderDeskSettings


async def test_get_order_unwraps_and_normalises(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    order = {
        "id": 123,
        "folder_id": "4",
        "checkout_data": [],
        "order_items": [{"id": 9, "metadata": []}],
        "x": 1,
    }
    mocked.get(
        od.url("/orders/123"),
        payload={"status": "success", "message": "Execution took 0.02 seconds", "order": order},
    )
    got = await client.get_order(123)
    assert got == {
        "id": "123",
        "folder_id": 4,
        "checkout_data": {},
        "order_items": [{"id": "9", "metadata": {}}],
        "x": 1,
    }


async def test_list_orders_returns_ints_and_normalised_orders(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    env = od.ok(total_records="120", records_returned=2, offset=0, limit=2, orders=[{"id": 1}, {"id": "2"}])
    mocked.get(od.url("/orders?limit=2"), payload=env)
    page = await client.list_orders(limit=2)
    assert page == {
        "orders": [{"id": "1"}, {"id": "2"}],
        "total_records": 120,
        "records_returned": 2,
        "offset": 0,
        "limit": 2,
    }


async def test_list_inventory_coerces_the_string_total(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    items = [{"id": "1", "code": "a", "metadata": []}, {"id": 2, "code": "b"}]
    mocked.get(
        od.url("/inventory-items?code=a,b&limit=50&offset=0"),
        payload=od.ok(records_returned=2, total_records="0", inventory_items=items),  # as seen in the wild
    )
    page = await client.list_inventory(code=["a", "b"])
    assert page == {
        "inventory_items": [{"id": 1, "code": "a", "metadata": {}}, {"id": 2, "code": "b"}],
        "total_records": 2,
        "records_returned": 2,
    }


async def test_message_only_writes_return_the_message(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    mocked.put(od.url("/inventory-items/2510"), payload=od.ok(message="Inventory Item Updated"))
    mocked.get(
        od.url("/test"),
        payload={"status": "success", "message": "Connection Successful", "current_date_time": "t"},
    )
    assert await client.update_inventory_item(2510, {"id": 2510, "name": "n"}) == {
        "message": "Inventory Item Updated"
    }
    assert await client.test() == {"message": "Connection Successful", "current_date_time": "t"}


async def test_timing_as_a_message_is_dropped_like_execution_time(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    """notes §2: timing is either execution_time or "message": "Execution took …"; neither is data."""
    timing = {"status": "success", "message": "Execution took 0.0208 seconds"}
    mocked.put(od.url("/inventory-items/2510"), payload=timing)
    mocked.put(od.url("/batch-inventory-items"), payload={**timing, "results": []})
    mocked.delete(od.url("/orders/7"), payload={"status": "success", "message": "Order 7 Deleted"})
    assert await client.update_inventory_item(2510, {"id": 2510, "name": "n"}) == {}
    assert "message" not in await client.batch_update_inventory([{"id": 1, "name": "a", "code": "a"}])
    assert await client.delete_order(7) == {"message": "Order 7 Deleted"}  # a real message stays


async def test_get_store_strips_credentials(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    store = {
        "id": "11",
        "settings": {"api_key": "leak", "smtp_password": "pw", "timezone": "UTC"},
        "folders": {"1": "New"},
    }
    mocked.get(od.url("/store"), payload=od.ok(store=store))
    assert await client.get_store() == {"id": "11", "settings": {"timezone": "UTC"}, "folders": {"1": "New"}}


async def test_add_order_history_returns_the_order(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    history = [{"source_name": "API", "note": "hello", "date_added": "2015-10-28 23:14:30"}]
    mocked.post(
        od.url("/orders/5/order-history"),
        payload=od.ok(total_records=1, order={"id": 5, "order_history": history}),
    )
    order = await client.add_order_history("5", "hello")
    assert order == {"id": "5", "order_history": history}
    (call,) = od.calls(mocked, "POST", "/orders/5/order-history")
    assert call.kwargs["data"] == b'{"note":"hello","source_name":"API"}'


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (400, ValidationFailed),
        (422, ValidationFailed),
        (409, Conflict),
        (405, ValidationFailed),
        (500, UpstreamError),
        (503, UpstreamError),
        (302, UpstreamError),
    ],
)
async def test_http_status_maps_to_an_error_code_keeping_the_message(
    make_client: Any, mocked: Any, od: Any, status: int, error: type[GatewayError]
) -> None:
    client = make_client(OrderDeskSettings(max_retries=0))
    mocked.get(
        od.url("/orders/123"), status=status, payload={"status": "error", "message": "Order Not Found"}
    )
    with pytest.raises(error) as info:
        await client.get_order("123")
    assert type(info.value) is error
    if status < 500:
        assert info.value.message.startswith("OrderDesk GET /orders/123: Order Not Found")
        assert info.value.details["http_status"] == status


async def test_error_without_json_body_says_the_http_status(make_client: Any, mocked: Any, od: Any) -> None:
    client = make_client(OrderDeskSettings(max_retries=0))
    mocked.get(od.url("/orders/1"), status=401, body="<html>nope</html>")
    with pytest.raises(AuthError, match=r"OrderDesk GET /orders/1: HTTP 401"):
        await client.get_order(1)


@pytest.mark.parametrize(
    ("message", "error"),
    [("Order Not Found", NotFound), ("Shipment Not Added", ValidationFailed), ("Invalid API Key", AuthError)],
)
async def test_status_error_inside_http_200_is_an_error(
    client: OrderDeskClient, mocked: Any, od: Any, message: str, error: type[GatewayError]
) -> None:
    mocked.post(
        od.url("/orders/1/shipments"),
        payload={"status": "error", "message": message, "execution_time": "0.1"},
    )
    with pytest.raises(error, match=f"OrderDesk POST /orders/1/shipments: {message}"):
        await client.add_shipment(1, {"tracking_number": "1Z"})
    assert od.count(mocked) == 1  # a definite answer is not retried


async def test_move_orders_reports_partial_failures(client: OrderDeskClient, mocked: Any, od: Any) -> None:
    results = [
        {"order_id": 1, "message": "Order Moved to Prepared Folder", "original_folder_id": 6587},
        {"order_id": 2, "message": "Order Not Found"},
    ]
    mocked.post(od.url("/move-orders"), payload=od.ok(message="1 Orders Moved", results=results))
    out = await client.move_orders([1, 2], folder_name="Prepared")
    assert out == {"message": "1 Orders Moved", "results": results, "failed": ["2"]}


async def test_move_orders_raises_when_every_entry_failed(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    results = [
        {"order_id": 1, "message": "Order Not Found"},
        {"order_id": 2, "status": "error", "message": "Order Not Found"},
    ]
    mocked.post(od.url("/move-orders"), payload=od.ok(message="0 Orders Moved", results=results))
    with pytest.raises(NotFound, match=r"no order was moved: 1 \(Order Not Found\), 2 \(Order Not Found\)"):
        await client.move_orders([1, 2], folder_id=5)


async def test_batch_shipments_keeps_per_entry_errors_and_raises_if_all_failed(
    client: OrderDeskClient, mocked: Any, od: Any
) -> None:
    mixed = [
        {"order_id": "1", "status": "success", "message": "Shipment Added"},
        {"order_id": "2", "status": "error", "message": "Shipment Not Added"},
    ]
    mocked.post(od.url("/batch-shipments"), payload=od.ok(results=mixed))
    assert await client.batch_shipments([{"order_id": 1}, {"order_id": 2}]) == mixed
    mocked.post(od.url("/batch-shipments"), payload=od.ok(results=mixed[1:]))
    with pytest.raises(ValidationFailed, match=r"no shipment was added: 2 \(Shipment Not Added\)"):
        await client.batch_shipments([{"order_id": 2}])


async def test_api_key_never_appears_in_errors_repr_or_logs(
    make_client: Any, mocked: Any, od: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(OrderDeskSettings(max_retries=1))
    assert od.API_KEY not in repr(client) and "main" in repr(client) and od.STORE_ID in repr(client)
    mocked.get(
        od.url("/orders/1"), status=401, payload={"status": "error", "message": f"Bad key {od.API_KEY}"}
    )
    mocked.get(od.url("/orders/2"), status=503, body="down")
    mocked.get(od.url("/orders/2"), exception=TimeoutError())
    mocked.get(od.url("/orders/3"), payload={"status": "error", "message": f"key {od.API_KEY} is not valid"})
    errors: list[GatewayError] = []
    for oid in (1, 2, 3):
        with pytest.raises(GatewayError) as info:
            await client.get_order(oid)
        errors.append(info.value)
    for err in errors:
        for text in (str(err), repr(err), err.message, str(err.to_dict())):
            assert od.API_KEY not in text
    assert "Bad key ***" in errors[0].message
    assert "OrderDesk GET /orders/1 -> 401" in caplog.text  # the request log line is there ...
    assert od.API_KEY not in caplog.text  # ... but never the key (nor any header)
    assert "ORDERDESK-API-KEY" not in caplog.text
