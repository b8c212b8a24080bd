"""Order posts to a webhook URL: form field ``order``, store-id header and OrderDesk's HMAC."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import pytest
from aiohttp import web
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig
from odmcp_orderdesk.testing import new_order


class Receiver:
    """A tiny aiohttp server that validates posts like the official PHP ``validatePostedJson()``:
    ``hash_hmac('sha256', rawurldecode($_POST['order']), api_key)`` (notes §8.1)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.delay = 0.0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        order_json = str(form["order"])
        rawurldecoded = unquote_to_bytes(order_json)  # PHP rawurldecode: %XX decoded, '+' kept
        expected = hmac.new(b"sandbox-key", rawurldecoded, hashlib.sha256).hexdigest()
        plain = hmac.new(b"sandbox-key", order_json.encode(), hashlib.sha256).hexdigest()
        self.posts.append(
            {
                "order": json.loads(order_json),
                "store_id": request.headers.get("X-Order-Desk-Store-Id"),
                "valid": hmac.compare_digest(expected, request.headers.get("X-Order-Desk-Hash", "")),
                "plain": hmac.compare_digest(plain, request.headers.get("X-Order-Desk-Hash", "")),
                "content_type": request.content_type,
            }
        )
        await asyncio.sleep(self.delay)
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rec
    await runner.cleanup()


async def test_changes_are_posted_with_valid_hmac(receiver: Receiver) -> None:
    config = SandboxConfig(seed_orders=3, webhook_url=receiver.url, rate_limit_enabled=False)
    async with Sandbox(config) as sb, aiohttp.ClientSession(headers=sb.headers()) as http:
        assert receiver.posts == []  # seeding does not post
        _, created, _ = await call(http, "POST", sb.base_url + "/orders", json=new_order(source_id="WH-1"))
        order_id = created["order"]["id"]
        await sb.drain_webhooks()
        first = receiver.posts[-1]
        assert first["valid"] and first["store_id"] == "1001"
        assert first["content_type"] == "application/x-www-form-urlencoded"
        assert first["order"] == created["order"]

        edited = sb.edit_order("1001", order_id, {"shipping": {"city": "Boise"}, "email": "ui@example.com"})
        assert edited["shipping"]["city"] == "Boise" and edited["shipping"]["first_name"] == "Jane"
        assert edited["date_updated"] >= created["order"]["date_updated"]
        await sb.drain_webhooks()
        assert receiver.posts[-1]["order"]["email"] == "ui@example.com" and receiver.posts[-1]["valid"]

        sb.touch_order("1001", order_id)
        move = {"order_id_list": [order_id], "destination_folder_id": 2}
        await call(http, "POST", sb.base_url + "/move-orders", json=move)
        await call(http, "POST", f"{sb.base_url}/orders/{order_id}/shipments", json={"tracking_number": "Z1"})
        await sb.drain_webhooks()
        assert len(receiver.posts) == 5
        assert receiver.posts[3]["order"]["folder_id"] == 2
        assert receiver.posts[4]["order"]["order_shipments"][0]["tracking_number"] == "Z1"
        assert [d["status"] for d in sb.webhook_deliveries] == [200] * 5

        # percent-escapes in the JSON: signed over the rawurldecoded JSON, so not over the JSON as sent
        sb.edit_order("1001", order_id, {"checkout_data": {"Note": "Leave%20at%20door", "Deal": "2+1"}})
        await sb.drain_webhooks()
        last = receiver.posts[-1]
        assert last["order"]["checkout_data"] == {"Note": "Leave%20at%20door", "Deal": "2+1"}
        assert last["valid"] and not last["plain"]
        assert all(p["valid"] and p["plain"] for p in receiver.posts[:5])  # no '%': both forms agree


async def test_unreachable_receiver_is_recorded_and_stop_cancels_slow_posts(receiver: Receiver) -> None:
    config = SandboxConfig(seed_orders=1, webhook_url="http://127.0.0.1:9/nowhere")
    async with Sandbox(config) as sb:
        order_id = sb.orders()[0]["id"]
        sb.touch_order("1001", order_id)
        await sb.drain_webhooks()
        assert sb.webhook_deliveries[0]["status"] == 0 and sb.webhook_deliveries[0]["error"]

        receiver.delay = 5.0
        sb.config.webhook_url = receiver.url
        sb.touch_order("1001", order_id)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await sb.stop(webhook_grace_s=0.1)
        assert time.monotonic() - started < 1.0 and not sb.webhooks.tasks
