"""Idempotency keys live in the durable journal: they survive a restart, are scoped per caller, judge
"the same arguments" canonically, re-run only what failed retryably, and never write twice.
Bulk jobs tell the truth as a whole: every target checked first, a job where nothing succeeded is an
error, every failure says whether it can be retried."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from odmcp.middleware import error_of
from odmcp.testing import connect, serve_http
from odmcp_orderdesk.testing import new_order


def _writes(sandbox: Any, method: str | None = None) -> list[Any]:
    return [r for r in sandbox.requests() if r.method != "GET" and (method is None or r.method == method)]


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


def _ids(sandbox: Any, n: int) -> list[str]:
    return sorted(o["id"] for o in sandbox.orders())[:n]


async def test_a_create_key_survives_a_restart_and_is_bound_to_its_arguments(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    alice = new_order(source_id=None, email="alice@example.com")
    alice.pop("source_id")
    bob = {**alice, "email": "bob@example.com", "order_items": [{"name": "Bob", "price": 1, "quantity": 5}]}
    key = "desk-session-key-1"
    async with connect(gateway_factory()) as c:  # one desktop session
        first = _ok(await c.call_tool("orders_create", {"order": alice, "idempotency_key": key}))
    async with connect(gateway_factory()) as c:  # a new gateway process: the cache is empty
        other = await c.call_tool("orders_create", {"order": bob, "idempotency_key": key})
        again = _ok(await c.call_tool("orders_create", {"order": alice, "idempotency_key": key}))
    err = error_of(other)
    assert err["code"] == "VALIDATION" and "different arguments" in err["message"]
    assert again["order"]["id"] == first["order"]["id"] and again["order"]["email"] == "alice@example.com"
    assert len(_writes(orderdesk_sandbox, "POST")) == 1
    assert not [o for o in orderdesk_sandbox.orders() if o.get("email") == "bob@example.com"]


async def test_the_same_ids_in_another_spelling_or_order_are_the_same_arguments(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 3)
    change = {"order_metadata": {"canon": "1"}}
    async with connect(gateway_factory()) as c:
        first = _ok(
            await c.call_tool(
                "orders_update_many", {"order_ids": ids, "changes": change, "idempotency_key": "canon-key-1"}
            )
        )
        spelled = ["0" + i for i in reversed(ids)]
        again = _ok(
            await c.call_tool(
                "orders_update_many",
                {"order_ids": spelled, "changes": change, "idempotency_key": "canon-key-1"},
            )
        )
        notes = [
            _ok(
                await c.call_tool(
                    "orders_add_note_many", {"order_ids": x, "note": "c", "idempotency_key": "note-key-1234"}
                )
            )
            for x in (ids, spelled)
        ]
    assert first["totals"] == {"ok": 3} and again["replayed"] is True and again["totals"] == {"ok": 3}
    assert notes[1]["replayed"] is True
    assert len(_writes(orderdesk_sandbox, "PUT")) == 3 and len(_writes(orderdesk_sandbox, "POST")) == 3


async def test_a_repeat_re_runs_only_what_failed_retryably_and_says_so(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 4)
    # one order's snapshot read fails (3 tries): that target fails UPSTREAM, retryable, nothing sent
    orderdesk_sandbox.add_fault(method="GET", path=rf"^/orders/{ids[1]}$", status=503)
    args = {"order_ids": ids, "note": "retry me", "idempotency_key": "retry-key-1"}
    async with connect(gateway_factory()) as c:
        first = _ok(await c.call_tool("orders_add_note_many", args))
        orderdesk_sandbox.clear_faults()  # OrderDesk is back
        again = _ok(await c.call_tool("orders_add_note_many", args))
    failed = next(r for r in first["results"] if r["target"] == ids[1])
    assert failed["outcome"] == "UPSTREAM" and failed["retryable"] is True and failed["hint"]
    redone = next(r for r in again["results"] if r["target"] == ids[1])
    assert redone["outcome"] == "ok" and redone["retried"] is True
    assert all(r.get("replayed") for r in again["results"] if r["target"] != ids[1])
    for oid in ids:
        history = orderdesk_sandbox.order(oid, with_history=True)["order_history"]
        assert [h["note"] for h in history].count("retry me") == 1


async def test_a_concurrent_repeat_waits_at_most_lock_wait_then_says_in_progress(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 2)
    orderdesk_sandbox.add_fault(method="POST", path=r"/order-history$", delay_ms=800)
    args = {"order_ids": ids, "note": "slow", "idempotency_key": "busy-key-1"}
    async with connect(gateway_factory(overrides={"mutations.lock_wait": 0.3})) as c:
        first = asyncio.create_task(c.call_tool("orders_add_note_many", args))
        await asyncio.sleep(0.2)  # the first call holds its key (its notes are being sent)
        second = await c.call_tool("orders_add_note_many", args)
        done = _ok(await first)
    err = error_of(second)
    assert err["code"] == "CONFLICT" and "in progress" in err["message"] and err["retryable"] is True
    assert done["totals"] == {"ok": 2}
    assert len(_writes(orderdesk_sandbox, "POST")) == 2


async def test_keys_are_per_caller(gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    tokens = [{"name": "ann", "token": "tok-ann-123456"}, {"name": "ben", "token": "tok-ben-123456"}]
    gw = gateway_factory(overrides={"http.tokens": tokens})
    ids = _ids(orderdesk_sandbox, 2)
    results = []
    async with serve_http(gw) as base:
        for who, oid in zip(tokens, ids, strict=True):
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {who['token']}"})
            async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as c:
                args = {"order_ids": [oid], "note": f"by {who['name']}", "idempotency_key": "shared-key-1"}
                results.append(await c.call_tool("orders_add_note_many", args))
    assert all(not r.is_error for r in results), [r.content[0].text for r in results]
    assert not any(r.structured_content.get("replayed") for r in results)
    assert len(_writes(orderdesk_sandbox, "POST")) == 2


async def test_a_job_in_which_nothing_succeeded_is_an_error_with_its_report(
    gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Path
) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_add_note_many", {"order_ids": ["9990001", "9990002"], "note": "x"})
    err = error_of(result)
    assert result.is_error and err["code"] == "NOT_FOUND" and "no target succeeded" in err["message"]
    entries = err["details"]["report"]["results"]
    assert [e["outcome"] for e in entries] == ["NOT_FOUND", "NOT_FOUND"]
    assert all(e["retryable"] is False and e["hint"] for e in entries)
    line = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert line["outcome"].startswith("error") and _writes(orderdesk_sandbox) == []


async def test_every_target_is_checked_before_the_first_write(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 2)
    updates = [
        {"order_id": ids[0], "changes": {"email": "first@example.com"}},
        {"order_id": ids[1], "changes": {"shipping": {"fist_name": "Typo"}}},
    ]
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_update_many", {"updates": updates})
    err = error_of(result)
    assert err["code"] == "VALIDATION" and "fist_name" in err["message"]
    assert _writes(orderdesk_sandbox) == []


async def test_an_inventory_item_named_by_id_and_by_code_is_refused(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    inv = orderdesk_sandbox.state.stores[orderdesk_sandbox.store_id].inventory
    item = inv[sorted(inv)[0]]
    updates = [
        {"id": str(item["id"]), "changes": {"stock": 1}},
        {"code": item["code"], "changes": {"stock": 2}},
    ]
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("inventory_update_many", {"updates": updates})
    err = error_of(result)
    assert err["code"] == "VALIDATION" and "named twice" in err["message"]
    assert _writes(orderdesk_sandbox) == []


async def test_a_batch_inventory_update_and_a_single_one_both_keep_their_change(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    inv = orderdesk_sandbox.state.stores[orderdesk_sandbox.store_id].inventory
    item = inv[sorted(inv)[1]]
    # the batch holds the item's lock while its PUT is slow; the single update waits, then reads afresh
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/batch-inventory-items$", delay_ms=300, times=1)
    async with connect(gateway_factory()) as c:
        batch, single = await asyncio.gather(
            c.call_tool(
                "inventory_update_many", {"updates": [{"code": item["code"], "changes": {"stock": 77}}]}
            ),
            c.call_tool("inventory_update", {"item_id": str(item["id"]), "changes": {"price": 12.5}}),
        )
        after = _ok(await c.call_tool("inventory_get", {"item_id": str(item["id"])}))
    assert _ok(batch)["totals"] == {"ok": 1} and not single.is_error
    now = inv[item["id"]]
    assert int(float(now["stock"])) == 77 and float(now["price"]) == 12.5
    assert int(float(after["item"]["stock"])) == 77 and float(after["item"]["price"]) == 12.5
