"""Retries: 429s wait as told, reads retry transient failures, and every write is sent exactly once.

A write whose answer is unclear raises OutcomeUnknown (``answered`` True after a 5xx or unreadable JSON,
False after a timeout, a drop or a 504: the request may still be in flight). The client looks nothing
up and sends nothing again: the host's write route re-reads under its lock and reconciles (its side is
tested in tests/orderdesk_tools/test_tools_write_route.py and test_tools_write_outcomes.py)."""

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


async def test_an_item_put_is_sent_once_and_a_5xx_is_an_answered_outcome_unknown(
    client: Any, mocked: Any, od: Any
) -> None:
    # the route re-reads the item and resends only if the re-read shows it was not applied
    mocked.put(od.url("/orders/1/order-items/2"), status=502, body="bad gateway")
    mocked.put(od.url("/orders/1/order-items/2"), payload=od.ok(message="Order Item Updated"))
    with pytest.raises(OutcomeUnknown, match="HTTP 502") as caught:
        await client.update_order_item(1, 2, {"id": "2", "name": "A", "quantity": 2})
    assert caught.value.answered is True and caught.value.retryable is False
    assert len(od.calls(mocked, "PUT", "/orders/1/order-items/2")) == 1


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


@pytest.mark.parametrize(
    ("fault", "answered"),
    [
        ({"exception": TimeoutError()}, False),
        ({"exception": aiohttp.ServerDisconnectedError()}, False),
        ({"status": 503, "body": "unavailable"}, True),
    ],
)
async def test_a_delete_is_sent_once_and_an_unclear_answer_is_outcome_unknown(
    client: Any, mocked: Any, od: Any, fault: dict[str, Any], answered: bool
) -> None:
    # no second DELETE whose 404 would be read as "already gone": the route re-reads the order instead
    mocked.delete(od.url("/orders/1"), **fault)
    mocked.delete(od.url("/orders/1"), status=404, payload={"status": "error", "message": "Order Not Found"})
    with pytest.raises(OutcomeUnknown) as caught:
        await client.delete_order(1)
    assert caught.value.answered is answered and caught.value.retryable is False
    assert len(od.calls(mocked, "DELETE", "/orders/1")) == 1


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


@pytest.mark.parametrize(
    ("fault", "answered"),
    [
        ({"exception": TimeoutError()}, False),
        ({"status": 502, "body": "bad gateway"}, True),
        ({"body": "{not json"}, True),
    ],
)
async def test_a_create_is_posted_once_and_an_unclear_answer_is_outcome_unknown_without_a_lookup(
    make_client: Any, mocked: Any, od: Any, fault: dict[str, Any], answered: bool
) -> None:
    # retries are for reads: even with retries left, the POST goes out once and nothing is looked up
    client = make_client(OrderDeskSettings(max_retries=3))
    mocked.post(od.url("/orders"), **fault)
    mocked.post(od.url("/orders"), payload=od.ok(order={"id": "78", "source_id": "A-2"}))
    mocked.get(order_query(od), payload=od.ok(orders=[{"id": "77", "source_id": "A-2"}]), repeat=True)
    with pytest.raises(OutcomeUnknown) as caught:
        await client.create_order({"source_id": "A-2", "order_items": [{"name": "w"}]})
    assert caught.value.answered is answered and caught.value.retryable is False
    assert len(od.calls(mocked, "POST", "/orders")) == 1
    assert od.calls(mocked, "GET", "/orders") == []


async def test_a_create_sends_the_source_id_it_is_given(client: Any, mocked: Any, od: Any) -> None:
    # the route's create operation picks the source_id (mcpgw-...) before the lock; the client keeps it
    mocked.post(od.url("/orders"), payload=od.ok(order={"id": "80", "source_id": "mcpgw-0123456789abcdef"}))
    order = await client.create_order({"order_items": [{"name": "w"}], "source_id": "mcpgw-0123456789abcdef"})
    (call,) = od.calls(mocked, "POST", "/orders")
    assert msgspec.json.decode(call.kwargs["data"])["source_id"] == "mcpgw-0123456789abcdef"
    assert order["id"] == "80"


async def test_a_create_answered_without_the_order_finds_it_by_source_id(
    client: Any, mocked: Any, od: Any
) -> None:
    # a clear success whose body lacks the order: read it back by its natural key, never post again
    mocked.post(od.url("/orders"), payload=od.ok(message="Order Created"))
    found = {"id": 77, "source_id": "A-1", "source_name": "Order Desk", "checkout_data": []}
    mocked.get(order_query(od), payload=od.ok(total_records=1, records_returned=1, orders=[found]))
    order = await client.create_order({"source_id": "A-1", "order_items": [{"name": "w"}]})
    assert order == {"id": "77", "source_id": "A-1", "source_name": "Order Desk", "checkout_data": {}}
    assert len(od.calls(mocked, "POST", "/orders")) == 1
    (lookup,) = od.calls(mocked, "GET", "/orders")
    assert lookup.kwargs["params"] == {"source_id": "A-1", "source_name": "Order Desk", "limit": "50"}


async def test_find_order_ignores_hits_from_another_source(client: Any, mocked: Any, od: Any) -> None:
    # OrderDesk's natural key is source_id + source_name: an Amazon order A-3 is not our A-3
    other = {"id": "5", "source_id": "A-3", "source_name": "Amazon"}
    mocked.get(order_query(od), payload=od.ok(orders=[other]))
    assert await client.find_order("A-3") is None
    mocked.get(order_query(od), payload=od.ok(orders=[other]))
    found = await client.find_order("A-3", "amazon")
    assert found is not None and found["id"] == "5"
    first, second = od.calls(mocked, "GET", "/orders")
    assert first.kwargs["params"]["source_name"] == "Order Desk"
    assert second.kwargs["params"]["source_name"] == "amazon"


async def test_create_rejected_on_first_attempt_is_a_plain_validation_error(
    client: Any, mocked: Any, od: Any
) -> None:
    mocked.post(od.url("/orders"), status=400, payload={"status": "error", "message": "Order items required"})
    with pytest.raises(ValidationFailed, match="OrderDesk POST /orders: Order items required"):
        await client.create_order({"source_id": "A-5"})
    assert od.calls(mocked, "GET", "/orders") == []


@pytest.mark.parametrize(
    ("fault", "answered"),
    [
        ({"exception": aiohttp.ServerDisconnectedError()}, False),
        ({"exception": TimeoutError()}, False),
        ({"status": 500, "body": "boom"}, True),
    ],
)
async def test_a_shipment_add_is_sent_once_and_an_unclear_answer_is_outcome_unknown(
    client: Any, mocked: Any, od: Any, fault: dict[str, Any], answered: bool
) -> None:
    # the route confirms it by counting the tracking number on a re-read of the order
    mocked.post(od.url("/orders/1/shipments"), **fault)
    with pytest.raises(OutcomeUnknown) as caught:
        await client.add_shipment(1, {"tracking_number": "1Z999", "carrier_code": "UPS"})
    assert caught.value.answered is answered and caught.value.retryable is False
    assert len(od.calls(mocked, "POST", "/orders/1/shipments")) == 1
    assert od.calls(mocked, "GET", "/orders/1/shipments") == []


@pytest.mark.parametrize(
    ("fault", "answered"),
    [({"status": 504, "body": "gateway timeout"}, False), ({"status": 502, "body": "bad gateway"}, True)],
)
async def test_an_inventory_create_is_sent_once_and_an_unclear_answer_is_outcome_unknown(
    client: Any, mocked: Any, od: Any, fault: dict[str, Any], answered: bool
) -> None:
    # the route confirms it by its SKU on a re-read
    mocked.post(od.url("/inventory-items"), **fault)
    with pytest.raises(OutcomeUnknown) as caught:
        await client.create_inventory_item({"name": "Three Wolves", "code": "3wolf-XX", "price": 11})
    assert caught.value.answered is answered
    assert len(od.calls(mocked, "POST", "/inventory-items")) == 1
    assert od.calls(mocked, "GET", "/inventory-items") == []


async def test_find_inventory_item_matches_the_sku_exactly(client: Any, mocked: Any, od: Any) -> None:
    items = [{"id": "2511", "code": "3wolf-XXL"}, {"id": 2512, "code": "3wolf-XX"}]
    mocked.get(
        re.compile(re.escape(od.url("/inventory-items")) + r"\?.*"), payload=od.ok(inventory_items=items)
    )
    found = await client.find_inventory_item("3wolf-XX")
    assert found is not None and found["code"] == "3wolf-XX" and str(found["id"]) == "2512"
    (lookup,) = od.calls(mocked, "GET", "/inventory-items")
    assert lookup.kwargs["params"]["code"] == "3wolf-XX"
