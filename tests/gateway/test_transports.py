"""The gateway as a subprocess: stdio and Streamable HTTP (auth refusals: tests/reliability)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import free_port

TOKEN = "test-token-5f1c9b"


def gateway_env(sandbox: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}
    env.update(
        ORDERDESK_STORE_ID=sandbox.store_id,
        ORDERDESK_API_KEY=sandbox.api_key,
        ORDERDESK_BASE_URL=sandbox.base_url,
        GATEWAY_CACHE_PREFIX=f"test-tr-{os.getpid()}",
        **extra,
    )
    return env


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_subprocess_serves_tools(orderdesk_sandbox: Any, mode: str) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "odmcp", "serve"], env=gateway_env(orderdesk_sandbox)
    )
    async with Client(params, mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("orders_get", {"order_id": "200001"})
    assert "orders_get" in names
    assert not result.is_error and result.structured_content["order"]["id"] == "200001"


@pytest.fixture
async def http_gateway(orderdesk_sandbox: Any, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    cfg = tmp_path / "gw.toml"
    cfg.write_text("[http]\nmax_body_bytes = 200000\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "odmcp",
            "serve",
            "--transport",
            "http",
            "--port",
            str(port),
            "--config",
            str(cfg),
        ],
        env=gateway_env(orderdesk_sandbox, GATEWAY_HTTP_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "gateway exited")
                await asyncio.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_with_the_token_serves_tools(http_gateway: str, mode: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    async with (
        http,
        Client(streamable_http_client(http_gateway + "/mcp", http_client=http), mode=mode) as client,
    ):
        result = await client.call_tool("orders_get", {"order_id": "200002"})
        ping = await client.call_tool("gateway_ping", {})
    assert not result.is_error and result.structured_content["order"]["id"] == "200002"
    assert ping.structured_content["ok"] is True
