"""Issue 4, audit log: one JSON line per mutation call whatever its outcome, never a credential,
and fail-closed when the log can't be written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from odmcp.middleware import error_of
from odmcp.testing import connect

REQUIRED = {"time", "request_id", "tool", "object_id", "changed_fields", "attempts", "outcome", "duration_ms"}


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_one_line_per_mutation_and_no_credentials(
    orderdesk_sandbox: Any, gateway_factory: Any, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    oid, other = (str(o["id"]) for o in orderdesk_sandbox.orders()[:2])
    calls: list[tuple[str, str]] = []  # (tool, expected outcome)
    async with connect(gateway_factory()) as client:

        async def call(tool: str, args: dict[str, Any], outcome: str) -> Any:
            calls.append((tool, outcome))
            return await client.call_tool(tool, args)

        await client.call_tool("orders_get", {"order_id": oid})  # a read: never audited
        await call(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"audited": "yes"}}}, "ok"
        )
        await call(
            "orders_update",
            {"order_id": "987654321", "changes": {"order_metadata": {"a": "b"}}},
            "error:NOT_FOUND",
        )
        await call(
            "orders_update",
            {"order_id": oid, "changes": {"order_items": [{"id": "999999999", "quantity": 1}]}},
            "error:VALIDATION",
        )
        await call(
            "orders_update", {"order_id": oid, "dry_run": True, "changes": {"email": "dry@example.com"}}, "ok"
        )
        await call("orders_delete", {"order_id": other}, "error:CONFIRMATION_REQUIRED")
        await call("orders_delete", {"order_id": other, "confirm": True}, "ok")
        await client.call_tool("orders_list", {"limit": 5})
    async with connect(gateway_factory(overrides={"gateway.read_only": True})) as client:
        calls.append(("orders_update", "denied:READ_ONLY"))
        denied = await client.call_tool(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"x": "y"}}}
        )
    assert error_of(denied)["code"] == "READ_ONLY"

    text = audit.read_text(encoding="utf-8")
    assert "sandbox-key" not in text
    lines = audit_lines(audit)
    assert [(line["tool"].replace(".", "_"), line["outcome"]) for line in lines] == calls
    for line in lines:
        assert REQUIRED <= set(line), (REQUIRED - set(line), line)
        assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
        assert line["request_id"]
    ok, not_found, invalid, dry, unconfirmed, deleted, read_only = lines
    assert (
        ok["object_id"] == oid and ok["changed_fields"] == ["order_metadata.audited"] and ok["attempts"] == 1
    )
    assert not_found["object_id"] == "987654321" and not_found["attempts"] == 0  # nothing was sent
    assert invalid["object_id"] == oid
    assert dry["dry_run"] is True and dry["changed_fields"] == ["email"]
    assert unconfirmed["object_id"] == other
    assert deleted["object_id"] == other
    assert read_only["object_id"] == oid and read_only["attempts"] == 0
    # the denied call never reached OrderDesk
    assert len(orderdesk_sandbox.requests(method="PUT")) == 1


async def test_audit_log_fails_closed(orderdesk_sandbox: Any, gateway_factory: Any, tmp_path: Path) -> None:
    """The audit path is a directory: the mutation is refused before anything is sent upstream."""
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    before = orderdesk_sandbox.order(oid)
    orderdesk_sandbox.clear_requests()
    gw = gateway_factory(overrides={"audit.path": str(tmp_path)})
    async with connect(gw) as client:
        r = await client.call_tool(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"a": "b"}}}
        )
        c = await client.call_tool(
            "orders_create",
            {
                "order": {
                    "order_items": [{"name": "W", "price": 1, "quantity": 1}],
                    "shipping": {"first_name": "A", "last_name": "B"},
                }
            },
        )
        d = await client.call_tool("orders_delete", {"order_id": oid, "confirm": True})
        g = await client.call_tool("orders_get", {"order_id": oid})  # reads are unaffected
    for res in (r, c, d):
        assert res.is_error
        assert error_of(res)["code"] == "INTERNAL"
        assert "audit" in error_of(res)["message"]
    assert not g.is_error
    assert [x.method for x in orderdesk_sandbox.requests()] == ["GET"]
    assert orderdesk_sandbox.order(oid) == before


async def test_audit_log_on_error_warn_lets_mutations_through(
    orderdesk_sandbox: Any, gateway_factory: Any, tmp_path: Path
) -> None:
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    gw = gateway_factory(overrides={"audit.path": str(tmp_path), "audit.on_error": "warn"})
    async with connect(gw) as client:
        r = await client.call_tool(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"a": "b"}}}
        )
    assert not r.is_error
    assert orderdesk_sandbox.order(oid)["order_metadata"]["a"] == "b"
