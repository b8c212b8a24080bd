"""Who may see and revert which changes (issue 24): a caller sees and reverts only its own changes
unless its token grants ``changes:all``; a read-only caller lists its own and reverts nothing; ``force``
is refused to read-only and store-limited callers. Real HTTP with per-caller bearer tokens."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.middleware import error_of
from odmcp.testing import serve_http

TOKENS = [
    {"name": "alice", "token": "alice-token-0123456789"},
    {"name": "bob", "token": "bob-token-0123456789"},
    {"name": "limited", "token": "limited-token-0123456789", "stores": ["demo"]},
    {"name": "reader", "token": "reader-token-0123456789", "read_only": True},
    {"name": "owner", "token": "owner-token-0123456789", "grants": ["changes:all"]},
]


@contextlib.asynccontextmanager
async def _as(base: str, who: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {who}-token-0123456789"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


async def test_callers_see_and_revert_only_their_own_unless_granted(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    sb = orderdesk_sandbox
    start = {oid: sb.order(oid)["email"] for oid in ("200011", "200012", "200013")}
    gw = gateway_factory(overrides={"http.tokens": TOKENS})
    async with serve_http(gw) as base:
        for who, oid in (("alice", "200011"), ("bob", "200012"), ("limited", "200013")):
            async with _as(base, who) as c:
                _ok(
                    await c.call_tool(
                        "orders_update", {"order_id": oid, "changes": {"email": f"{who}@x.com"}}
                    )
                )
        async with _as(base, "alice") as c:
            mine = _ok(await c.call_tool("changes_list", {}))["changes"]
            others = error_of(await c.call_tool("changes_list", {"caller": "bob"}))
        async with _as(base, "owner") as c:
            everyone = _ok(await c.call_tool("changes_list", {}))["changes"]
            bobs = _ok(await c.call_tool("changes_list", {"caller": "bob"}))["changes"]
        ids = {e["caller"]: e["change_id"] for e in everyone}
        async with _as(base, "alice") as c:
            not_hers = error_of(await c.call_tool("changes_revert", {"change_id": ids["bob"]}))
        async with _as(base, "reader") as c:
            listed = _ok(await c.call_tool("changes_list", {}))["changes"]
            refused = error_of(await c.call_tool("changes_revert", {"change_id": ids["alice"]}))
        async with _as(base, "limited") as c:
            no_force = error_of(
                await c.call_tool("changes_revert", {"change_id": ids["limited"], "force": True})
            )
            _ok(await c.call_tool("changes_revert", {"change_id": ids["limited"]}))
        async with _as(base, "owner") as c:
            _ok(await c.call_tool("changes_revert", {"change_id": ids["bob"], "force": True}))
    assert [e["caller"] for e in mine] == ["alice"] and others["code"] == "AUTH"
    assert {e["caller"] for e in everyone} == {"alice", "bob", "limited"}
    assert [e["caller"] for e in bobs] == ["bob"]
    assert not_hers["code"] == "NOT_FOUND"
    assert listed == [] and refused["code"] in ("AUTH", "READ_ONLY")
    assert no_force["code"] == "AUTH" and "force" in no_force["message"]
    assert sb.order("200011")["email"] == "alice@x.com"  # nobody reverted alice's
    assert sb.order("200012")["email"] == start["200012"]  # the owner reverted bob's
    assert sb.order("200013")["email"] == start["200013"]  # limited reverted its own
