"""Issue 22: a token whose grants change on SIGHUP has a different tool list; each of its open sessions is
told (``notifications/tools/list_changed``), and the sessions of other tokens are not.

A real ``serve`` subprocess, its config rewritten and SIGHUP sent, and MCP SDK clients in legacy
(2025-11-25) sessions over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import ServerNotification, ToolListChangedNotification

from odmcp.testing import serve_process

ALICE, BOB = "tok-alice-0123456789", "tok-bob-0123456789"


def _config(path: Path, base_url: str, alice_read_only: bool) -> None:
    path.write_text(
        "\n".join(
            [
                "[[http.tokens]]",
                'name = "alice"',
                f'token = "{ALICE}"',
                f"read_only = {'true' if alice_read_only else 'false'}",
                "[[http.tokens]]",
                'name = "bob"',
                f'token = "{BOB}"',
                "read_only = true",
                "[[stores]]",
                'name = "demo"',
                'store_id = "1001"',
                'api_key = "sandbox-key"',
                f'base_url = "{base_url}"',
                "default = true",
            ]
        )
        + "\n"
    )


@contextlib.asynccontextmanager
async def session(base: str, token: str, heard: asyncio.Event) -> AsyncIterator[Any]:
    """A legacy session that sets ``heard`` when the server says its tool list changed."""

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(message, ServerNotification | ToolListChangedNotification) and isinstance(
            root, ToolListChangedNotification
        ):
            heard.set()

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    transport = streamable_http_client(base + "/mcp", http_client=http)
    async with http, Client(transport, mode="legacy", message_handler=on_message) as client:
        yield client


async def test_a_token_made_writable_by_sighup_is_told_its_tool_list_changed(
    orderdesk_sandbox: Any, tmp_path: Path
) -> None:
    cfg = tmp_path / "gw.toml"
    _config(cfg, orderdesk_sandbox.base_url, alice_read_only=True)
    alice_heard, bob_heard = asyncio.Event(), asyncio.Event()
    async with (
        serve_process(cfg) as server,
        session(server.url, ALICE, alice_heard) as alice,
        session(server.url, BOB, bob_heard) as bob,
    ):
        before = {t.name for t in (await alice.list_tools()).tools}
        await bob.list_tools()
        caps = alice.server_capabilities
        _config(cfg, orderdesk_sandbox.base_url, alice_read_only=False)
        server.proc.send_signal(signal.SIGHUP)
        await asyncio.wait_for(alice_heard.wait(), 10)
        after = {t.name for t in (await alice.list_tools()).tools}
        await asyncio.sleep(0.2)  # bob's notification, were one sent, would have arrived by now
    assert "orders_update" not in before and "orders_update" in after and before < after
    assert not bob_heard.is_set()  # bob's grants did not change
    assert caps.tools is not None and caps.tools.list_changed is True  # announced, so it may be sent
    assert "grants changed for token(s) alice: 1 session(s) told" in server.stderr()
    assert ALICE not in server.stderr() and BOB not in server.stderr()
