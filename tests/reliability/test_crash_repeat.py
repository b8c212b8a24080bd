"""A keyed bulk job, `kill -9` of the gateway in the middle of it, a new gateway process, the same call
repeated: every note and every item is upstream exactly once (issue "One write route and a durable
journal"), with the embedded sqlite journal and with the Redis journal.

Every write is applied upstream, then its answer is held (the sandbox's ``after_apply`` delay), so the
kill lands while writes are applied but unanswered: their intents are in the journal with no outcome,
and the repeat must reconcile them against their recorded snapshot instead of sending them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import delete_redis_prefix, serve_process

TOKEN = "crash-token-0123456789"
REDIS = "redis://127.0.0.1:6379/0"
ORDERS = 6


def _config(path: Path, base_url: str, journal: str, prefix: str, tmp: Path) -> None:
    lines = [
        "[bulk]",
        "concurrency = 2",
        "[journal]",
        f'backend = "{journal}"',
        f'path = "{tmp / "journal.sqlite"}"',
        f'redis_url = "{REDIS}"',
        f'prefix = "{prefix}"',
        "[[stores]]",
        'name = "demo"',
        'store_id = "1001"',
        'api_key = "sandbox-key"',
        f'base_url = "{base_url}"',
        "default = true",
    ]
    path.write_text("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def _client(base: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


def _notes(sandbox: Any, oid: str, note: str) -> int:
    return [h["note"] for h in sandbox.order(oid, with_history=True)["order_history"]].count(note)


def _items(sandbox: Any, oid: str, name: str) -> int:
    return [i["name"] for i in sandbox.order(oid)["order_items"]].count(name)


JOBS = {
    "notes": ("orders_add_note_many", r"^/orders/\d+/order-history$", "POST"),
    "items": ("orders_update_many", r"^/orders/\d+$", "PUT"),
}


@pytest.mark.parametrize("journal", ["sqlite", "redis"])
@pytest.mark.parametrize("job", ["notes", "items"])
async def test_a_keyed_job_repeated_after_kill_9_writes_every_target_exactly_once(
    orderdesk_sandbox: Any, tmp_path: Path, journal: str, job: str
) -> None:
    tool, path, method = JOBS[job]
    ids = sorted(o["id"] for o in orderdesk_sandbox.orders())[:ORDERS]
    mark = f"CRASH-{uuid.uuid4().hex[:6]}"
    args: dict[str, Any] = {"order_ids": ids, "idempotency_key": f"crash-{mark}"}
    if job == "notes":
        args["note"] = mark
        count = _notes
    else:
        args["changes"] = {"order_items": [{"name": mark, "price": 1, "quantity": 1}]}
        count = _items
    # every write lands upstream at once; its answer is held, so the kill finds writes applied, unanswered
    orderdesk_sandbox.add_fault(method=method, path=path, after_apply=True, delay_ms=300)
    prefix = f"test-crash-{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "gw.toml"
    _config(cfg, orderdesk_sandbox.base_url, journal, prefix, tmp_path)
    env = {"GATEWAY_HTTP_TOKEN": TOKEN, "GATEWAY_CACHE": "memory"}
    try:
        async with serve_process(cfg, env=env) as first:
            # the client's connection dies with the server: its errors are expected here
            with contextlib.suppress(Exception):
                async with _client(first.url) as client:
                    job_task = asyncio.create_task(client.call_tool(tool, args))
                    for _ in range(200):  # until some targets are written (and others in flight)
                        if sum(count(orderdesk_sandbox, oid, mark) for oid in ids) >= 3:
                            break
                        await asyncio.sleep(0.05)
                    first.proc.kill()  # kill -9: no cleanup, no outcome recorded for what is in flight
                    await asyncio.to_thread(first.proc.wait, 10)
                    await asyncio.wait_for(job_task, 5)
        written = sum(count(orderdesk_sandbox, oid, mark) for oid in ids)
        assert 0 < written < len(ids), written
        assert all(count(orderdesk_sandbox, oid, mark) <= 1 for oid in ids)
        async with serve_process(cfg, env=env) as second, _client(second.url) as client:
            again = await client.call_tool(tool, args)
        assert not again.is_error, again.content[0].text
        report = again.structured_content
        assert report["totals"] == {"ok": len(ids)}, report
        assert [count(orderdesk_sandbox, oid, mark) for oid in ids] == [1] * len(ids)
        # the targets in flight at the kill were settled by counting, not sent again
        sent = [r for r in orderdesk_sandbox.requests(method=method) if r.fault is not None]
        assert len(sent) == len(ids)
        assert any(r.get("reconciled") or r.get("replayed") for r in report["results"])
    finally:
        if journal == "redis":
            delete_redis_prefix(REDIS, prefix)
