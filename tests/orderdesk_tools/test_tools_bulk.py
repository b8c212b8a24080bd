"""Bulk tools through the real MCP client and real HTTP to the sandbox: the per-target report against
the upstream state, validation before any write, dry runs, idempotent repeats, progress, cancellation,
the rate-limit reserve, and unclear answers in the middle of a job."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import anyio
import pytest

from odmcp.middleware import error_of
from odmcp.testing import connect


def _ids(sb: Any, n: int, start: int = 0) -> list[str]:
    return [o["id"] for o in sb.orders()][start : start + n]


def _writes(sb: Any, method: str = "PUT", path: str = "/orders/") -> list[Any]:
    return [r for r in sb.requests(method=method) if r.path.startswith(path)]


async def test_the_same_change_on_many_orders_is_reported_per_order(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 12)
    same = ids[0]
    orderdesk_sandbox.edit_order(orderdesk_sandbox.store_id, same, {"shipping_method": "Bulk Ground"})
    async with connect(gateway_factory()) as c:
        r = await c.call_tool(
            "orders_update_many",
            {"order_ids": [*ids, "999999"], "changes": {"shipping_method": "Bulk Ground"}},
        )
        again = await c.call_tool("orders_get", {"order_id": ids[5]})
    assert not r.is_error, r.content[0].text
    report = r.structured_content
    assert report["total"] == 13 and report["totals"] == {"ok": 11, "unchanged": 1, "NOT_FOUND": 1}
    by = {e["target"]: e for e in report["results"]}
    assert [e["target"] for e in report["results"]] == [*ids, "999999"]
    assert by[same]["outcome"] == "unchanged" and by["999999"]["outcome"] == "NOT_FOUND"
    assert by[ids[1]]["changed_fields"] == ["shipping_method"]
    for oid in ids:
        assert orderdesk_sandbox.order(oid)["shipping_method"] == "Bulk Ground"
    assert len(_writes(orderdesk_sandbox)) == 11  # nothing sent for the unchanged order
    assert again.structured_content["order"]["shipping_method"] == "Bulk Ground"


async def test_one_invalid_entry_writes_nothing(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    ids = _ids(orderdesk_sandbox, 3)
    updates = [
        {"order_id": ids[0], "changes": {"email": "ok@example.com"}},
        {"order_id": ids[1], "changes": {"order_total": 5}},  # read-only: refused
        {"order_id": ids[2], "changes": {"folder_id": 999}},
    ]
    async with connect(gateway_factory()) as c:
        bad = await c.call_tool("orders_update_many", {"updates": updates})
        folder = await c.call_tool("orders_update_many", {"updates": [updates[0], updates[2]]})
        twice = await c.call_tool("orders_update_many", {"updates": [updates[0], updates[0]]})
        ships = await c.call_tool(
            "shipments_add_many",
            {
                "shipments": [
                    {"order_id": ids[0], "tracking_number": "T1"},
                    {"order_id": "x1", "tracking_number": "T2"},
                ]
            },
        )
    assert error_of(bad)["code"] == "VALIDATION" and ids[1] in error_of(bad)["message"]
    assert error_of(folder)["code"] == "VALIDATION" and "999" in error_of(folder)["message"]
    assert error_of(twice)["code"] == "VALIDATION" and "twice" in error_of(twice)["message"]
    assert error_of(ships)["code"] == "VALIDATION"
    assert [r for r in orderdesk_sandbox.requests() if r.method != "GET"] == []


async def test_a_dry_run_returns_each_diff_and_sends_nothing(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 3)
    async with connect(gateway_factory()) as c:
        r = await c.call_tool(
            "orders_update_many", {"order_ids": ids, "changes": {"email": "dry@example.com"}, "dry_run": True}
        )
    report = r.structured_content
    assert report["totals"] == {"dry_run": 3}
    assert all(
        e["changes"][0]["path"] == "email" and e["changes"][0]["after"] == "dry@example.com"
        for e in report["results"]
    )
    assert [r for r in orderdesk_sandbox.requests() if r.method != "GET"] == []


async def test_a_repeat_with_the_same_key_returns_the_first_report_and_writes_nothing(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 4)
    args = {"order_ids": ids, "note": "bulk note", "idempotency_key": "notes-job-0001"}
    async with connect(gateway_factory()) as c:
        first = await c.call_tool("orders_add_note_many", args)
        posts = len(_writes(orderdesk_sandbox, "POST"))
        second = await c.call_tool("orders_add_note_many", args)
        other = await c.call_tool("orders_add_note_many", {**args, "note": "another note"})
    assert first.structured_content["totals"] == {"ok": 4} and not first.structured_content["replayed"]
    assert second.structured_content["replayed"] is True
    assert second.structured_content["results"] == first.structured_content["results"]
    assert len(_writes(orderdesk_sandbox, "POST")) == posts == 4
    assert error_of(other)["code"] == "VALIDATION"  # same key, different job
    for oid in ids:
        notes = [h["note"] for h in orderdesk_sandbox.order(oid, with_history=True)["order_history"]]
        assert notes.count("bulk note") == 1


async def test_progress_is_reported_while_a_job_runs(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    ids = _ids(orderdesk_sandbox, 25)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect(gateway_factory()) as c:
        r = await c.call_tool(
            "orders_update_many",
            {"order_ids": ids, "changes": {"order_metadata": {"bulk": "1"}}},
            progress_callback=on_progress,
        )
    assert r.structured_content["totals"] == {"ok": 25}
    assert [p for p, _, _ in seen if p in (10, 20, 25)] == [10, 20, 25]
    assert all(total == 25 for _, total, _ in seen)
    assert "update: 25/25 done" in (seen[-1][2] or "")


async def test_a_cancelled_job_starts_nothing_new_and_leaves_every_order_consistent(
    gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 30)
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/\d+$", delay_ms=150)  # a slow upstream
    gw = gateway_factory(overrides={"bulk.concurrency": 2})
    async with connect(gw) as c:
        with anyio.move_on_after(0.8):
            await c.call_tool(
                "orders_update_many", {"order_ids": ids, "changes": {"order_metadata": {"job": "c"}}}
            )
        await asyncio.sleep(0.6)  # the writes in flight finish
        done = {
            oid for oid in ids if (orderdesk_sandbox.order(oid).get("order_metadata") or {}).get("job") == "c"
        }
        puts = len(_writes(orderdesk_sandbox))
        await asyncio.sleep(0.6)
        assert len(_writes(orderdesk_sandbox)) == puts, "targets kept starting after the cancel"
        assert 0 < len(done) < len(ids)
        # no lock was left behind: the next update of a done order goes through at once
        t0 = time.monotonic()
        after = await c.call_tool(
            "orders_update", {"order_id": sorted(done)[0], "changes": {"email": "x@example.com"}}
        )
        assert not after.is_error and time.monotonic() - t0 < 2
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    cancelled = [ln for ln in lines if ln["tool"] == "orders.update_many"]
    # the audit line says what the cancelled job wrote, target by target
    assert len(cancelled) == 1 and cancelled[0]["cancelled"] is True and cancelled[0]["outcome"] == "partial"
    assert {w["target"] for w in cancelled[0]["writes"] if w["state"] == "applied"} == done


@pytest.mark.sandbox(rate_limit_enabled=True)
async def test_a_single_get_is_answered_quickly_while_a_bulk_job_runs(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 14)  # 28 requests: 15 at once (5 are left for others), 13 at 3/s
    async with connect(gateway_factory()) as c:
        job = asyncio.create_task(
            c.call_tool("orders_update_many", {"order_ids": ids, "changes": {"order_metadata": {"r": "1"}}})
        )
        await asyncio.sleep(1.5)  # the job has used the burst and runs at the refill rate
        t0 = time.monotonic()
        got = await c.call_tool("orders_get", {"order_id": _ids(orderdesk_sandbox, 1, 30)[0]})
        waited = time.monotonic() - t0
        report = (await job).structured_content
    assert not got.is_error and waited <= 2.0, waited
    assert report["totals"] == {"ok": 14}
    assert not [r for r in orderdesk_sandbox.requests() if r.status == 429]


async def test_shipments_go_in_batches_and_each_is_reported(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 30)
    ships = [{"order_id": oid, "tracking_number": f"BULK-{oid}", "carrier_code": "UPS"} for oid in ids]
    ships.append({"order_id": "999999", "tracking_number": "BULK-X"})
    async with connect(gateway_factory()) as c:
        r = await c.call_tool("shipments_add_many", {"shipments": ships})
        listed = await c.call_tool("shipments_list", {"order_id": ids[3]})
    report = r.structured_content
    assert report["totals"] == {"ok": 30, "NOT_FOUND": 1}, report["totals"]
    assert len(_writes(orderdesk_sandbox, "POST", "/batch-shipments")) == 1
    assert [
        r
        for r in orderdesk_sandbox.requests(method="POST")
        if "/shipments" in r.path and "batch" not in r.path
    ] == []
    for oid in ids:
        assert [s["tracking_number"] for s in orderdesk_sandbox.order(oid)["order_shipments"]].count(
            f"BULK-{oid}"
        ) == 1
    assert f"BULK-{ids[3]}" in [s["tracking_number"] for s in listed.structured_content["shipments"]]


async def test_inventory_by_code_and_id_in_one_batch(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    inv = orderdesk_sandbox.state.stores[orderdesk_sandbox.store_id].inventory
    first, second, third = (inv[i] for i in sorted(inv)[:3])
    updates = [
        {"id": str(first["id"]), "changes": {"stock": 41}},
        {"code": second["code"], "changes": {"stock": 42}},
        {"code": "NO-SUCH-SKU", "changes": {"stock": 1}},
        {"code": third["code"], "changes": {"name": third["name"]}},  # already so: not sent
    ]
    async with connect(gateway_factory()) as c:
        r = await c.call_tool("inventory_update_many", {"updates": updates})
        got = await c.call_tool("inventory_get", {"item_id": str(first["id"])})
    report = r.structured_content
    assert report["totals"] == {"ok": 2, "NOT_FOUND": 1, "unchanged": 1}, report
    assert int(float(inv[first["id"]]["stock"])) == 41 and int(float(inv[second["id"]]["stock"])) == 42
    assert len(_writes(orderdesk_sandbox, "PUT", "/batch-inventory-items")) == 1
    assert int(float(got.structured_content["item"]["stock"])) == 41


async def test_unclear_answers_in_a_job_are_reconciled_never_applied_twice(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 20)
    orderdesk_sandbox.add_fault(
        method="PUT", path=r"^/orders/\d+$", after_apply=True, status=500, probability=0.2
    )
    orderdesk_sandbox.add_fault(
        method="PUT", path=r"^/orders/\d+$", after_apply=True, drop=True, probability=0.1
    )
    overrides = {"orderdesk": {"request_timeout": 1.0}, "mutations.reconcile_settle": 0.1}
    async with connect(gateway_factory(overrides=overrides)) as c:
        r = await c.call_tool(
            "orders_update_many",
            {"order_ids": ids, "changes": {"order_items": [{"name": "BULK-ITEM", "quantity": 1}]}},
        )
    report = r.structured_content
    assert report["totals"] == {"ok": 20}, report
    assert any(e.get("reconciled") for e in report["results"])
    for oid in ids:  # every order has the item exactly once
        assert [i["name"] for i in orderdesk_sandbox.order(oid)["order_items"]].count("BULK-ITEM") == 1


async def test_a_repeat_after_an_interrupted_job_redoes_nothing_already_done(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 16)
    args = {
        "order_ids": ids,
        "changes": {"order_metadata": {"resume": "1"}},
        "idempotency_key": "resume-job-01",
    }
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/\d+$", delay_ms=150)  # a slow upstream
    async with connect(gateway_factory(overrides={"bulk.concurrency": 2})) as c:
        with anyio.move_on_after(0.7):  # the connection drops in the middle of the job
            await c.call_tool("orders_update_many", args)
        await asyncio.sleep(0.6)  # the writes in flight finish
        first = {
            oid for oid in ids if (orderdesk_sandbox.order(oid).get("order_metadata") or {}).get("resume")
        }
        assert 0 < len(first) < len(ids)
        again = await c.call_tool("orders_update_many", args)
    assert again.structured_content["totals"] == {"ok": 16}
    puts = [r.path for r in orderdesk_sandbox.requests(method="PUT")]
    assert all(puts.count(f"/orders/{oid}") == 1 for oid in ids)  # each order written once in all


FAULTS = {
    "apply_then_500": {"after_apply": True, "status": 500},
    "apply_then_drop": {"after_apply": True, "drop": True},
    "apply_then_timeout": {"after_apply": True, "delay_ms": 1500},
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_batch_and_note_jobs_with_an_unclear_answer_write_once_and_say_so(
    fault: str, gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    ids = _ids(orderdesk_sandbox, 3, 20)
    inv = orderdesk_sandbox.state.stores[orderdesk_sandbox.store_id].inventory
    item = inv[sorted(inv)[4]]
    ships = [{"order_id": oid, "tracking_number": f"U-{fault}-{oid}"} for oid in ids]
    overrides = {"orderdesk": {"request_timeout": 0.5, "max_retries": 1}}
    async with connect(gateway_factory(overrides=overrides)) as c:
        rules = [
            orderdesk_sandbox.add_fault(method="*", path=path, times=1, **FAULTS[fault])
            for path in (r"^/batch-shipments$", r"^/batch-inventory-items$", r"^/orders/\d+/order-history$")
        ]
        shipped = await c.call_tool("shipments_add_many", {"shipments": ships})
        stocked = await c.call_tool(
            "inventory_update_many", {"updates": [{"id": str(item["id"]), "changes": {"stock": 71}}]}
        )
        noted = await c.call_tool("orders_add_note_many", {"order_ids": ids, "note": f"note {fault}"})
        # the tools' words: every target applied (confirmed by a re-read where the answer was unclear)
        assert shipped.structured_content["totals"] == {"ok": 3}, shipped.content[0].text
        assert stocked.structured_content["totals"] == {"ok": 1}, stocked.content[0].text
        assert noted.structured_content["totals"] == {"ok": 3}, noted.content[0].text
        # the next reads show upstream truth
        listed = await c.call_tool("shipments_list", {"order_id": ids[0], "fields": "full"})
        got = await c.call_tool("inventory_get", {"item_id": str(item["id"])})
        history = await c.call_tool("orders_get", {"order_id": ids[1], "include_history": True})
    assert [r.fired for r in rules] == [1, 1, 1]  # every fault hit its endpoint
    # upstream: each applied exactly once
    for oid in ids:
        order = orderdesk_sandbox.order(oid, with_history=True)
        assert [s["tracking_number"] for s in order["order_shipments"]].count(f"U-{fault}-{oid}") == 1
        assert [h["note"] for h in order["order_history"]].count(f"note {fault}") == 1
    assert int(float(inv[item["id"]]["stock"])) == 71
    assert f"U-{fault}-{ids[0]}" in json.dumps(listed.structured_content)
    assert int(float(got.structured_content["item"]["stock"])) == 71
    assert [h["note"] for h in history.structured_content["order"]["order_history"]].count(
        f"note {fault}"
    ) == 1
