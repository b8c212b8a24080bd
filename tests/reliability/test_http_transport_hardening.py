"""The Streamable HTTP transport, as a real ``mcp-gateway serve --transport http`` subprocess.

The store points at the in-test sandbox (served by this test's event loop, so every wait here is
async). Checked: bearer auth on every route but ``/healthz`` (no token, wrong token, token only in the
query string), DNS-rebinding protection (foreign Host), the request-size limit, clients that vanish
mid-request, and that a non-loopback bind without a token is refused with one clear line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from odmcp.testing import ServeProcess, free_port, serve_process

TOKEN = "tok-" + uuid.uuid4().hex
MAX_BODY = 20_000
ROOT = Path(__file__).resolve().parents[2]
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "hardening-test", "version": "0"},
    },
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _config(path: Path, base_url: str, audit: Path) -> Path:
    path.write_text(f"""
[http]
max_body_bytes = {MAX_BODY}

[audit]
path = "{audit}"

[[stores]]
name = "demo"
store_id = "1001"
api_key = "sandbox-key"
base_url = "{base_url}"
default = true

[stores.rate_limit]
enabled = false
""")
    return path


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, base_url: str) -> AsyncIterator[ServeProcess]:
    cfg = _config(tmp_path / "cfg.toml", base_url, tmp_path / "audit.jsonl")
    async with serve_process(cfg, env={"GATEWAY_HTTP_TOKEN": TOKEN}, args=["--host", "127.0.0.1"]) as server:
        yield server


async def _post(http: aiohttp.ClientSession, url: str, body: Any = INIT, **headers: str) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(url, data=data, headers={**MCP_HEADERS, **headers}) as r:
        return r.status, await r.text()


async def _mcp_call(server: ServeProcess, tool: str, args: dict[str, Any]) -> Any:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(server.url + "/mcp", http_client=http), mode="auto") as c:
        return await c.call_tool(tool, args)


async def test_bearer_auth_guards_every_route_but_healthz(orderdesk_sandbox, tmp_path) -> None:
    async with serve(tmp_path, orderdesk_sandbox.base_url) as server, aiohttp.ClientSession() as http:
        mcp = server.url + "/mcp"
        status, body = await _post(http, mcp)
        assert status == 401 and "missing bearer token" in body
        status, body = await _post(http, mcp, Authorization="Bearer wrong-" + TOKEN)
        assert status == 401 and "invalid bearer token" in body
        status, _ = await _post(http, mcp, Authorization=f"Basic {TOKEN}")
        assert status == 401
        status, _ = await _post(http, mcp, Authorization=f"Bearer {TOKEN[:-1]}")
        assert status == 401
        for query in (f"token={TOKEN}", f"access_token={TOKEN}", f"authorization=Bearer%20{TOKEN}"):
            status, _ = await _post(http, f"{mcp}?{query}")
            assert status == 401, query
        async with http.get(server.url + "/metrics") as r:
            assert r.status == 401
        async with http.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200 and r.content_type == "text/plain"
        async with http.get(server.url + "/healthz") as r:
            assert r.status == 200 and (await r.json())["ok"] is True
        # the right token gets through to MCP
        status, _ = await _post(http, mcp, Authorization=f"Bearer {TOKEN}")
        assert status == 200
        assert orderdesk_sandbox.requests() == []  # nothing unauthenticated reached upstream
        assert TOKEN not in server.stderr()


async def test_foreign_host_oversized_body_and_vanishing_clients(orderdesk_sandbox, tmp_path) -> None:
    order_id = orderdesk_sandbox.orders()[0]["id"]
    async with serve(tmp_path, orderdesk_sandbox.base_url) as server, aiohttp.ClientSession() as http:
        mcp = server.url + "/mcp"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host / Origin
        status, _ = await _post(http, mcp, Host="evil.example", **auth)
        assert status in (400, 403, 421), status
        status, _ = await _post(http, mcp, Host=f"evil.example:{server.port}", **auth)
        assert status in (400, 403, 421), status
        status, _ = await _post(http, mcp, Origin="http://evil.example", **auth)
        assert status in (400, 403), status
        status, _ = await _post(http, mcp, Host=f"localhost:{server.port}", **auth)
        assert status == 200

        # a body over [http] max_body_bytes is refused cleanly, with or without a Content-Length
        huge = {**INIT, "params": {**INIT["params"], "pad": "x" * (MAX_BODY * 3)}}
        status, _ = await _post(http, mcp, huge, **auth)
        assert status == 413, status

        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            data = json.dumps(huge).encode()
            for i in range(0, len(data), 4096):
                sent += len(data[i : i + 4096])
                yield data[i : i + 4096]

        try:
            async with http.post(mcp, data=chunks(), headers={**MCP_HEADERS, **auth}) as r:
                assert r.status == 413, r.status
        except (aiohttp.ClientOSError, aiohttp.ClientConnectionResetError):
            # the server answered 413 and closed while the client was still sending: refused all the
            # same, and only once more than the limit had arrived
            assert sent > MAX_BODY, sent
        async with http.get(server.url + "/healthz") as r:
            assert r.status == 200

        # clients that disconnect mid-request: partial headers, half a body, a request then a hang-up
        partials = [
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor",
            (
                f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                'Content-Length: 5000\r\n\r\n{"jsonrpc": "2.0", "id": 1, "meth'
            ).encode(),
            (
                f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                f"Content-Length: {len(json.dumps(INIT))}\r\n\r\n{json.dumps(INIT)}"
            ).encode(),
            (
                f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                'Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n10\r\n{"jsonrpc": "2.0'
            ).encode(),
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS ClientHello on the plain port
        ]
        for round_ in range(5):
            writers = []
            for payload in partials:
                _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(payload)
                await writer.drain()
                writers.append(writer)
            await asyncio.sleep(0.05 if round_ % 2 else 0)
            for writer in writers:
                if round_ % 2:
                    writer.transport.abort()  # RST instead of FIN
                else:
                    writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        await asyncio.sleep(0.3)

        assert server.proc.poll() is None, server.stderr()
        async with http.get(server.url + "/healthz") as r:
            assert r.status == 200
        result = await _mcp_call(server, "orders_get", {"order_id": order_id})
        assert not result.is_error, result.content
        assert result.structured_content["order"]["id"] == order_id
        # (the SDK logs each ClientDisconnect with a traceback at ERROR; that is noise, not a crash)
        assert TOKEN not in server.stderr()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_bind_without_token_exits_with_one_clear_line(tmp_path, host) -> None:
    cfg = _config(tmp_path / "cfg.toml", "http://127.0.0.1:9/api/v2", tmp_path / "audit.jsonl")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odmcp",
            "serve",
            "--transport",
            "http",
            "--host",
            host,
            "--port",
            str(free_port()),
            "--config",
            str(cfg),
        ],
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "refusing to bind" in lines[0] and "token" in lines[0]
