"""Issue 24: a bulk undo of 50 orders with outside edits in between; unclear answers during a revert
(applied then 5xx, a dropped connection, a timeout) and a repeat: every field restored exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.testing import connect

MARK = "bulk-undo@example.com"


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    out: dict[str, Any] = result.structured_content
    return out


@pytest.mark.sandbox(seed_orders=52)
async def test_bulk_undo_restores_all_but_the_orders_edited_since(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    sb = orderdesk_sandbox
    ids = sorted(o["id"] for o in sb.orders())[:50]
    emails = {oid: sb.order(oid)["email"] for oid in ids}
    edited = ids[::10]  # 5 orders a person edits afterwards
    async with connect(gateway_factory()) as c:
        report = _ok(await c.call_tool("orders_update_many", {"order_ids": ids, "changes": {"email": MARK}}))
        assert report["totals"] == {"ok": 50}
        for oid in edited:
            sb.edit_order(sb.store_id, oid, {"email": f"person-{oid}@example.com"})
        (job,) = _ok(await c.call_tool("changes_list", {"limit": 100}))["changes"]
        assert len(job["targets"]) == 50 and job["revertible"] and job["tool"] == "orders.update_many"
        sb.clear_requests()
        undone = _ok(await c.call_tool("changes_revert", {"change_id": job["change_id"]}))
        again = _ok(await c.call_tool("orders_get", {"order_id": ids[1]}))["order"]
    assert undone["totals"] == {"ok": 45, "CONFLICT": 5}
    conflicts = {r["target"]: r for r in undone["results"] if r["outcome"] == "CONFLICT"}
    assert sorted(conflicts) == sorted(edited)
    for oid in edited:
        assert conflicts[oid]["conflicts"] == [
            {"path": "email", "wrote": MARK, "current": f"person-{oid}@example.com"}
        ]
        assert sb.order(oid)["email"] == f"person-{oid}@example.com"  # left alone
    for oid in set(ids) - set(edited):
        assert sb.order(oid)["email"] == emails[oid]
    assert again["email"] == emails[ids[1]]
    assert len(sb.requests(method="PUT")) == 45  # one PUT per restored order, none for the conflicts


async def test_a_subset_of_a_job_and_force_for_the_owner(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    sb = orderdesk_sandbox
    ids = sorted(o["id"] for o in sb.orders())[:3]
    emails = {oid: sb.order(oid)["email"] for oid in ids}
    async with connect(gateway_factory()) as c:
        _ok(await c.call_tool("orders_update_many", {"order_ids": ids, "changes": {"email": MARK}}))
        sb.edit_order(sb.store_id, ids[0], {"email": "person@example.com"})
        (job,) = _ok(await c.call_tool("changes_list", {}))["changes"]
        err = error_of(await c.call_tool("changes_revert", {"change_id": job["change_id"], "targets": ["9"]}))
        assert err["code"] == "VALIDATION"
        one = _ok(
            await c.call_tool(
                "changes_revert", {"change_id": job["change_id"], "targets": [ids[0]], "force": True}
            )
        )
    assert one["total"] == 1 and one["results"][0]["restored"] == ["email"]
    assert sb.order(ids[0])["email"] == emails[ids[0]]  # forced over the person's edit
    assert sb.order(ids[1])["email"] == MARK  # not in the subset


FAULTS = {
    "5xx": {"after_apply": True, "status": 500},
    "drop": {"after_apply": True, "drop": True},
    "timeout": {"after_apply": True, "delay_ms": 800},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_an_unclear_answer_during_a_revert_then_a_repeat_restores_once(
    gateway_factory: Any, orderdesk_sandbox: Any, fault: str
) -> None:
    sb = orderdesk_sandbox
    oid = "200031"
    start = sb.order(oid)
    gw = gateway_factory(overrides={"mutations.write_deadline": 0.3})
    async with connect(gw) as c:
        _ok(
            await c.call_tool(
                "orders_update", {"order_id": oid, "changes": {"email": MARK, "shipping": {"city": "X"}}}
            )
        )
        (change,) = _ok(await c.call_tool("changes_list", {"order_id": oid}))["changes"]
        sb.clear_requests()
        rule = sb.add_fault(method="PUT", path=rf"^/orders/{oid}$", times=1, **FAULTS[fault])
        args = {"change_id": change["change_id"], "idempotency_key": f"undo-{fault}"}
        first = _ok(await c.call_tool("changes_revert", args))
        repeat = _ok(await c.call_tool("changes_revert", args))
    assert first["results"][0]["outcome"] == "ok" and first["results"][0].get("reconciled")
    assert repeat["replayed"] and repeat["results"] == first["results"]
    now = sb.order(oid)
    assert now["email"] == start["email"] and now["shipping"]["city"] == start["shipping"]["city"]
    # sent once (the faulted PUT, applied): the re-read settled it, the repeat replayed the report
    assert rule.fired == 1
    assert [r for r in sb.requests(method="PUT") if r.fault is None] == []
