"""Issue 24: `kill -9` of the gateway in the middle of a keyed revert of a bulk job, a new gateway process,
the same revert repeated: every order's field is restored exactly once (the embedded sqlite journal).

Each restoring PUT is applied upstream and its answer held (the sandbox's ``after_apply`` delay), so the
kill lands while restores are applied but unanswered: the repeat reconciles them against the witness
their intents recorded instead of sending them again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import serve_process

TOKEN = "undo-crash-token-0123456789"
ORDERS = 6
MARK = "crash-undo@example.com"


def _config(path: Path, base_url: str, tmp: Path) -> None:
    path.write_text(
        "\n".join(
            [
                "[bulk]",
                "concurrency = 2",
                "[journal]",
                f'path = "{tmp / "journal.sqlite"}"',
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
async def _client(base: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


async def test_a_keyed_revert_repeated_after_kill_9_restores_every_field_once(
    orderdesk_sandbox: Any, tmp_path: Path
) -> None:
    sb = orderdesk_sandbox
    ids = sorted(o["id"] for o in sb.orders())[:ORDERS]
    emails = {oid: sb.order(oid)["email"] for oid in ids}
    cfg = tmp_path / "gw.toml"
    _config(cfg, sb.base_url, tmp_path)
    env = {"GATEWAY_HTTP_TOKEN": TOKEN, "GATEWAY_CACHE": "memory", "GATEWAY_TOOLSETS": "all"}

    def restored() -> int:
        return sum(sb.order(oid)["email"] == emails[oid] for oid in ids)

    async with serve_process(cfg, env=env) as first:
        async with _client(first.url) as client:
            done = await client.call_tool(
                "orders_update_many", {"order_ids": ids, "changes": {"email": MARK}}
            )
            assert not done.is_error, done.content[0].text
            listed = await client.call_tool("changes_list", {})
        (job,) = listed.structured_content["changes"]
        args = {"change_id": job["change_id"], "idempotency_key": "undo-crash"}
        sb.clear_requests()
        sb.add_fault(method="PUT", path=r"^/orders/\d+$", after_apply=True, delay_ms=300)
        with contextlib.suppress(Exception):  # the client's connection dies with the server
            async with _client(first.url) as client:
                task = asyncio.create_task(client.call_tool("changes_revert", args))
                for _ in range(200):  # until some orders are restored (and others in flight)
                    if restored() >= 3:
                        break
                    await asyncio.sleep(0.05)
                first.proc.kill()  # kill -9: no outcome recorded for what is in flight
                await asyncio.to_thread(first.proc.wait, 10)
                await asyncio.wait_for(task, 5)
    assert 0 < restored() < ORDERS
    sb.clear_faults()  # the repeat's own restores are answered at once
    async with serve_process(cfg, env=env) as second, _client(second.url) as client:
        again = await client.call_tool("changes_revert", args)
    assert not again.is_error, again.content[0].text
    report = again.structured_content
    assert report["totals"] == {"ok": ORDERS}, report
    assert restored() == ORDERS
    # each order's restore was sent once: the ones in flight at the kill were settled by a re-read
    puts = sb.requests(method="PUT")
    assert sorted(r.path.rsplit("/", 1)[-1] for r in puts) == ids
