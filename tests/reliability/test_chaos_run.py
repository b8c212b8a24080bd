"""Chaos run: 10 agents, 300 mixed calls, injected 5xx / timeouts / 429 storms and a Redis restart.

The agents behave as a careful model would, following every hint the tools give: a ``retryable``
error is retried as-is; OUTCOME_UNKNOWN is never retried blindly: the agent re-reads (the tool the
hint names) and re-applies only when the change is not there. Each intended change is one *logical
write* whose end state is ``ack`` (a call succeeded), ``confirmed`` (OUTCOME_UNKNOWN, then a read
showed it), ``failed`` (a clean refusal) or ``unsure`` (the agent ran out of tries while unsure).

Afterwards the sandbox's own state (read directly, not through the gateway) must agree:

* every call succeeded or failed with a documented, non-INTERNAL error code;
* the final store holds every acknowledged or confirmed write exactly once, and nothing that was
  never acknowledged: an order_metadata key, a history note, an added item is present exactly when
  its logical write is ``ack`` or ``confirmed`` (``unsure`` may go either way, at most once);
* creates (with idempotency keys): at most one order per intended order, exactly one when any call
  succeeded, and it is the one the gateway returned;
* deletes: a reported delete is gone; moves: an order's folder is its initial one or the destination
  of a move that was applied upstream;
* the audit log holds exactly one line per mutation call, with matching tool, object and outcome.

Which upstream requests were "applied" is read from the sandbox's request log: a response with no
fault and HTTP 200, or a fault rule that runs the handler first (``after_apply``). A delay-before-apply
fault whose client gave up is dropped unapplied by the sandbox (status 0).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from odmcp.errors import ErrorCode
from odmcp.middleware import error_of
from odmcp.testing import connect

DOCUMENTED = {code.value for code in ErrorCode} - {"INTERNAL"}  # the codes a caller may act on
MUTATIONS = {
    "orders_create": "orders.create",
    "orders_update": "orders.update",
    "orders_move": "orders.move",
    "orders_add_note": "orders.add_note",
    "orders_delete": "orders.delete",
    "order_items_add": "order_items.add",
}
AGENTS = 10
CALLS_PER_AGENT = 30
REQUEST_TIMEOUT = 0.5
TIMEOUT_DELAY_MS = 900  # > REQUEST_TIMEOUT: the client gives up
#: fault rule names whose handler runs before the response is replaced / delayed
AFTER_APPLY = {"5xx-after", "timeout-after"}
OPS = ["create", "update", "move", "note", "item", "delete", "get", "list"]
WEIGHTS = [13, 22, 8, 12, 10, 7, 15, 13]
TRIES = 3  # calls an agent spends on one logical write before it stops


@dataclass
class CallRecord:
    agent: int
    tool: str
    args: dict[str, Any]
    ok: bool
    code: str | None
    text: str
    result: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)


def _applied(rec: Any) -> bool:
    if rec.fault in AFTER_APPLY:
        return True
    return rec.fault is None and rec.status == 200


def _new_order(email: str, source_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": email,
        "shipping": {
            "first_name": "Chaos",
            "last_name": "Agent",
            "address1": "1 Test St",
            "city": "Austin",
            "state": "TX",
            "postal_code": "78701",
            "country": "US",
        },
        "order_items": [{"name": "Widget", "code": "W-1", "price": 9.5, "quantity": 2}],
    }
    if source_id:
        body["source_id"] = source_id
    return body


class Conductor:
    """Counts finished calls and fires the scheduled chaos events at fixed points of the run."""

    def __init__(self, sandbox: Any, own_redis: Any) -> None:
        self.sandbox = sandbox
        self.own_redis = own_redis
        self.done = 0
        self.events: list[tuple[str, float]] = []
        self.changed = asyncio.Event()

    def tick(self) -> None:
        self.done += 1
        self.changed.set()

    async def _until(self, n: int) -> None:
        while self.done < n:
            self.changed.clear()
            await self.changed.wait()

    async def run(self) -> None:
        await self._until(70)
        self.sandbox.storm_429(0.8)
        self.events.append(("storm", time.monotonic()))
        await self._until(130)
        self.events.append(("redis-stop", time.monotonic()))
        await asyncio.to_thread(self.own_redis.stop)
        await asyncio.sleep(0.4)
        await asyncio.to_thread(self.own_redis.start)
        self.events.append(("redis-start", time.monotonic()))
        await self._until(210)
        self.sandbox.storm_429(0.8)
        self.events.append(("storm", time.monotonic()))


async def _call(
    client: Any, agent: int, calls: list[CallRecord], tool: str, args: dict[str, Any], **meta: Any
) -> CallRecord:
    r = await client.call_tool(tool, args)
    text = " ".join(getattr(c, "text", "") for c in r.content)
    structured = r.structured_content if isinstance(r.structured_content, dict) else None
    code = None
    err: dict[str, Any] = {}
    if r.is_error:
        err = error_of(r) or {}
        code = err.get("code")
    bad = [
        t for t in (structured or {}).get("results", []) if t.get("outcome") not in (None, "ok", "unchanged")
    ]
    if bad and not r.is_error:  # a per-target report (orders_move): done only if every target is
        err = {"code": bad[0]["outcome"], "retryable": bool(bad[0].get("retryable"))}
        code = err["code"]
    rec = CallRecord(agent, tool, args, not r.is_error and not bad, code, text, structured, meta, err)
    calls.append(rec)
    return rec


async def _order(client: Any, oid: str, **kw: Any) -> dict[str, Any] | None:
    r = await client.call_tool("orders_get", {"order_id": oid, **kw})
    return None if r.is_error else dict(r.structured_content["order"])


async def _follow(
    client: Any,
    agent: int,
    calls: list[CallRecord],
    conductor: Conductor,
    tool: str,
    args: dict[str, Any],
    present: Any,
    **meta: Any,
) -> str:
    """One logical write, following the hints: the end state (ack, confirmed, failed, unsure)."""
    unsure = False
    for _ in range(TRIES):
        rec = await _call(client, agent, calls, tool, args, **meta)
        conductor.tick()
        if rec.ok:
            return "ack"
        if rec.code == "OUTCOME_UNKNOWN":
            assert rec.error.get("retryable") is False, rec.text
            unsure = True
            seen = await present(client)  # the re-read the hint asks for
            if seen:
                return "confirmed"
            if seen is None:
                continue  # the check itself failed: try again (re-read before any re-apply)
            unsure = False  # the re-read shows nothing: applying it again is safe
            continue
        if rec.error.get("retryable"):
            continue
        return "failed"
    return "unsure" if unsure else "failed"


async def _agent(
    i: int,
    gw: Any,
    calls: list[CallRecord],
    conductor: Conductor,
    update_pool: list[str],
    delete_pool: list[str],
    creates: dict[str, dict[str, Any]],
    writes: list[dict[str, Any]],
) -> None:
    rng = random.Random(7000 + i)
    mode = "auto" if i % 2 == 0 else "legacy"
    made = 0
    async with connect(gw, mode=mode) as client:
        while made < CALLS_PER_AGENT:
            made += 1
            op = rng.choices(OPS, WEIGHTS)[0]
            n = made

            def write(kind: str, tool: str, args: dict[str, Any], present: Any, **meta: Any) -> Any:
                async def run() -> None:
                    state = await _follow(client, i, calls, conductor, tool, args, present, **meta)
                    writes.append({"kind": kind, "state": state, **meta})

                return run()

            if op == "create":
                key = f"chaos-{i}-{n}-{uuid.uuid4().hex[:8]}"
                email = f"chaos-{i}-{n}@chaos.example"
                body = _new_order(email, f"src-{i}-{n}" if n % 2 else None)
                creates[email] = {"key": key}
                args = {"order": body, "idempotency_key": key}

                async def no_check(client: Any) -> None:
                    return None  # the hint: send the same key and body again, it never duplicates

                await write("create", "orders_create", args, no_check, email=email)
            elif op == "update":
                oid = rng.choice(update_pool)
                key = f"a{i}n{n}"
                args = {"order_id": oid, "changes": {"order_metadata": {key: str(n)}}}

                async def has_key(client: Any, oid: str = oid, key: str = key) -> bool | None:
                    order = await _order(client, oid)
                    return None if order is None else key in (order.get("order_metadata") or {})

                await write("update", "orders_update", args, has_key, key=key, oid=oid)
            elif op == "move":
                ids = rng.sample(update_pool, rng.choice([1, 1, 2]))
                fid = rng.randint(1, 4)
                names = {1: "New", 2: "Prepared", 3: "Closed", 4: "Canceled"}
                dest: dict[str, Any] = (
                    {"folder_id": fid} if rng.random() < 0.5 else {"folder_name": names[fid]}
                )

                async def moved(client: Any, ids: list[str] = ids, fid: int = fid) -> bool | None:
                    orders = [await _order(client, oid) for oid in ids]
                    if any(o is None for o in orders):
                        return None
                    return all(str(o["folder_id"]) == str(fid) for o in orders if o is not None)

                await write("move", "orders_move", {"order_ids": ids, **dest}, moved, ids=ids, fid=fid)
            elif op == "note":
                oid = rng.choice(update_pool)
                note = f"chaos-note-{i}-{n}"

                async def has_note(client: Any, oid: str = oid, note: str = note) -> bool | None:
                    order = await _order(client, oid, include_history=True)
                    return (
                        None if order is None else any(h.get("note") == note for h in order["order_history"])
                    )

                await write(
                    "note", "orders_add_note", {"order_id": oid, "note": note}, has_note, oid=oid, note=note
                )
            elif op == "item":
                oid = rng.choice(update_pool)
                name = f"chaos-item-{i}-{n}"
                item = {"name": name, "code": f"CI-{i}-{n}", "price": 2.5, "quantity": 1}

                async def has_item(client: Any, oid: str = oid, name: str = name) -> bool | None:
                    order = await _order(client, oid)
                    return (
                        None if order is None else any(it.get("name") == name for it in order["order_items"])
                    )

                await write(
                    "item", "order_items_add", {"order_id": oid, "item": item}, has_item, oid=oid, name=name
                )
            elif op == "delete":
                oid = rng.choice(delete_pool)

                async def gone(client: Any, oid: str = oid) -> bool | None:
                    r = await client.call_tool("orders_get", {"order_id": oid})
                    code = (error_of(r) or {}).get("code")
                    return True if code == "NOT_FOUND" else (False if not r.is_error else None)

                await write("delete", "orders_delete", {"order_id": oid, "confirm": True}, gone, oid=oid)
            elif op == "get":
                oid = rng.choice(update_pool + delete_pool)
                await _call(client, i, calls, "orders_get", {"order_id": oid}, oid=oid)
                conductor.tick()
            else:
                args = {"limit": rng.randint(1, 40)}
                if rng.random() < 0.5:
                    args["folder_id"] = rng.randint(1, 4)
                await _call(client, i, calls, "orders_list", args)
                conductor.tick()


@pytest.mark.sandbox(rate_limit_enabled=False)
async def test_chaos_run_loses_nothing_duplicates_nothing(
    orderdesk_sandbox, gateway_factory, own_redis, tmp_path
) -> None:
    sb = orderdesk_sandbox
    audit_path = tmp_path / "audit.jsonl"
    gw = gateway_factory(
        overrides={
            "orderdesk": {"request_timeout": REQUEST_TIMEOUT},
            "mutations.reconcile_settle": 0.2,
            "cache.backend": "redis",
            "cache.redis_url": own_redis.url,
            "audit.path": str(audit_path),
        }
    )
    initial = {o["id"]: o for o in sb.orders()}
    seeded = list(initial)
    update_pool, delete_pool = seeded[:12], seeded[12:]
    initial_history = {
        oid: len(sb.order(oid, with_history=True).get("order_history") or []) for oid in update_pool
    }

    # ~7% 5xx before the handler, ~3% 5xx after it ran; ~3% timeouts before, ~2% after the handler ran
    sb.add_fault(name="5xx", status=503, probability=0.07)
    sb.add_fault(name="5xx-after", status=502, probability=0.03 / 0.93, after_apply=True)
    # (each rule only sees the requests the rules before it let through, hence the divisions)
    sb.add_fault(name="timeout", delay_ms=TIMEOUT_DELAY_MS, probability=0.03 / 0.90)
    sb.add_fault(name="timeout-after", delay_ms=TIMEOUT_DELAY_MS, probability=0.02 / 0.87, after_apply=True)

    calls: list[CallRecord] = []
    creates: dict[str, dict[str, Any]] = {}
    writes: list[dict[str, Any]] = []
    conductor = Conductor(sb, own_redis)
    t0 = time.monotonic()
    async with connect(gw) as probe:  # holds the gateway up across all agents and the final checks
        chaos = asyncio.create_task(conductor.run())
        try:
            await asyncio.gather(
                *(
                    _agent(i, gw, calls, conductor, update_pool, delete_pool, creates, writes)
                    for i in range(AGENTS)
                )
            )
            await asyncio.wait_for(chaos, 5)
        finally:
            chaos.cancel()
        elapsed = time.monotonic() - t0
        sb.clear_faults()
        # the cache noticed the Redis outage and came back by itself
        assert gw.cache is not None and gw.cache.backend.name == "redis"
        assert gw.metrics.value("cache_backend_errors_total") > 0, "the Redis restart went unnoticed"
        deadline = time.monotonic() + 5
        while not gw.cache.healthy and time.monotonic() < deadline:
            await probe.call_tool("orders_get", {"order_id": update_pool[0]})
            await asyncio.sleep(0.1)
        assert gw.cache.healthy, "the cache did not recover after Redis came back"
    assert elapsed < 60, f"chaos run took {elapsed:.1f} s"

    # --- the run really was chaotic ----------------------------------------------------------------
    reqs = sb.requests()
    fired = Counter(r.fault for r in reqs if r.fault)
    assert len(calls) >= AGENTS * CALLS_PER_AGENT
    assert [e for e, _ in conductor.events] == ["storm", "redis-stop", "redis-start", "storm"]
    assert fired["storm_429"] > 0 and fired["5xx"] > 0 and fired["5xx-after"] > 0, fired
    assert fired["timeout"] > 0 and fired["timeout-after"] > 0, fired
    share_5xx = (fired["5xx"] + fired["5xx-after"]) / len(reqs)
    share_timeouts = (fired["timeout"] + fired["timeout-after"]) / len(reqs)
    assert 0.05 <= share_5xx <= 0.16 and 0.02 <= share_timeouts <= 0.09, (share_5xx, share_timeouts, fired)

    # --- 1. every call succeeded or failed with a documented code ---------------------------------
    bad = [
        (c.tool, c.code, c.text[:200])
        for c in calls
        if not c.ok and (c.code not in DOCUMENTED or "Traceback" in c.text)
    ]
    assert not bad, f"calls failed without a documented code: {bad}"
    assert all("Traceback" not in c.text for c in calls)
    by_tool = Counter(c.tool for c in calls)
    assert set(by_tool) == {*MUTATIONS, "orders_get", "orders_list"}, by_tool
    states = Counter((w["kind"], w["state"]) for w in writes)
    figures = {
        "calls": len(calls),
        "logical_writes": len(writes),
        "outcome_unknown": sum(c.code == "OUTCOME_UNKNOWN" for c in calls),
        "retryable_errors": sum(bool(c.error.get("retryable")) for c in calls),
        "reconciled_results": sum(bool((c.result or {}).get("reconciled")) for c in calls),
        **{f"{k}:{v}": n for (k, v), n in sorted(states.items())},
    }
    print("chaos figures:", json.dumps(figures))
    assert figures["outcome_unknown"] > 0 and figures["reconciled_results"] > 0, figures
    assert not [w for w in writes if w["state"] == "unsure"] or len(writes) > 50
    ok_share = sum(c.ok for c in calls) / len(calls)
    assert ok_share > 0.6, f"only {ok_share:.0%} of calls succeeded"
    for c in calls:
        if c.ok and c.tool == "orders_get":
            assert c.result is not None and c.result["order"]["id"] == c.meta["oid"]

    # --- 2. every acknowledged or confirmed write is there exactly once, nothing else is -----------
    for w in (w for w in writes if w["kind"] == "update"):
        final = sb.order(w["oid"])
        present = w["key"] in (final.get("order_metadata") or {})
        if w["state"] in ("ack", "confirmed"):
            assert present, f"acknowledged update {w} is not upstream"
        elif w["state"] == "failed":
            assert not present, f"an update reported failed was written: {w}"
    for oid in update_pool:
        final = sb.order(oid)
        assert final is not None, f"order {oid} from the update pool vanished"
        base = set(initial[oid].get("order_metadata") or {})
        assert base <= set(final.get("order_metadata") or {}), f"order {oid} lost seeded metadata"
        keys = set(final.get("order_metadata") or {}) - base
        attempted = {w["key"] for w in writes if w["kind"] == "update" and w["oid"] == oid}
        assert keys <= attempted, f"order {oid}: phantom keys {sorted(keys - attempted)}"
    for c in calls:
        if c.tool == "orders_update" and c.ok:
            assert c.result is not None and c.result["order"]["order_metadata"].get(c.meta["key"]) is not None
    assert sum(c.ok for c in calls if c.tool == "orders_update") > 20

    # --- 3. history notes and added items: exactly once when acknowledged, never otherwise --------
    for kind, label in (("note", "note"), ("item", "name")):
        for w in (w for w in writes if w["kind"] == kind):
            order = sb.order(w["oid"], with_history=True)
            if kind == "note":
                count = sum(h.get("note") == w["note"] for h in order.get("order_history") or [])
            else:
                count = sum(it.get("name") == w["name"] for it in order["order_items"])
            want = {"ack": 1, "confirmed": 1, "failed": 0}.get(w["state"])
            if want is None:
                assert count <= 1, f"{kind} {w[label]} ({w['state']}) is there {count} times"
            else:
                assert count == want, f"{kind} {w[label]} is {w['state']} but upstream has it {count} times"
    for oid in update_pool:
        history = sb.order(oid, with_history=True).get("order_history") or []
        assert len(history) >= min(initial_history[oid], 250)
        texts = {h["note"] for h in history if str(h.get("note", "")).startswith("chaos-note-")}
        attempted = {w["note"] for w in writes if w["kind"] == "note" and w["oid"] == oid}
        assert texts <= attempted, f"order {oid}: phantom notes {texts - attempted}"
        items = {it["name"] for it in sb.order(oid)["order_items"] if it["name"].startswith("chaos-item-")}
        assert items <= {w["name"] for w in writes if w["kind"] == "item"}, f"order {oid}: phantom items"

    # --- 4. creates: never twice -------------------------------------------------------------------
    all_orders = sb.orders()
    by_email = Counter(o.get("email") for o in all_orders)
    create_calls = [c for c in calls if c.tool == "orders_create"]
    assert creates and len(create_calls) >= len(creates)
    for email in creates:
        mine = [c for c in create_calls if c.meta["email"] == email]
        assert by_email[email] <= 1, f"{email} was created {by_email[email]} times"
        returned = {c.result["order"]["id"] for c in mine if c.ok and c.result}
        if returned:
            assert by_email[email] == 1, f"{email} reported created but not in the sandbox"
            assert len(returned) == 1, f"{email}: the same key returned different orders {returned}"
            (stored,) = [o for o in all_orders if o.get("email") == email]
            assert stored["id"] in returned
        elif all(c.code == "VALIDATION" for c in mine):
            assert by_email[email] == 0
    new_orders = [o for o in all_orders if o["id"] not in initial]
    assert all(o.get("email") in creates for o in new_orders), "an order appeared that no agent created"
    assert sum(1 for c in create_calls if c.ok) > 5

    # --- 5. deletes and moves ------------------------------------------------------------------------
    deletes = [c for c in calls if c.tool == "orders_delete"]
    assert any(c.ok for c in deletes)
    for w in writes:
        if w["kind"] == "delete" and w["state"] in ("ack", "confirmed"):
            assert sb.order(w["oid"]) is None, f"order {w['oid']} reported deleted but still there"
    deleted = {oid for oid in delete_pool if sb.order(oid) is None}
    assert deleted <= {c.meta["oid"] for c in deletes}, "an order vanished that nobody deleted"
    assert len(all_orders) == len(initial) - len(deleted) + len(new_orders)
    folders = {1: "New", 2: "Prepared", 3: "Closed", 4: "Canceled"}
    by_name = {v: k for k, v in folders.items()}
    moved_to: dict[str, set[int]] = {oid: set() for oid in update_pool}
    for r in reqs:
        if r.method == "POST" and r.path == "/move-orders" and _applied(r):
            body = r.json or {}
            dest = body.get("destination_folder_id") or by_name.get(body.get("destination_folder_name"))
            for oid in body.get("order_id_list") or []:
                moved_to[str(oid)].add(int(dest))
    for oid in update_pool:
        final_folder = sb.order(oid)["folder_id"]
        allowed = moved_to[oid] or {initial[oid]["folder_id"]}
        assert final_folder in allowed, f"order {oid} is in folder {final_folder}, expected one of {allowed}"
    for w in writes:
        if w["kind"] == "move" and w["state"] in ("ack", "confirmed"):
            # a move reported done was applied, or (settled by a re-read) found the order already there
            assert all(
                moved_to[oid] or str(initial[oid]["folder_id"]) == str(w["fid"]) for oid in w["ids"]
            ), f"a move reported done was never applied: {w}"

    # --- 6. the audit log: one line per mutation call --------------------------------------------
    lines = [json.loads(line) for line in audit_path.read_text().splitlines() if line.strip()]
    mutation_calls = [c for c in calls if c.tool in MUTATIONS]
    assert len(lines) == len(mutation_calls), (len(lines), len(mutation_calls))

    def expected(c: CallRecord) -> tuple[str, str, str | None]:
        # a per-target report is a normal result: its call is audited ok, its failures are per target
        reported = c.tool == "orders_move" and c.result is not None
        outcome = "ok" if c.ok or reported else f"error:{c.code}"
        if c.tool == "orders_create":
            oid = c.result["order"]["id"] if c.ok and c.result else None
        elif c.tool == "orders_move":
            oid = ",".join(c.meta["ids"])
        else:
            oid = c.meta["oid"]
        return MUTATIONS[c.tool], outcome, oid

    want = Counter(expected(c) for c in mutation_calls)
    got = Counter((ln["tool"], ln["outcome"], ln.get("object_id")) for ln in lines)
    assert got == want, f"audit mismatch: missing {want - got}, unexpected {got - want}"
    assert all("arguments" not in ln and "changes" not in ln for ln in lines)
