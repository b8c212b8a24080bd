"""Legacy session floods: one token can't take every session, idle sessions end, a revoked token's end.

Raw ``initialize`` POSTs (what a misbehaving client or a script sends) over real HTTP on loopback,
while a well-behaved client with another token keeps working through the MCP SDK's ``Client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import serve_http, serve_process

ALICE, BOB = "tok-alice-0123456789", "tok-bob-0123456789"
TOKENS = [{"name": "alice", "token": ALICE}, {"name": "bob", "token": BOB}]
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "flood", "version": "0"},
    },
}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def initialize(http: aiohttp.ClientSession, base: str, token: str) -> tuple[int, str | None, str]:
    """One raw initialize: (status, session id, body)."""
    async with http.post(
        base + "/mcp", data=json.dumps(INIT), headers={**HEADERS, "Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, r.headers.get("mcp-session-id"), await r.text()


async def in_session(
    http: aiohttp.ClientSession, base: str, token: str, sid: str, method: str = "POST"
) -> int:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    headers = {
        **HEADERS,
        "Authorization": f"Bearer {token}",
        "mcp-session-id": sid,
        "mcp-protocol-version": "2025-11-25",
    }
    async with http.request(method, base + "/mcp", data=json.dumps(ping), headers=headers) as r:
        await r.read()
        return r.status


@contextlib.asynccontextmanager
async def legacy_client(base: str, token: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http), mode="legacy") as client:
        yield client


async def test_one_token_flooding_sessions_does_not_lock_out_another(
    gateway_factory, orderdesk_sandbox
) -> None:
    gw = gateway_factory(
        overrides={
            "http.tokens": TOKENS,
            "http.max_sessions": 50,
            "http.max_sessions_per_token": 5,
            "http.session_idle_timeout": 1.5,
        }
    )
    order_id = orderdesk_sandbox.orders()[0]["id"]
    async with serve_http(gw) as base, aiohttp.ClientSession() as http:
        flood = await asyncio.gather(*(initialize(http, base, ALICE) for _ in range(40)))
        opened = [sid for status, sid, _ in flood if status == 200]
        refused = [body for status, _, body in flood if status == 429]
        assert len(opened) == 5 and len(refused) == 35, [s for s, _, _ in flood]
        message = json.loads(refused[0])["error"]["message"]
        assert message.startswith("RATE_LIMITED: token 'alice' already has 5 open sessions")
        assert "DELETE" in message and ALICE not in message

        # bob is unaffected: a real legacy client, while alice is at her cap
        async with legacy_client(base, BOB) as bob:
            result = await bob.call_tool("orders_get", {"order_id": order_id})
            assert not result.is_error and result.structured_content["order"]["id"] == order_id
            # a session belongs to the token that opened it: bob can't use (or free) alice's
            assert await in_session(http, base, BOB, opened[0]) == 404
            assert (await initialize(http, base, ALICE))[0] == 429

            # ending one of her own sessions gives alice exactly one back
            assert await in_session(http, base, ALICE, opened[0], method="DELETE") == 200
            assert await in_session(http, base, ALICE, opened[0]) == 404
            again = [await initialize(http, base, ALICE) for _ in range(2)]
            assert [s for s, _, _ in again] == [200, 429]

            # sessions left idle end (1.5 s here, + 0.5 s before the table forgets them), and free their slots
            await asyncio.sleep(2.5)
            assert await in_session(http, base, ALICE, opened[1]) == 404
            assert [(await initialize(http, base, ALICE))[0] for _ in range(6)] == [200] * 5 + [429]
            result = await bob.call_tool("orders_get", {"order_id": order_id})  # bob kept his session busy
            assert not result.is_error
        assert gw.metrics.value("http_refused_total", reason="sessions_per_token") >= 37


def _config(path: Path, base_url: str, tokens: list[dict[str, str]]) -> None:
    lines = ["[http]", "max_sessions_per_token = 3"]
    for t in tokens:
        lines += ["[[http.tokens]]", f'name = "{t["name"]}"', f'token = "{t["token"]}"']
    lines += [
        "[[stores]]",
        'name = "demo"',
        'store_id = "1001"',
        'api_key = "sandbox-key"',
        f'base_url = "{base_url}"',
        "default = true",
    ]
    path.write_text("\n".join(lines) + "\n")


async def test_removing_a_token_from_the_config_ends_its_sessions(orderdesk_sandbox, tmp_path) -> None:
    """``serve`` re-reads the tokens on SIGHUP: a removed token is refused and its sessions end."""
    cfg = tmp_path / "gw.toml"
    _config(cfg, orderdesk_sandbox.base_url, TOKENS)
    async with serve_process(cfg) as server, aiohttp.ClientSession() as http:
        base, proc = server.url, server.proc
        alice = [(await initialize(http, base, ALICE))[1] for _ in range(3)]
        bob = (await initialize(http, base, BOB))[1]
        assert None not in alice and bob is not None
        assert (await initialize(http, base, ALICE))[0] == 429

        async def reload(tokens: list[dict[str, str]]) -> None:
            _config(cfg, orderdesk_sandbox.base_url, tokens)
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)

        await reload(TOKENS[1:])  # alice removed
        assert (await initialize(http, base, ALICE))[0] == 401
        assert await in_session(http, base, ALICE, alice[0]) == 401
        assert await in_session(http, base, BOB, bob) == 200  # bob's session goes on

        await reload(TOKENS)  # alice is back: her old sessions did end, and her slots are free
        assert [await in_session(http, base, ALICE, sid) for sid in alice] == [404, 404, 404]
        assert [(await initialize(http, base, ALICE))[0] for _ in range(4)] == [200, 200, 200, 429]

        cfg.write_text("[http\n")  # a broken file changes nothing
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert await in_session(http, base, BOB, bob) == 200
    stderr = server.stderr()
    assert "config reloaded: 1 token(s) accepted, 3 session(s) ended" in stderr, stderr
    assert "config reload failed, tokens unchanged" in stderr and "Traceback" not in stderr
    assert ALICE not in stderr and BOB not in stderr


def _tricks() -> list[tuple[str, list[tuple[str, str]], Any]]:
    """(what, extra headers, body) of initialize requests that try to open a session uncounted."""
    v1, v2 = "2025-11-25", "2026-07-28"
    init_2026 = {**INIT, "params": {**INIT["params"], "protocolVersion": v2}}
    return [
        ("legacy then modern header", [("mcp-protocol-version", v1), ("mcp-protocol-version", v2)], INIT),
        ("modern then legacy header", [("mcp-protocol-version", v2), ("mcp-protocol-version", v1)], INIT),
        ("two spellings", [("MCP-Protocol-Version", v1), ("mcp-protocol-version", v2)], INIT),
        ("joined in one header", [("mcp-protocol-version", f"{v2}, {v1}")], INIT),
        ("padded value", [("mcp-protocol-version", f" {v1} ")], INIT),
        ("older handshake version", [("mcp-protocol-version", "2024-11-05")], INIT),
        ("no version header", [], INIT),
        ("modern body, legacy header", [("mcp-protocol-version", v1)], init_2026),
        ("batched", [], [INIT]),
        ("empty session id", [("mcp-session-id", "")], INIT),
        ("two session ids", [("mcp-session-id", "a"), ("mcp-session-id", "b")], INIT),
        ("doubled method header", [("mcp-method", "initialize"), ("mcp-method", "tools/list")], INIT),
    ]


async def test_no_header_trick_opens_a_session_beyond_the_cap_and_sighup_ends_them_all(
    orderdesk_sandbox, tmp_path
) -> None:
    """Every trick is tried until the cap: the sessions handed out never exceed it, every plain
    initialize then gets 429, and removing the token on SIGHUP ends every one of them."""
    from multidict import CIMultiDict

    cfg = tmp_path / "gw.toml"
    _config(cfg, orderdesk_sandbox.base_url, TOKENS)  # max_sessions_per_token = 3
    async with serve_process(cfg) as server, aiohttp.ClientSession() as http:
        base, proc = server.url, server.proc
        opened: dict[str, str] = {}
        statuses: dict[str, set[int]] = {}
        for _round in range(2):
            for what, extra, body in _tricks():
                headers = CIMultiDict({**HEADERS, "Authorization": f"Bearer {ALICE}"})
                for name, value in extra:
                    headers.add(name, value)
                async with http.post(base + "/mcp", data=json.dumps(body), headers=headers) as r:
                    await r.read()
                    statuses.setdefault(what, set()).add(r.status)
                    sid = r.headers.get("mcp-session-id")
                    if r.status < 400 and sid:
                        opened[sid] = what
        assert len(opened) == 3, (opened, statuses)
        for what in ("legacy then modern header", "modern then legacy header", "two spellings"):
            assert statuses[what] == {400}, statuses
        assert [(await initialize(http, base, ALICE))[0] for _ in range(3)] == [429] * 3
        bob = (await initialize(http, base, BOB))[1]
        assert bob is not None  # another token is not affected

        _config(cfg, orderdesk_sandbox.base_url, TOKENS[1:])  # alice removed
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        _config(cfg, orderdesk_sandbox.base_url, TOKENS)  # and back: every session she had is gone
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert [await in_session(http, base, ALICE, sid) for sid in opened] == [404] * 3
        assert [(await initialize(http, base, ALICE))[0] for _ in range(4)] == [200] * 3 + [429]
        assert await in_session(http, base, BOB, bob) == 200
    stderr = server.stderr()
    assert "3 session(s) ended" in stderr, stderr
    assert stderr.count("refused a new session") <= 3, stderr  # one line a second, not one per refusal
