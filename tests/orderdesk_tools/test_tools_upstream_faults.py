"""Upstream trouble seen through the MCP tools, over real HTTP to the sandbox: 429, 5xx, timeouts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.testing import connect

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
    # instead of re-sending the POST, the write route looked the order up by its source_id
    lookups = [
        r for r in orderdesk_sandbox.requests(method="GET") if r.query.get("source_id") == "fault-create-1"
    ]
    assert lookups


async def test_malformed_json_on_a_read_is_retried(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200004$", malformed_json=True, times=1)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_get", {"order_id": "200004"})
    assert not result.is_error and result.structured_content["order"]["id"] == "200004"


async def test_a_put_applied_then_answered_502_is_reconciled_not_applied_twice(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    # the PUT is applied but answered 502: the gateway re-reads instead of sending it again
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/200005$", after_apply=True, status=502, times=1)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(
            "orders_update",
            {"order_id": "200005", "changes": {"order_items": [{"name": "NEW", "quantity": 1}]}},
        )
        assert not result.is_error, result.content[0].text
        assert result.structured_content["reconciled"] is True
        names = [i["name"] for i in orderdesk_sandbox.order("200005")["order_items"]]
        assert names.count("NEW") == 1  # applied once, not merged and uploaded a second time
        again = await c.call_tool("orders_get", {"order_id": "200005"})
    assert [i["name"] for i in again.structured_content["order"]["order_items"]].count("NEW") == 1
    assert len(orderdesk_sandbox.requests(method="PUT", path_prefix="/orders/200005")) == 1


@pytest.mark.sandbox(rate_limit_enabled=True)
async def test_an_absurd_retry_after_does_not_block_the_store(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200006$", status=429, retry_after=3600, times=1)
    async with connect(gateway_factory(overrides={"orderdesk": {"max_retry_after": 1.0}})) as c:
        limited = await c.call_tool("orders_get", {"order_id": "200006"})
        t0 = time.monotonic()
        other = await asyncio.wait_for(c.call_tool("orders_get", {"order_id": "200007"}), 60)
        waited = time.monotonic() - t0
    assert error_of(limited)["code"] == "RATE_LIMITED"
    assert not other.is_error and waited <= 1.8  # at most max_retry_after (1 s here), never the hour asked


async def test_no_call_waits_on_orderdesk_past_the_deadline(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200008$", delay_ms=3000)
    gw = gateway_factory(overrides={"orderdesk": {"deadline": 0.5, "request_timeout": 5.0}})
    async with connect(gw) as c:
        t0 = time.monotonic()
        result = await c.call_tool("orders_get", {"order_id": "200008"})
        took = time.monotonic() - t0
    assert error_of(result)["code"] == "UPSTREAM" and "gave up after 0.5 s" in error_of(result)["message"]
    assert took < 2.0


async def test_a_write_never_outlives_mutations_write_deadline(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """The lock's fence counts on it: a write is cut at ``mutations.write_deadline`` when that is
    shorter than ``orderdesk.deadline`` (reads keep the longer one)."""
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/200009$", delay_ms=3000)
    gw = gateway_factory(
        overrides={"orderdesk": {"deadline": 5.0, "request_timeout": 5.0}, "mutations.write_deadline": 0.5}
    )
    async with connect(gw) as c:
        t0 = time.monotonic()
        result = await c.call_tool("orders_update", {"order_id": "200009", "changes": {"email": "w@x.co"}})
        took = time.monotonic() - t0
    assert error_of(result)["code"] == "OUTCOME_UNKNOWN", error_of(result)
    assert "no answer within 0.5 s" in error_of(result)["message"]
    assert took < 2.5  # not the 3 s the PUT was held, nor the 5 s orderdesk.deadline
