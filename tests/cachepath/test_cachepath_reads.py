"""Issue 5: the read-through cache as tools see it, on both backends (memory and the shared Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from odmcp.http import build_http_app
from odmcp.middleware import error_of
from odmcp.refs import Ref
from odmcp.testing import connect

#: the shared Redis; a generous op timeout, so a busy machine does not turn these tests into fail-open ones
REDIS = {"cache.backend": "redis", "cache.redis_url": "redis://127.0.0.1:6379/0", "cache.op_timeout": 2.0}
BACKENDS = pytest.mark.parametrize("cache_overrides", [{}, REDIS], ids=["memory", "redis"])


def order_gets(sandbox: Any, oid: str) -> int:
    return len(sandbox.requests(method="GET", path_regex=rf"^/orders/{oid}$"))


def list_gets(sandbox: Any) -> int:
    """Order list pages loaded (a create's own search by its source_id, inside its lock, is not one)."""
    return len(
        [r for r in sandbox.requests(method="GET", path_regex=r"^/orders$") if "source_id" not in r.query]
    )


@BACKENDS
@pytest.mark.sandbox(latency_ms=30)
async def test_single_flight_100_concurrent_gets_make_one_upstream_get(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    gw = gateway_factory(overrides=cache_overrides)
    async with connect(gw) as client:
        results = await asyncio.gather(
            *(client.call_tool("orders_get", {"order_id": oid}) for _ in range(100))
        )
    assert all(not r.is_error for r in results)
    assert {r.structured_content["order"]["id"] for r in results} == {oid}
    assert order_gets(orderdesk_sandbox, oid) == 1
    assert gw.metrics.value("cache_loads_total") == 1
    assert gw.metrics.value("cache_upstream_saved_total") == 99


@BACKENDS
async def test_single_flight_waves_of_gets_make_one_upstream_get(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    """Callers that arrive while the first load is being stored must not start a second load."""
    oid = str(orderdesk_sandbox.orders()[1]["id"])
    gw = gateway_factory(overrides=cache_overrides)
    async with connect(gw) as client:

        async def get_after(delay_steps: int) -> Any:
            for _ in range(delay_steps):
                await asyncio.sleep(0)
            return await client.call_tool("orders_get", {"order_id": oid})

        results = await asyncio.gather(*(get_after(n) for n in range(200)))
    assert all(not r.is_error for r in results)
    assert order_gets(orderdesk_sandbox, oid) == 1


@BACKENDS
async def test_update_invalidates_only_that_order(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    a, b = (str(o["id"]) for o in orderdesk_sandbox.orders()[:2])
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        await client.call_tool("orders_get", {"order_id": a})
        await client.call_tool("orders_get", {"order_id": b})
        assert (order_gets(orderdesk_sandbox, a), order_gets(orderdesk_sandbox, b)) == (1, 1)
        r = await client.call_tool(
            "orders_update", {"order_id": a, "changes": {"order_metadata": {"new": "data"}}}
        )
        assert not r.is_error
        got_a = await client.call_tool("orders_get", {"order_id": a})
        got_b = await client.call_tool("orders_get", {"order_id": b})
        # an edit made behind the gateway's back shows that A is not served stale from before the update
        # (the workflow's fresh write-through is) while B stays cached
        orderdesk_sandbox.edit_order(orderdesk_sandbox.store_id, b, {"email": "changed@example.com"})
        got_b_again = await client.call_tool("orders_get", {"order_id": b})
    assert got_a.structured_content["order"]["order_metadata"]["new"] == "data"
    assert not got_b.is_error
    assert order_gets(orderdesk_sandbox, b) == 1  # B never went upstream again
    assert got_b_again.structured_content["order"] == got_b.structured_content["order"]


@BACKENDS
async def test_create_bumps_the_list_generation(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    order = {
        "order_items": [{"name": "Widget", "price": 3, "quantity": 1}],
        "shipping": {"first_name": "Grace", "last_name": "Hopper"},
    }
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        first = await client.call_tool("orders_list", {"limit": 500})
        cached = await client.call_tool("orders_list", {"limit": 500})
        assert list_gets(orderdesk_sandbox) == 1  # the second list came from the cache
        assert cached.structured_content == first.structured_content
        created = await client.call_tool("orders_create", {"order": order})
        assert not created.is_error, created.structured_content
        after = await client.call_tool("orders_list", {"limit": 500})
        again = await client.call_tool("orders_list", {"limit": 500})
    new_id = created.structured_content["order"]["id"]
    assert after.structured_content["total_records"] == first.structured_content["total_records"] + 1
    assert new_id in {o["id"] for o in after.structured_content["orders"]}
    assert new_id not in {o["id"] for o in first.structured_content["orders"]}
    assert list_gets(orderdesk_sandbox) == 2  # one reload after the create, then cached again
    assert again.structured_content == after.structured_content


@BACKENDS
async def test_update_and_delete_refresh_lists(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    a, b = (str(o["id"]) for o in orderdesk_sandbox.orders()[:2])
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        await client.call_tool("orders_list", {"limit": 500})
        await client.call_tool(
            "orders_update", {"order_id": a, "changes": {"order_metadata": {"listed": "yes"}}}
        )
        updated = await client.call_tool("orders_list", {"limit": 500, "fields": "full"})
        await client.call_tool("orders_delete", {"order_id": b, "confirm": True})
        deleted = await client.call_tool("orders_list", {"limit": 500})
    by_id = {o["id"]: o for o in updated.structured_content["orders"]}
    assert by_id[a]["order_metadata"]["listed"] == "yes"
    assert b not in {o["id"] for o in deleted.structured_content["orders"]}
    assert list_gets(orderdesk_sandbox) == 3


@BACKENDS
async def test_returned_orders_are_private_copies(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    gw = gateway_factory(overrides=cache_overrides)
    ref = Ref("demo", "order", oid)
    async with connect(gw):
        first, joined = await asyncio.gather(gw.workflow.read(ref), gw.workflow.read(ref))  # loader + waiter
        pristine = orderdesk_sandbox.order(oid)
        for got in (first, joined):
            got["email"] = "mutated@example.com"
            got["order_items"].clear()
            got["shipping"]["city"] = "Nowhere"
        second = await gw.workflow.read(ref)
        second["order_metadata"] = {"poisoned": True}
        third = await gw.workflow.read(ref)
    assert order_gets(orderdesk_sandbox, oid) == 1  # all but the first read were cache hits
    for got in (second, third):
        assert got["email"] == pristine["email"]
        assert len(got["order_items"]) == len(pristine["order_items"])
        assert got["shipping"]["city"] == pristine["shipping"]["city"]
    assert third["order_metadata"] != {"poisoned": True}


async def test_memory_cache_lru_bound_holds(orderdesk_sandbox: Any, gateway_factory: Any) -> None:
    ids = [str(o["id"]) for o in orderdesk_sandbox.orders()[:30]]
    gw = gateway_factory(overrides={"cache.max_entries": 10})
    async with connect(gw) as client:
        for oid in ids:
            r = await client.call_tool("orders_get", {"order_id": oid})
            assert not r.is_error
            assert gw.cache is not None and len(gw.cache.backend) <= 10
        assert len(gw.cache.backend) == 10  # the bound is reached, so entries are really being kept
        for oid in ids[-10:]:  # the 10 most recent are still cached ...
            await client.call_tool("orders_get", {"order_id": oid})
        assert all(order_gets(orderdesk_sandbox, oid) == 1 for oid in ids)
        await client.call_tool("orders_get", {"order_id": ids[0]})  # ... the oldest was evicted
        assert order_gets(orderdesk_sandbox, ids[0]) == 2
        assert len(gw.cache.backend) <= 10


@BACKENDS
async def test_metrics_count_and_render(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    a, b = (str(o["id"]) for o in orderdesk_sandbox.orders()[:2])
    gw = gateway_factory(overrides=cache_overrides)
    async with connect(gw) as client:
        for oid in (a, a, a, b):
            await client.call_tool("orders_get", {"order_id": oid})
        await client.call_tool("orders_update", {"order_id": b, "changes": {"order_metadata": {"m": "1"}}})
    assert gw.metrics.value("cache_hits_total") == 2
    assert gw.metrics.value("cache_misses_total") == 2
    assert gw.metrics.value("cache_upstream_saved_total") == 2
    assert gw.metrics.value("cache_invalidations_total") >= 2  # order b and the order lists

    app = build_http_app(gw, "127.0.0.1", 8765)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
    ) as http:
        resp = await http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in resp.text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples["mcpgw_cache_hits_total"] == 2
    assert samples["mcpgw_cache_misses_total"] == 2
    assert samples["mcpgw_cache_invalidations_total"] >= 2
    assert "# TYPE mcpgw_cache_hits_total counter" in resp.text


async def wait_fired(rule: Any, times: int = 1) -> None:
    """Wait until the sandbox fault ``rule`` has fired (the request reached the sandbox)."""
    async with asyncio.timeout(5):
        while rule.fired < times:  # noqa: ASYNC110 - the sandbox offers no event for this
            await asyncio.sleep(0.002)


@BACKENDS
async def test_no_stale_read_from_a_load_that_started_before_a_delete(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    """A read in flight when the order is deleted must neither be joined by later readers nor cached."""
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    slow = orderdesk_sandbox.add_fault(
        method="GET", path=rf"^/orders/{oid}$", times=1, delay_ms=800, after_apply=True, name="slow-read"
    )
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        early = asyncio.create_task(client.call_tool("orders_get", {"order_id": oid}))
        await wait_fired(slow)  # the sandbox has read the order; its answer is delayed
        deleted = await client.call_tool("orders_delete", {"order_id": oid, "confirm": True})
        assert not deleted.is_error, deleted.structured_content
        late = await client.call_tool("orders_get", {"order_id": oid})
        assert not early.done()  # the early read really was still in flight
        early_result = await early
        later = await client.call_tool("orders_get", {"order_id": oid})
    assert not early_result.is_error  # it began before the delete, so it may show the order
    assert error_of(late)["code"] == "NOT_FOUND"
    assert error_of(later)["code"] == "NOT_FOUND"
