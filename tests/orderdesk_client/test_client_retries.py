"""Retries: 429s wait as told, idempotent calls retry transient failures, creates never duplicate."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import msgspec
import pytest

from odmcp.errors import NotFound, RateLimited, UpstreamError, ValidationFailed
from odmcp_orderdesk.client import OutcomeUnknown
from odmcp_orderdesk.settings import OrderDeskSettings

TOO_MANY = {"status": "error", "message": "Too Many Requests"}


def order_query(od: Any) -> re.Pattern[str]:
    return re.compile(re.escape(od.url("/orders")) + r"\?.*")


# --- 429 -----------------------------------------------------------------------------------------


async def test_429_waits_x_retry_after_then_succeeds(
    client: Any, mocked: Any, od: Any, fake_time: Any
) -> None:
    mocked.get(
        od.url("/orders/1"),
        status=429,
        payload=TOO_MANY,
        headers={"X-Retry-After": "2.5", "X-Tokens-Remaining": "0"},
    )
    mocked.get(od.url("/orders/1"), payload=od.ok(order={"id": "1"}))
    assert (await client.get_order(1))["id"] == "1"
    assert fake_time.sleeps == [2.5]  # the limiter, penalised to the same instant, adds no second wait
    assert len(od.calls(mocked, "GET", "/orders/1")) == 2


async def test_429_falls_back_to_retry_after_then_to_backoff(
    client: Any, mocked: Any, od: Any, fake_time: Any
) -> None:
    mocked.get(od.url("/test"), status=429, payload=TOO_MANY, headers={"Retry-After": "4"})
    mocked.get(od.url("/test"), status=429, payload=TOO_MANY)
    mocked.get(od.url("/test"), payload=od.ok(message="Connection Successful"))
    await client.test()
    # second wait: backoff(1) = 0.5 (rng = 1), above one refill interval (1/3 s)
    assert fake_time.sleeps == [4.0, 0.5]


async def test_429_with_a_long_retry_after_returns_rate_limited_at_once(
    client: Any, mocked: Any, od: Any, fake_time: Any
) -> None:
    mocked.get(od.url("/orders/1"), status=429, payload=TOO_MANY, headers={"X-Retry-After": "120"})
    with pytest.raises(RateLimited) as info:
        await client.get_order(1)
    assert info.value.details["retry_after"] == 120
    assert fake_time.sleeps == []
    assert client.limiter.available() < 1  # other callers of this store hold off too


async def test_429_until_retries_run_out_is_rate_limited(
    make_client: Any, mocked: Any, od: Any, fake_time: Any
) -> None:
    client = make_client(OrderDeskSettings(max_retries=2))
    mocked.get(od.url("/orders/1"), status=429, payload=TOO_MANY, headers={"X-Retry-After": "1"}, repeat=True)
    with pytest.raises(RateLimited, match="OrderDesk GET /orders/1: rate limited"):
        await client.get_order(1)
    assert len(od.calls(mocked, "GET", "/orders/1")) == 3
    assert fake_time.sleeps == [1.0, 1.0]


async def test_429_on_a_create_is_retried_because_nothing_was_processed(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), status=429, payload=TOO_MANY, headers={"X-Retry-After": "1"})
    mocked.post(od.url("/orders"), payload=od.ok(order={"id": "9", "source_id": "A-1"}))
    assert (await client.create_order({"source_id": "A-1"}))["id"] == "9"
    assert len(od.calls(mocked, "POST", "/orders")) == 2
    assert od.calls(mocked, "GET", "/orders") == []  # no lookup needed


async def test_tokens_remaining_header_syncs_the_limiter(client: Any, mocked: Any, od: Any) -> None:
    mocked.get(od.url("/orders/1"), payload=od.ok(order={"id": "1"}), headers={"X-Tokens-Remaining": "3"})
    await client.get_order(1)
    assert client.limiter.available() == pytest.approx(3)


# --- idempotent retries --------------------------------------------------------------------------


async def test_get_retries_5xx_timeouts_and_bad_json(
    client: Any, mocked: Any, od: Any, fake_time: Any
) -> None:
    mocked.get(od.url("/orders/1"), status=503, body="unavailable")
    mocked.get(od.url("/orders/1"), exception=TimeoutError())
    mocked.get(od.url("/orders/1"), body="{not json")
    mocked.get(od.url("/orders/1"), exception=aiohttp.ServerDisconnectedError())
    mocked.get(od.url("/orders/1"), payload=od.ok(order={"id": "1"}))
    assert (await client.get_order(1))["id"] == "1"
    assert fake_time.sleeps == [0.25, 0.5, 1.0, 2.0]


async def test_an_item_put_retries_5xx(client: Any, mocked: Any, od: Any) -> None:
    # a full-item PUT is replay-safe: the same body twice leaves the same item
    mocked.put(od.url("/orders/1/order-items/2"), status=502, body="bad gateway")
    mocked.put(od.url("/orders/1/order-items/2"), payload=od.ok(message="Order Item Updated"))
    await client.update_order_item(1, 2, {"id": "2", "name": "A", "quantity": 2})
    first, second = od.calls(mocked, "PUT", "/orders/1/order-items/2")
    assert first.kwargs["data"] == second.kwargs["data"]


async def test_an_order_put_is_never_replayed_after_a_5xx(client: Any, mocked: Any, od: Any) -> None:
    # a repeat could add items (entries without an id) twice: the caller re-reads instead
    mocked.put(od.url("/orders/1"), status=500, body="boom")
    with pytest.raises(OutcomeUnknown, match="HTTP 500") as caught:
        await client.update_order(1, {"id": "1", "order_items": [{"name": "new"}]})
    assert caught.value.answered is True and caught.value.retryable is False
    assert len(od.calls(mocked, "PUT", "/orders/1")) == 1


async def test_a_504_is_not_an_answer_the_request_may_be_in_flight(client: Any, mocked: Any, od: Any) -> None:
    # a proxy gave up waiting; OrderDesk may still be working on the PUT (a 502/503 is an answer)
    mocked.put(od.url("/orders/1"), status=504, body="gateway timeout")
    with pytest.raises(OutcomeUnknown) as caught:
        await client.update_order(1, {"id": "1", "email": "a@b"})
    assert caught.value.answered is False


async def test_backoff_is_capped_jittered_and_bounded(
    make_client: Any, mocked: Any, od: Any, fake_time: Any
) -> None:
    client = make_client(OrderDeskSettings(max_retries=5, backoff_base=1.0, backoff_cap=3.0), rng=lambda: 0.5)
    mocked.get(od.url("/orders/1"), status=500, body="boom", repeat=True)
    with pytest.raises(UpstreamError, match=r"HTTP 500.*gave up after 6 attempts"):
        await client.get_order(1)
    assert fake_time.sleeps == [0.5, 1.0, 1.5, 1.5, 1.5]  # min(3, 1 * 2**n) * 0.5
    assert len(od.calls(mocked, "GET", "/orders/1")) == 6


async def test_a_delete_whose_retry_finds_nothing_succeeded(client: Any, mocked: Any, od: Any) -> None:
    mocked.delete(od.url("/orders/1"), exception=TimeoutError())
    mocked.delete(od.url("/orders/1"), status=404, payload={"status": "error", "message": "Order Not Found"})
    assert "already gone" in (await client.delete_order(1))["message"]


async def test_a_delete_of_a_missing_order_is_not_found(client: Any, mocked: Any, od: Any) -> None:
    mocked.delete(od.url("/orders/1"), status=404, payload={"status": "error", "message": "Order Not Found"})
    with pytest.raises(NotFound):
        await client.delete_order(1)


# --- POST: never blindly repeated ----------------------------------------------------------------


async def test_post_is_not_repeated_after_a_5xx(client: Any, mocked: Any, od: Any) -> None:
    mocked.post(od.url("/orders/1/order-items"), status=500, body="boom")
    with pytest.raises(OutcomeUnknown, match="HTTP 500") as info:
        await client.add_order_item(1, {"name": "x"})
    assert info.value.retryable is False
    assert len(od.calls(mocked, "POST", "/orders/1/order-items")) == 1


async def test_post_that_never_connected_is_retried(client: Any, mocked: Any, od: Any) -> None:
    mocked.post(od.url("/move-orders"), exception=aiohttp.ConnectionTimeoutError())
    mocked.post(od.url("/move-orders"), payload=od.ok(message="1 Orders Moved", results=[]))
    assert (await client.move_orders([1], folder_id=2))["message"] == "1 Orders Moved"


async def test_create_timeout_finds_the_order_by_source_id_and_does_not_post_again(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), exception=TimeoutError())
    found = {"id": 77, "source_id": "A-1", "source_name": "Order Desk", "checkout_data": []}
    mocked.get(order_query(od), payload=od.ok(total_records=1, records_returned=1, orders=[found]))
    order = await client.create_order({"source_id": "A-1", "order_items": [{"name": "w"}]})
    assert order == {"id": "77", "source_id": "A-1", "source_name": "Order Desk", "checkout_data": {}}
    assert len(od.calls(mocked, "POST", "/orders")) == 1
    (lookup,) = od.calls(mocked, "GET", "/orders")
    assert lookup.kwargs["params"] == {"source_id": "A-1", "source_name": "Order Desk", "limit": "50"}


async def test_create_timeout_with_nothing_found_posts_again_with_the_same_source_id(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), exception=TimeoutError())
    mocked.get(order_query(od), payload=od.ok(total_records=0, records_returned=0, orders=[]))
    mocked.post(od.url("/orders"), payload=od.ok(order={"id": "78", "source_id": "A-2"}))
    assert (await client.create_order({"source_id": "A-2", "source_name": "Shopify"}))["id"] == "78"
    first, second = od.calls(mocked, "POST", "/orders")
    assert first.kwargs["data"] == second.kwargs["data"]
    (lookup,) = od.calls(mocked, "GET", "/orders")
    assert lookup.kwargs["params"]["source_name"] == "Shopify"


async def test_create_ignores_lookup_hits_from_another_source(client: Any, mocked: Any, od: Any) -> None:
    mocked.post(od.url("/orders"), status=502, body="bad gateway")
    other = {"id": "5", "source_id": "A-3", "source_name": "Amazon"}
    mocked.get(order_query(od), payload=od.ok(orders=[other]))
    mocked.post(od.url("/orders"), payload=od.ok(order={"id": "79", "source_id": "A-3"}))
    assert (await client.create_order({"source_id": "A-3"}))["id"] == "79"


async def test_create_without_source_id_gets_one_before_the_first_attempt(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), payload=od.ok(order={"id": "80"}))
    await client.create_order({"order_items": [{"name": "w"}], "source_id": ""})
    (call,) = od.calls(mocked, "POST", "/orders")
    source_id = msgspec.json.decode(call.kwargs["data"])["source_id"]
    assert re.fullmatch(r"mcpgw-[0-9a-f]{16}", source_id)


async def test_create_repeat_rejected_as_duplicate_returns_the_first_attempts_order(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), exception=TimeoutError())
    mocked.get(order_query(od), payload=od.ok(orders=[]))  # not visible yet
    mocked.post(
        od.url("/orders"), status=422, payload={"status": "error", "message": "Duplicate of order 81"}
    )
    mocked.get(order_query(od), payload=od.ok(orders=[{"id": "81", "source_id": "A-4"}]))
    assert (await client.create_order({"source_id": "A-4"}))["id"] == "81"


async def test_create_rejected_on_first_attempt_is_a_plain_validation_error(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), status=400, payload={"status": "error", "message": "Order items required"})
    with pytest.raises(ValidationFailed, match="OrderDesk POST /orders: Order items required"):
        await client.create_order({"source_id": "A-5"})
    assert od.calls(mocked, "GET", "/orders") == []


async def test_create_gives_up_with_outcome_unknown_naming_the_source_id(
    make_client: Any, mocked: Any, od: Any
) -> None:
    client = make_client(OrderDeskSettings(max_retries=1))
    mocked.post(od.url("/orders"), exception=TimeoutError(), repeat=True)
    mocked.get(order_query(od), payload=od.ok(orders=[]), repeat=True)
    with pytest.raises(OutcomeUnknown, match="source_id 'A-6'") as info:
        await client.create_order({"source_id": "A-6"})
    assert info.value.details["source_id"] == "A-6"
    assert len(od.calls(mocked, "POST", "/orders")) == 2


async def test_shipment_with_unclear_outcome_is_confirmed_by_tracking_number(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders/1/shipments"), exception=aiohttp.ServerDisconnectedError())
    shipments = [{"id": 437, "order_id": 1, "tracking_number": "1Z999"}]
    mocked.get(od.url("/orders/1/shipments"), payload=od.ok(total_records=1, shipments=shipments))
    out = await client.add_shipment(1, {"tracking_number": "1Z999", "carrier_code": "UPS"})
    assert out["confirmed_by_lookup"] is True
    assert out["shipment"] == {"id": "437", "order_id": "1", "tracking_number": "1Z999"}
    assert len(od.calls(mocked, "POST", "/orders/1/shipments")) == 1


async def test_shipment_with_unclear_outcome_and_no_trace_is_outcome_unknown(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders/1/shipments"), exception=TimeoutError())
    mocked.get(od.url("/orders/1/shipments"), payload=od.ok(total_records=0, shipments=[]))
    with pytest.raises(OutcomeUnknown, match="no trace"):
        await client.add_shipment(1, {"tracking_number": "1Z998"})
    mocked.post(od.url("/orders/1/shipments"), exception=TimeoutError())
    with pytest.raises(OutcomeUnknown):
        await client.add_shipment(1, {"tracking_number": "n/a"})  # nothing to look for
    assert len(od.calls(mocked, "GET", "/orders/1/shipments")) == 1


async def test_inventory_create_with_unclear_outcome_is_confirmed_by_sku(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/inventory-items"), status=504, body="gateway timeout")
    items = [{"id": "2511", "code": "3wolf-XXL"}, {"id": 2512, "code": "3wolf-XX"}]
    mocked.get(
        re.compile(re.escape(od.url("/inventory-items")) + r"\?.*"), payload=od.ok(inventory_items=items)
    )
    out = await client.create_inventory_item({"name": "Three Wolves", "code": "3wolf-XX", "price": 11})
    assert out["inventory_item"] == {"id": 2512, "code": "3wolf-XX"}
    (lookup,) = od.calls(mocked, "GET", "/inventory-items")
    assert lookup.kwargs["params"]["code"] == "3wolf-XX"
    assert len(od.calls(mocked, "POST", "/inventory-items")) == 1
