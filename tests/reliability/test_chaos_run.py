"""Chaos run: 10 agents, 300 mixed calls, injected 5xx / timeouts / 429 storms and a Redis restart.

Afterwards the sandbox's own state (read directly, not through the gateway) must agree with what the
agents were told:

* every call succeeded or failed with a documented, non-INTERNAL error code;
* order_metadata: each update sets a unique key. A key reported as applied is present; a key that
  upstream ever stored (per the sandbox's request log) is still present (no lost update); no key is
  present that was never sent in an applied PUT (no phantom). A *failed* update's key may be present
  only when its failure is ambiguous (UPSTREAM, or RATE_LIMITED after an unclear earlier attempt);
* history notes: each note appears exactly as often as a POST carrying it was applied upstream
  (0 or 1), and exactly once when the call succeeded;
* creates (with idempotency keys, retried by the agents with the same key): at most one order per
  intended order, exactly one when any call succeeded, and it is the one the gateway returned;
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

from gateway.errors import ErrorCode
from gateway.middleware import error_of
from gateway.testing import connect

DOCUMENTED = {code.value for code in ErrorCode} - {"INTERNAL"}  # the codes a caller may act on
MUTATIONS = {
    "orders_create": "orders.create",
    "orders_update": "orders.update",
    "orders_move": "orders.move",
    "orders_add_note": "orders.add_note",
    "orders_delete": "orders.delete",
}
AGENTS = 10
CALLS_PER_AGENT = 30
REQUEST_TIMEOUT = 0.5
TIMEOUT_DELAY_MS = 900  # > REQUEST_TIMEOUT: the client gives up
#: fault rule names whose handler runs before the response is replaced / delayed
AFTER_APPLY = {"5xx-after", "timeout-after"}
OPS = ["create", "update", "move", "note", "delete", "get", "list"]
WEIGHTS = [15, 25, 8, 14, 8, 16, 14]


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
    if r.is_error:
        err = error_of(r)
        code = err.get("code") if isinstance(err, dict) else None
    rec = CallRecord(agent, tool, args, not r.is_error, code, text, structured, meta)
    calls.append(rec)
    return rec


async def _agent(
    i: int,
    gw: Any,
    calls: list[CallRecord],
    conductor: Conductor,
    update_pool: list[str],
    delete_pool: list[str],
    creates: dict[str, dict[str, Any]],
) -> None:
    rng = random.Random(7000 + i)
    mode = "auto" if i % 2 == 0 else "legacy"
    made = 0
    retry: tuple[str, dict[str, Any], dict[str, Any]] | None = None  # a failed call to repeat as-is
    async with connect(gw, mode=mode) as client:
        while made < CALLS_PER_AGENT:
            made += 1
            if retry is not None:
                tool, args, meta = retry
                retry = None
                await _call(client, i, calls, tool, args, **meta, retried=True)
                conductor.tick()
                continue
            op = rng.choices(OPS, WEIGHTS)[0]
            n = made
            if op == "create":
                key = f"chaos-{i}-{n}-{uuid.uuid4().hex[:8]}"
                email = f"chaos-{i}-{n}@chaos.example"
                body = _new_order(email, f"src-{i}-{n}" if n % 2 else None)
                creates[email] = {"key": key}
                args = {"order": body, "idempotency_key": key}
                rec = await _call(client, i, calls, "orders_create", args, email=email)
                if not rec.ok and rec.code in ("UPSTREAM", "RATE_LIMITED"):
                    retry = ("orders_create", args, {"email": email})  # same key and body: no duplicate
            elif op == "update":
                oid = rng.choice(update_pool)
                key = f"a{i}n{n}"
                args = {"order_id": oid, "changes": {"order_metadata": {key: str(n)}}}
                rec = await _call(client, i, calls, "orders_update", args, key=key, oid=oid)
                if not rec.ok and rec.code in ("UPSTREAM", "RATE_LIMITED", "CONFLICT"):
                    retry = ("orders_update", args, {"key": key, "oid": oid})
            elif op == "move":
                ids = rng.sample(update_pool, rng.choice([1, 1, 2]))
                if rng.random() < 0.5:
                    dest: dict[str, Any] = {"folder_id": rng.randint(1, 4)}
                else:
                    dest = {"folder_name": rng.choice(["New", "Prepared", "Closed", "Canceled"])}
                await _call(client, i, calls, "orders_move", {"order_ids": ids, **dest}, ids=ids)
            elif op == "note":
                oid = rng.choice(update_pool)
                note = f"chaos-note-{i}-{n}"
                await _call(
                    client, i, calls, "orders_add_note", {"order_id": oid, "note": note}, oid=oid, note=note
                )
            elif op == "delete":
                oid = rng.choice(delete_pool)
                await _call(client, i, calls, "orders_delete", {"order_id": oid, "confirm": True}, oid=oid)
            elif op == "get":
                oid = rng.choice(update_pool + delete_pool)
                await _call(client, i, calls, "orders_get", {"order_id": oid}, oid=oid)
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
    conductor = Conductor(sb, own_redis)
    t0 = time.monotonic()
    async with connect(gw) as probe:  # holds the gateway up across all agents and the final checks
        chaos = asyncio.create_task(conductor.run())
        try:
            await asyncio.gather(
                *(_agent(i, gw, calls, conductor, update_pool, delete_pool, creates) for i in range(AGENTS))
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
    assert len(calls) == AGENTS * CALLS_PER_AGENT
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
    assert set(by_tool) == {
        "orders_create",
        "orders_update",
        "orders_move",
        "orders_add_note",
        "orders_delete",
        "orders_get",
        "orders_list",
    }, by_tool
    ok_share = sum(c.ok for c in calls) / len(calls)
    assert ok_share > 0.6, f"only {ok_share:.0%} of calls succeeded"
    for c in calls:
        if c.ok and c.tool == "orders_get":
            assert c.result is not None and c.result["order"]["id"] == c.meta["oid"]

    # --- 2. order_metadata: none lost, none phantom ------------------------------------------------
    applied_puts = [r for r in reqs if r.method == "PUT" and r.path.startswith("/orders/") and _applied(r)]
    upd = [c for c in calls if c.tool == "orders_update"]
    for oid in update_pool:
        final = sb.order(oid)
        assert final is not None, f"order {oid} from the update pool vanished"
        base = set(initial[oid].get("order_metadata") or {})
        keys = set(final.get("order_metadata") or {}) - base
        assert base <= set(final.get("order_metadata") or {}), f"order {oid} lost seeded metadata"
        attempted = {c.meta["key"] for c in upd if c.meta["oid"] == oid}
        stored_upstream = {
            k
            for r in applied_puts
            if r.path == f"/orders/{oid}"
            for k in (r.json or {}).get("order_metadata") or {}
        } - base
        succeeded = {c.meta["key"] for c in upd if c.meta["oid"] == oid and c.ok}
        clean_failures = {
            c.meta["key"]
            for c in upd
            if c.meta["oid"] == oid and not c.ok and c.code not in ("UPSTREAM", "RATE_LIMITED")
        } - succeeded
        assert succeeded <= keys, f"order {oid}: reported updates lost: {sorted(succeeded - keys)}"
        assert stored_upstream <= keys, f"order {oid}: stored then lost: {sorted(stored_upstream - keys)}"
        assert keys <= attempted, f"order {oid}: phantom keys {sorted(keys - attempted)}"
        assert keys <= stored_upstream, (
            f"order {oid}: keys never sent in an applied PUT {keys - stored_upstream}"
        )
        assert not (keys & clean_failures), (
            f"order {oid}: keys of cleanly failed updates {keys & clean_failures}"
        )
        for c in upd:
            if c.ok and c.meta["oid"] == oid:
                assert (
                    c.result is not None
                    and c.result["order"]["order_metadata"].get(c.meta["key"]) is not None
                )
    assert sum(c.ok for c in upd) > 20

    # --- 3. history notes: exactly as often as applied upstream -----------------------------------
    note_posts = Counter(
        (r.path.split("/")[2], (r.json or {}).get("note"))
        for r in reqs
        if r.method == "POST" and r.path.endswith("/order-history") and _applied(r)
    )
    notes = [c for c in calls if c.tool == "orders_add_note"]
    for oid in update_pool:
        history = sb.order(oid, with_history=True).get("order_history") or []
        assert len(history) >= initial_history[oid]
        texts = Counter(h["note"] for h in history if str(h.get("note", "")).startswith("chaos-note-"))
        attempted = {c.meta["note"] for c in notes if c.meta["oid"] == oid}
        assert set(texts) <= attempted, f"order {oid}: phantom notes {set(texts) - attempted}"
        for c in notes:
            if c.meta["oid"] != oid:
                continue
            assert texts[c.meta["note"]] == note_posts[(oid, c.meta["note"])] <= 1, (oid, c.meta["note"])
            if c.ok:
                assert texts[c.meta["note"]] == 1
            elif c.code != "UPSTREAM":
                assert texts[c.meta["note"]] == 0, f"a note that failed with {c.code} was written"

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
    for c in deletes:
        if c.ok:
            assert sb.order(c.meta["oid"]) is None, f"order {c.meta['oid']} reported deleted but still there"
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
    for c in calls:
        if c.tool == "orders_move" and c.ok:
            assert all(moved_to[oid] for oid in c.meta["ids"]), "a move reported done was never applied"

    # --- 6. the audit log: one line per mutation call --------------------------------------------
    lines = [json.loads(line) for line in audit_path.read_text().splitlines() if line.strip()]
    mutation_calls = [c for c in calls if c.tool in MUTATIONS]
    assert len(lines) == len(mutation_calls), (len(lines), len(mutation_calls))

    def expected(c: CallRecord) -> tuple[str, str, str | None]:
        outcome = "ok" if c.ok else f"error:{c.code}"
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
