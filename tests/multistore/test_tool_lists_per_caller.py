"""Issue 14: over HTTP, each token's tools/list shows only what it may call (read-only tokens see no
write tool; a store-limited token sees `store` with only its stores), and calls stay checked as before."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.middleware import error_of
from odmcp.testing import serve_http

pytestmark = pytest.mark.sandbox(multi_store=True)
TOKENS = [
    {"name": "reader", "token": "tok-reader-123456", "read_only": True},
    {"name": "store2-only", "token": "tok-store2-123456", "stores": ["store2"]},
    {"name": "demo-only", "token": "tok-demo-123456", "stores": ["demo"]},
]


@contextlib.asynccontextmanager
async def http_client(base: str, token: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


def store_schemas(listed: Any) -> list[Any]:
    return [t.input_schema["properties"].get("store") for t in listed.tools if t.name != "stores_list"]


async def test_each_token_sees_only_what_it_may_call(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    gw = gateway_factory(overrides={"http.tokens": TOKENS})
    a_id = str(orderdesk_sandbox.orders("1001")[0]["id"])
    b_id = str(orderdesk_sandbox.orders("2002")[0]["id"])
    async with serve_http(gw) as base:
        async with http_client(base, "tok-reader-123456") as c:
            reader = await c.list_tools()
            # hidden is not the same as allowed: the call is refused exactly as before
            write = await c.call_tool("orders_update", {"order_id": a_id, "changes": {"email": "r@e.ad"}})
        async with http_client(base, "tok-store2-123456") as c:
            store2 = await c.list_tools()
            mine = await c.call_tool("orders_get", {"order_id": b_id, "store": "store2"})
            # its default store is its first granted store, so omitting store means store2
            default = await c.call_tool("orders_get", {"order_id": b_id})
            named = await c.call_tool("orders_get", {"order_id": a_id, "store": "demo"})
        async with http_client(base, "tok-demo-123456") as c:
            demo = await c.list_tools()
            other = await c.call_tool("orders_get", {"order_id": b_id, "store": "store2"})
    reader_names = {t.name for t in reader.tools}
    assert reader_names and all(t.annotations.read_only_hint for t in reader.tools)
    assert "orders_update" not in reader_names and "orders_get" in reader_names
    assert len(store2.tools) == len(demo.tools) == 26 > len(reader.tools)
    # the reader may use both stores; the store-limited tokens see only theirs
    assert {str(s) for s in store_schemas(reader) if s is not None} == {
        str({"type": "string", "enum": ["demo", "store2"], "default": "demo"})
    }
    # the store-limited token has one store, its default: nothing to choose, as for demo
    assert store_schemas(store2) == [None] * 25
    assert store_schemas(demo) == [None] * 25  # its one store is the default: nothing to choose
    assert "store2" not in str([t.model_dump() for t in demo.tools])
    assert error_of(write)["code"] == "AUTH" and "read-only" in write.content[0].text
    assert not mine.is_error
    assert not default.is_error and default.structured_content["order"]["id"] == b_id
    assert error_of(named)["code"] == "AUTH" and "may not use store 'demo'" in named.content[0].text
    assert error_of(other)["code"] == "AUTH"
    assert orderdesk_sandbox.requests(method="PUT") == []
