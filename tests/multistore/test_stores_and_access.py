"""Several stores in one gateway, per-caller tokens over HTTP, and live invalidation by webhook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.middleware import error_of
from odmcp.testing import connect, serve_http
from odmcp_orderdesk.webhook import sign

pytestmark = pytest.mark.sandbox(multi_store=True)


@contextlib.asynccontextmanager
async def http_client(base: str, token: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


def first_order_id(sandbox: Any, store_id: str) -> str:
    return str(sandbox.orders(store_id)[0]["id"])


async def test_store_argument_routes_calls_and_data_stays_separate(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    a_id = first_order_id(orderdesk_sandbox, "1001")
    b_id = first_order_id(orderdesk_sandbox, "2002")
    async with connect(gateway_factory()) as client:
        a = await client.call_tool("orders_get", {"order_id": a_id})
        b = await client.call_tool("orders_get", {"order_id": b_id, "store": "store2"})
        a_in_b = await client.call_tool("orders_get", {"order_id": a_id, "store": "store2"})
        unknown = await client.call_tool("orders_get", {"order_id": a_id, "store": "nope"})
        listed = await client.call_tool("stores_list", {})
    assert a.structured_content["order"]["id"] == a_id and b.structured_content["order"]["id"] == b_id
    # a's cached entry is never served for store2: the request went to store 2002 upstream
    assert a_in_b.is_error and error_of(a_in_b)["code"] == "NOT_FOUND"
    assert [r.store_id for r in orderdesk_sandbox.requests(path_prefix=f"/orders/{a_id}")] == ["1001", "2002"]
    assert error_of(unknown)["code"] == "VALIDATION"
    assert "stores you may use: demo, store2" in error_of(unknown)["message"]
    stores = listed.structured_content["stores"]
    assert [s["name"] for s in stores] == ["demo", "store2"] and stores[0]["default"] is True
    assert stores[1]["folders"] == {"21": "New", "22": "Prepared", "23": "Closed", "24": "Canceled"}
    assert "sandbox-key" not in json.dumps(listed.structured_content)


async def test_tokens_are_limited_to_their_stores_and_writes(
    gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Any
) -> None:
    tokens = [
        {"name": "only-a", "token": "tok-a-123456", "stores": ["demo"]},
        {"name": "reader", "token": "tok-r-123456", "read_only": True},
    ]
    gw = gateway_factory(overrides={"http.tokens": tokens})
    b_id = first_order_id(orderdesk_sandbox, "2002")
    a_id = first_order_id(orderdesk_sandbox, "1001")
    async with serve_http(gw) as base:
        async with http_client(base, "tok-a-123456") as client:
            ok = await client.call_tool("orders_get", {"order_id": a_id})
            refused = await client.call_tool("orders_get", {"order_id": b_id, "store": "store2"})
        async with http_client(base, "tok-r-123456") as client:
            read = await client.call_tool("orders_get", {"order_id": b_id, "store": "store2"})
            write = await client.call_tool(
                "orders_update", {"order_id": a_id, "changes": {"email": "a@b.co"}}
            )
    assert not ok.is_error and not read.is_error
    assert error_of(refused)["code"] == "AUTH"
    assert "token 'only-a' may not use store 'store2'" in error_of(refused)["message"]
    assert error_of(write)["code"] == "AUTH" and "read-only" in write.content[0].text
    assert orderdesk_sandbox.requests(method="PUT") == []
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["principal"] == "reader" and audit[-1]["outcome"] == "denied:AUTH"
    assert "tok-" not in (tmp_path / "audit.jsonl").read_text()


def webhook_body(order: dict[str, Any]) -> tuple[bytes, str]:
    order_json = json.dumps(order)
    return urlencode({"order": order_json}).encode(), order_json


async def test_webhook_verifies_signature_then_invalidates(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(
        overrides={"http.max_body_bytes": 50_000, "orderdesk": {"webhook_caches_order": True}}
    )
    oid = first_order_id(orderdesk_sandbox, "1001")
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        before = (await client.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
        # a later state of the order (OrderDesk stamps each change's date_updated)
        changed = {**before, "email": "webhook@example.com", "date_updated": "2099-01-01 00:00:00"}
        body, order_json = webhook_body(changed)
        form = {"Content-Type": "application/x-www-form-urlencoded", "X-Order-Desk-Store-Id": "1001"}
        bad = {**form, "X-Order-Desk-Hash": sign(order_json, "wrong-key")}
        async with http.post(base + "/webhooks/orderdesk", data=body, headers=bad) as r:
            assert r.status == 403 and (await r.json())["message"] == "Unauthorized Request"
        cached = (await client.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
        assert cached["email"] == before["email"]  # a bad signature changed nothing
        async with http.post(base + "/webhooks/orderdesk", data=b"nothing=1", headers=form) as r:
            assert r.status == 400 and (await r.json())["message"] == "No Data Found"
        big = urlencode({"order": "x" * 60_000}).encode()
        async with http.post(base + "/webhooks/orderdesk", data=big, headers=form) as r:
            assert r.status == 413
        good = {**form, "X-Order-Desk-Hash": sign(order_json, "sandbox-key")}
        async with http.post(base + "/webhooks/orderdesk", data=body, headers=good) as r:
            assert r.status == 200
        gets = len(orderdesk_sandbox.requests(method="GET", path_prefix=f"/orders/{oid}"))
        after = (await client.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
    assert after["email"] == "webhook@example.com"  # the posted order is the fresh cached value
    assert len(orderdesk_sandbox.requests(method="GET", path_prefix=f"/orders/{oid}")) == gets
    assert gw.metrics.value("webhook_posts_total", result="bad_signature") == 1
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="yes") == 1


async def test_ui_change_posted_by_orderdesk_reaches_every_replica_within_a_second(
    gateway_factory: Any, orderdesk_sandbox: Any, redis_url: str
) -> None:
    shared = {
        "cache.backend": "redis",
        "cache.redis_url": redis_url,
        "cache.prefix": f"test-wh-{time.time_ns()}",
    }
    replica_a, replica_b = gateway_factory(overrides=shared), gateway_factory(overrides=shared)
    oid = first_order_id(orderdesk_sandbox, "1001")
    async with serve_http(replica_a) as base_a, connect(replica_a) as a, connect(replica_b) as b:
        assert not (await b.call_tool("orders_get", {"order_id": oid})).is_error  # cached on Redis
        orderdesk_sandbox.config.webhook_url = base_a + "/webhooks/orderdesk"
        orderdesk_sandbox.edit_order("1001", oid, {"email": "from-the-ui@example.com"})
        t0 = time.monotonic()
        while True:
            got = (await b.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
            if got["email"] == "from-the-ui@example.com" or time.monotonic() - t0 > 1.0:
                break
            await asyncio.sleep(0.02)
        assert got["email"] == "from-the-ui@example.com", "replica B still serves the stale order after 1 s"
        assert (await a.call_tool("orders_get", {"order_id": oid})).structured_content["order"]["email"] == (
            "from-the-ui@example.com"
        )


async def test_webhook_posts_never_replace_a_newer_cached_order(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(overrides={"orderdesk": {"webhook_caches_order": True}})
    oid = first_order_id(orderdesk_sandbox, "1001")
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        current = (await client.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
        stale = {**current, "email": "old@example.com", "date_updated": "2001-01-01 00:00:00"}
        body, order_json = webhook_body(stale)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Order-Desk-Store-Id": "1001",
            "X-Order-Desk-Hash": sign(order_json, "sandbox-key"),
        }
        async with http.post(base + "/webhooks/orderdesk", data=body, headers=headers) as r:
            assert r.status == 200
        after = (await client.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
        weird = {**headers, "X-Order-Desk-Hash": "\u00e9" * 64}
        async with http.post(base + "/webhooks/orderdesk", data=body, headers=weird) as r:
            assert r.status == 403
    assert after["email"] == current["email"]  # refetched from upstream, not the late post


async def test_by_default_a_webhook_post_only_invalidates(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory()
    oid = first_order_id(orderdesk_sandbox, "1001")
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        await client.call_tool("orders_get", {"order_id": oid})
        orderdesk_sandbox.state.store("1001").orders[oid]["email"] = "upstream@example.com"
        posted = {**orderdesk_sandbox.order(oid), "email": "posted@example.com"}
        body, order_json = webhook_body(posted)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Order-Desk-Store-Id": "1001",
            "X-Order-Desk-Hash": sign(order_json, "sandbox-key"),
        }
        async with http.post(base + "/webhooks/orderdesk", data=body, headers=headers) as r:
            assert r.status == 200
        after = (await client.call_tool("orders_get", {"order_id": oid})).structured_content["order"]
    assert after["email"] == "upstream@example.com"  # the truth comes from OrderDesk, not the post


async def test_stores_list_shows_only_the_stores_a_token_may_use(gateway_factory: Any) -> None:
    gw = gateway_factory(
        overrides={"http.tokens": [{"name": "only-b", "token": "tok-b-123456", "stores": ["store2"]}]}
    )
    async with serve_http(gw) as base, http_client(base, "tok-b-123456") as client:
        listed = await client.call_tool("stores_list", {})
        ping = await client.call_tool("gateway_ping", {})
        default_store = await client.call_tool("store_get", {})
    assert [s["name"] for s in listed.structured_content["stores"]] == ["store2"]
    assert not ping.is_error and ping.structured_content["stores"] == ["store2"]  # filtered like stores_list
    # the configured default store is not granted: the token's default is its first granted store
    assert not default_store.is_error
    assert [s["default"] for s in listed.structured_content["stores"]] == [True]
    assert default_store.structured_content["store"]["id"] == gw.config.store("store2").store_id
