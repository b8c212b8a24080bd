"""Upstream trouble seen through the MCP tools, over real HTTP to the sandbox: 429, 5xx, timeouts."""

from __future__ import annotations

from typing import Any

from gateway.middleware import error_of
from gateway.testing import connect

NEW_ORDER = {
    "source_id": "fault-create-1",
    "shipping": {"first_name": "Ada", "last_name": "Lovelace", "address1": "1 Main St", "city": "London"},
    "order_items": [{"name": "Engine", "code": "E-1", "price": 100, "quantity": 1}],
}


async def test_429_is_waited_out_and_retried(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200001$", status=429, retry_after=0, times=2)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_get", {"order_id": "200001"})
    assert not result.is_error
    assert [r.status for r in orderdesk_sandbox.requests(path_prefix="/orders/200001")] == [429, 429, 200]


async def test_5xx_on_a_read_is_retried(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200002$", status=503, times=2)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_get", {"order_id": "200002"})
    assert not result.is_error
    assert [r.status for r in orderdesk_sandbox.requests(path_prefix="/orders/200002")] == [503, 503, 200]


async def test_persistent_5xx_becomes_a_clear_upstream_error(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200003$", status=500)
    async with connect(gateway_factory(overrides={"orderdesk": {"max_retries": 2}})) as c:
        result = await c.call_tool("orders_get", {"order_id": "200003"})
    assert error_of(result)["code"] == "UPSTREAM"
    assert error_of(result)["retryable"] is True
    assert len(orderdesk_sandbox.requests(path_prefix="/orders/200003")) == 3  # 1 + 2 retries


async def test_a_create_that_timed_out_after_it_was_applied_is_not_created_twice(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    # the order is stored upstream, then the answer never comes in time
    orderdesk_sandbox.add_fault(method="POST", path=r"^/orders$", after_apply=True, delay_ms=2000, times=1)
    gw = gateway_factory(overrides={"orderdesk": {"request_timeout": 0.5}})
    async with connect(gw) as c:
        result = await c.call_tool("orders_create", {"order": NEW_ORDER})
    assert not result.is_error, result.content[0].text
    mine = [o for o in orderdesk_sandbox.orders() if o["source_id"] == "fault-create-1"]
    assert len(mine) == 1 and result.structured_content["order"]["id"] == mine[0]["id"]
    # instead of re-sending the POST, the client looked the order up by its source_id
    lookups = [
        r for r in orderdesk_sandbox.requests(method="GET") if r.query.get("source_id") == "fault-create-1"
    ]
    assert lookups


async def test_malformed_json_on_a_read_is_retried(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200004$", malformed_json=True, times=1)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_get", {"order_id": "200004"})
    assert not result.is_error and result.structured_content["order"]["id"] == "200004"
