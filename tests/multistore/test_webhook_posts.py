"""Issue 11 §5: order posts are verified the way OrderDesk signs them, and with
``webhook_caches_order = true`` a late or replayed post never resurrects a deleted order nor overwrites a
fresher state (after a move, after orders_delete, in the same second as an update)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from odmcp.middleware import error_of
from odmcp.refs import Ref
from odmcp.route import lock_key
from odmcp.testing import connect, serve_http
from odmcp_orderdesk import webhook
from odmcp_orderdesk.sandbox import model as sandbox_model
from odmcp_orderdesk.sandbox.webhooks import sign as orderdesk_sign

KEY = "sandbox-key"
CACHING = {"orderdesk": {"webhook_caches_order": True}}


def form_headers(signature: str, store_id: str = "1001") -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Order-Desk-Store-Id": store_id,
        "X-Order-Desk-Hash": signature,
    }


async def post(http: aiohttp.ClientSession, base: str, order_json: str, signature: str) -> tuple[int, Any]:
    body = urlencode({"order": order_json}).encode()
    async with http.post(base + "/webhooks/orderdesk", data=body, headers=form_headers(signature)) as r:
        return r.status, await r.json()


async def replay(http: aiohttp.ClientSession, base: str, order: dict[str, Any]) -> None:
    """Post ``order`` (a snapshot of an earlier state) signed as OrderDesk signs it: a late post."""
    order_json = json.dumps(order)
    status, _ = await post(http, base, order_json, orderdesk_sign(order_json, KEY))
    assert status == 200


async def get(client: Any, oid: str) -> Any:
    return await client.call_tool("orders_get", {"order_id": oid})


def first_order_id(sandbox: Any) -> str:
    return str(sandbox.orders()[0]["id"])


# --- verification -----------------------------------------------------------------------------


async def test_a_post_signed_over_the_rawurldecoded_json_is_accepted(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """OrderDesk's PHP client checks hash_hmac('sha256', rawurldecode($_POST['order']), key): for JSON
    holding percent-escapes ('%20' in a note, '%25') that differs from a hash over the JSON itself."""
    gw = gateway_factory()
    oid = first_order_id(orderdesk_sandbox)
    order = {
        **orderdesk_sandbox.order(oid),
        "checkout_data": {"Note": "Leave%20at%20the%20back%20door", "Promo": "50%25+off"},
    }
    order_json = json.dumps(order)
    assert "%20" in order_json and "+" in order_json
    # rawurldecode, spelled out: %XX decoded, '+' kept (it is not a space here, unlike form decoding)
    decoded = order_json.replace("%20", " ").replace("%25", "%")
    php_hash = hmac.new(KEY.encode(), decoded.encode(), hashlib.sha256).hexdigest()
    plain_hash = hmac.new(KEY.encode(), order_json.encode(), hashlib.sha256).hexdigest()
    plus_as_space = hmac.new(KEY.encode(), decoded.replace("+", " ").encode(), hashlib.sha256).hexdigest()
    wrong_key = hmac.new(b"not-the-key", decoded.encode(), hashlib.sha256).hexdigest()
    assert len({php_hash, plain_hash, plus_as_space}) == 3
    async with serve_http(gw) as base, aiohttp.ClientSession() as http:
        assert await post(http, base, order_json, php_hash) == (
            200,
            {"status": "success", "message": "Order Received"},
        )
        assert (await post(http, base, order_json, plain_hash))[0] == 200  # the plain form is fine too
        assert await post(http, base, order_json, plus_as_space) == (
            403,
            {"status": "error", "message": "Unauthorized Request"},
        )
        assert (await post(http, base, order_json, wrong_key))[0] == 403
    assert gw.metrics.value("webhook_posts_total", result="ok") == 2
    assert gw.metrics.value("webhook_posts_total", result="bad_signature") == 2


async def test_orderdesk_posting_an_order_with_percent_escapes_invalidates_it(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """End to end: the sandbox posts like OrderDesk; a UI edit whose note holds '%20' reaches the cache."""
    gw = gateway_factory()
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client:
        assert not (await get(client, oid)).is_error  # cached now
        orderdesk_sandbox.config.webhook_url = base + "/webhooks/orderdesk"
        note = {"Gift Message": "Happy%20Birthday 100%25"}
        orderdesk_sandbox.edit_order("1001", oid, {"checkout_data": note})
        await orderdesk_sandbox.drain_webhooks()
        after = (await get(client, oid)).structured_content["order"]
    assert [d["status"] for d in orderdesk_sandbox.webhook_deliveries] == [200]
    assert after["checkout_data"] == note
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="no") == 1


# --- late and replayed posts ------------------------------------------------------------------


async def test_a_late_post_after_a_move_does_not_put_the_old_folder_back(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(overrides=CACHING)
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        before = (await get(client, oid)).structured_content["order"]
        assert before["folder_id"] == 1
        moved = await client.call_tool("orders_move", {"order_ids": [oid], "folder_id": 2})
        assert not moved.is_error
        await replay(http, base, before)  # the state from before the move, late and then once more
        await replay(http, base, before)
        after = (await get(client, oid)).structured_content["order"]
    assert after["folder_id"] == 2 == orderdesk_sandbox.order(oid)["folder_id"]
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="yes") == 0


async def test_a_late_post_never_resurrects_a_deleted_order(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(overrides=CACHING)
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        before = (await get(client, oid)).structured_content["order"]
        deleted = await client.call_tool("orders_delete", {"order_id": oid, "confirm": True})
        assert not deleted.is_error
        await replay(http, base, before)
        gone = await get(client, oid)
        listed = await client.call_tool("orders_list", {"source_id": before["source_id"]})
    assert orderdesk_sandbox.order(oid) is None
    assert error_of(gone)["code"] == "NOT_FOUND"
    assert listed.structured_content["orders"] == []


async def test_a_post_from_the_same_second_never_overwrites_a_fresher_cached_order(
    gateway_factory: Any, orderdesk_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """date_updated has one-second resolution: the gateway's update and a UI edit in the same second share
    it, so the late post of the gateway's own write must not replace the UI edit in the cache."""
    now = datetime(2030, 1, 2, 3, 4, 5)
    monkeypatch.setattr(sandbox_model, "utcnow", lambda: now)  # every write lands in this one second
    gw = gateway_factory(overrides=CACHING)
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        updated = await client.call_tool(
            "orders_update", {"order_id": oid, "changes": {"email": "agent@example.com"}}
        )
        ours = orderdesk_sandbox.order(oid)
        ui = orderdesk_sandbox.edit_order("1001", oid, {"shipping": {"company": "Edited In The UI"}})
        assert ours["date_updated"] == ui["date_updated"] == "2030-01-02 03:04:05"
        await replay(http, base, ui)  # the UI edit's post: the cache holds our write, same second
        seen = (await get(client, oid)).structured_content["order"]  # re-read: the UI edit, cached
        await replay(http, base, ours)  # now our own write's post arrives, late
        after = (await get(client, oid)).structured_content["order"]
    assert not updated.is_error
    assert seen["shipping"]["company"] == "Edited In The UI"
    assert after["shipping"]["company"] == "Edited In The UI" and after["email"] == "agent@example.com"
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="yes") == 0


async def test_a_newer_post_over_an_older_cached_copy_is_cached(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """The one case that caches: the cache holds a strictly older version (saves the next GET)."""
    gw = gateway_factory(overrides=CACHING)
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        cached = (await get(client, oid)).structured_content["order"]
        edited = orderdesk_sandbox.edit_order("1001", oid, {"email": "ui@example.com"})
        assert edited["date_updated"] > cached["date_updated"]  # seeded orders were last changed earlier
        await replay(http, base, edited)
        gets = len(orderdesk_sandbox.requests(method="GET", path_prefix=f"/orders/{oid}"))
        after = (await get(client, oid)).structured_content["order"]
        await replay(http, base, cached)  # the older state, replayed: invalidates only
        again = (await get(client, oid)).structured_content["order"]
    assert after["email"] == "ui@example.com"
    assert len(orderdesk_sandbox.requests(method="GET", path_prefix=f"/orders/{oid}")) == gets + 1
    assert again["email"] == "ui@example.com"
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="yes") == 1


async def test_a_post_while_the_order_is_being_written_only_invalidates(
    gateway_factory: Any, orderdesk_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check-then-cache runs under the order's lock; if a write holds it, the post doesn't wait
    long and doesn't guess: it invalidates, and the write in progress caches its own result."""
    monkeypatch.setattr(webhook, "LOCK_WAIT_S", 0.2)
    gw = gateway_factory(overrides=CACHING)
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        cached = (await get(client, oid)).structured_content["order"]
        newer = {**cached, "email": "posted@example.com", "date_updated": "2099-01-01 00:00:00"}
        async with gw.locks.hold(lock_key(gw, Ref("demo", "order", oid))):
            await replay(http, base, newer)
        after = (await get(client, oid)).structured_content["order"]
    assert after["email"] == cached["email"]  # re-read from OrderDesk, not the post
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="no") == 1


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, CACHING], ids=["invalidate", "cache"])
async def test_a_post_with_a_leading_zero_id_invalidates_the_order_the_tools_read(
    gateway_factory: Any, orderdesk_sandbox: Any, overrides: dict[str, Any]
) -> None:
    """OrderDesk reads "0200001" as order 200001 and the tools cache it under "200001": so does a post."""
    gw = gateway_factory(overrides=overrides)
    oid = first_order_id(orderdesk_sandbox)
    async with serve_http(gw) as base, connect(gw) as client, aiohttp.ClientSession() as http:
        cached = (await get(client, oid)).structured_content["order"]
        edited = orderdesk_sandbox.edit_order("1001", oid, {"email": "ui@example.com"})
        assert (await get(client, oid)).structured_content["order"]["email"] == cached["email"]  # stale
        await replay(http, base, {**edited, "id": "00" + oid})
        after = (await get(client, "0" + oid)).structured_content["order"]
        canonical = await gw.workflow.peek(Ref("demo", "order", oid))
        padded = await gw.workflow.peek(Ref("demo", "order", "00" + oid))
    assert after["email"] == "ui@example.com" and after["id"] == oid
    assert canonical == after  # the one key the tools read
    assert padded is None  # nothing was cached under the zero-padded id
    cached_post = 1 if overrides else 0
    assert gw.metrics.value("webhook_posts_total", result="ok", cached="yes") == cached_post
