"""A chaos run of agents that follow every hint, and the invariants it must keep (issue 19).

Used by ``tests/reliability/test_chaos_hints.py`` (3 agents x 30 steps, a few seconds) and by
``bench/bench_chaos.py`` (more agents, more steps, several seeds). It never asserts: :func:`run_chaos`
returns the figures and the list of violations, and the caller decides.

The agents behave as a careful model would:

* a success is taken at its word (it is what the invariants check);
* ``OUTCOME_UNKNOWN`` (or a call cut by the gateway's restart, which an agent sees as no answer at all)
  is never repeated blindly: the agent re-reads the order and applies only what is missing; a keyed
  call (``orders_create``, ``orders_add_note_many``) is sent again with the same key and arguments (the
  documented way: a repeat returns the same order, skips the targets applied, reconciles those in
  flight and re-runs those whose failure was retryable);
* an error with ``retryable: true`` (CONFLICT included) is retried as it is;
* anything else (VALIDATION, NOT_FOUND, ...) is never retried.

Each agent draws its steps from its own seeded RNG: add a unique item, add a unique history note, set
its own ``order_metadata`` key, add a unique item through ``orders_update``, create a keyed order,
add a unique note to three orders in one keyed ``orders_add_note_many``, delete an order of the delete
pool, read an order. Every sixth step two agents meet and make the same
change at once: the same item added to the same order, or the same note (*twins*).
Meanwhile "the UI" (the sandbox's ``edit_order``) changes an order after every ``ui_every``-th call:
its own metadata key, the shipping first name and, every third time, an item of its own. Upstream
faults come from the sandbox's fault rules with seeded probabilities: 5xx before and after the handler
ran (``after_apply``), dropped connections before and after it, short holds (``delay_ms``, below the
client's timeout: they widen the windows in which calls overlap) and long holds past the timeout,
before and after apply (plus two sure ones: the 4th and 5th item adds are applied, then answered 502).
Half-way through the run the gateway is restarted: every agent's connection
is cut (calls in flight get no answer), the gateway shuts down, and a new :class:`~odmcp.app.Gateway`
is built over the same durable journal; the agents reconnect and go on.

The invariants, checked against the sandbox's final state (read directly, not through the gateway)
and every tool answer. For every identity (an item name on an order, a note on an order, a metadata
key, a created order, a deleted order), with ``acked`` its successful calls (or bulk targets) and
``unknown`` those that ended ``OUTCOME_UNKNOWN`` or were cut; all the calls with one idempotency key
count as one (the key promises one write per target, however often the call is repeated):

* **lost**: upstream has it fewer than ``acked`` times;
* **duplicated**: upstream has it more than ``acked + unknown`` times (twins: two acknowledged adds of
  the same item are two entries; a failure that is not ``OUTCOME_UNKNOWN`` wrote nothing);
* **phantom**: upstream has something (an agent's item, note, key, order) that no call acknowledged
  nor reported unknown for, or an order vanished that nobody deleted;
* **untrue answer**: a success whose value contradicts the call (an update whose order lacks the key,
  a create that returned another order), or an error without a documented code.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from odmcp.errors import ErrorCode
from odmcp.middleware import error_of
from odmcp.testing import connect

#: the codes a caller may act on (INTERNAL would be a bug)
DOCUMENTED = {code.value for code in ErrorCode} - {"INTERNAL"}
REQUEST_TIMEOUT = 0.5
LONG_HOLD_MS = 650  # > REQUEST_TIMEOUT: the client gives up
SHORT_HOLD_MS = 120
#: (name, share of all upstream requests, rule fields); each rule sees only what the ones before it
#: let through, so the probabilities given to the sandbox are conditional (see :func:`add_faults`)
FAULTS: list[tuple[str, float, dict[str, Any]]] = [
    ("5xx-before", 0.05, {"status": 503}),
    ("5xx-after", 0.03, {"status": 502, "after_apply": True}),
    ("drop-before", 0.015, {"drop": True}),
    ("drop-after", 0.015, {"drop": True, "after_apply": True}),
    ("hold-long-before", 0.015, {"delay_ms": LONG_HOLD_MS}),
    ("hold-long-after", 0.015, {"delay_ms": LONG_HOLD_MS, "after_apply": True}),
    ("hold", 0.08, {"delay_ms": SHORT_HOLD_MS}),
]
OPS = ["item", "note", "update", "update_item", "create", "notes_many", "delete", "get"]
WEIGHTS = [22, 16, 18, 8, 5, 5, 6, 12]
UNKNOWN = ("OUTCOME_UNKNOWN", "CUT")
TWIN_EVERY = 6  # every sixth step of a pair of agents is a twin change
TRIES = 4  # calls an agent spends on one logical write
READ_TRIES = 3  # reads an agent spends on one check
GATEWAY_OVERRIDES: dict[str, Any] = {
    "orderdesk": {"request_timeout": REQUEST_TIMEOUT},
    "mutations.reconcile_settle": 0.05,
    "mutations.write_deadline": 10.0,
    "mutations.lock_wait": 20.0,
}


@dataclass
class Settings:
    agents: int = 3
    steps: int = 30
    seed: int = 1
    #: orders the agents add to and update (few: they collide)
    add_pool: int = 6
    delete_pool: int = 6
    #: an outside edit after every this many calls
    ui_every: int = 7
    restart: bool = True
    #: multiplies every fault's share of requests
    fault_scale: float = 1.0


@dataclass
class Call:
    agent: int
    tool: str
    ok: bool
    #: ok, OUTCOME_UNKNOWN, CUT (no answer: the restart cut it) or the error code
    outcome: str
    retryable: bool
    text: str
    result: dict[str, Any] | None
    #: the identity the call writes ((kind, ...)), None for reads and bulk calls
    ident: tuple[Any, ...] | None
    #: 0 before the restart, 1 after
    epoch: int = 0
    #: what became of each identity the call writes: ok, unchanged, OUTCOME_UNKNOWN, CUT, a code
    targets: dict[tuple[Any, ...], str] = field(default_factory=dict)
    #: the identities whose failure said it may be retried
    retry: set[tuple[Any, ...]] = field(default_factory=set)
    #: the call's idempotency key: all calls with one key are one logical write per identity
    key: str | None = None

    @property
    def unknown(self) -> bool:
        return self.outcome in UNKNOWN


@dataclass
class Result:
    figures: dict[str, Any]
    violations: list[str]
    calls: list[Call] = field(default_factory=list)
    #: checks the invariants again against the sandbox as it is now (tests tamper with it first)
    recheck: Callable[[], list[str]] = lambda: []


def add_faults(sandbox: Any, scale: float = 1.0) -> None:
    """The fault rules, each with the conditional probability that gives it its share of requests."""
    # two sure ones, so every run has unclear answers to settle: item adds applied, then answered 502
    sandbox.add_fault(
        name="5xx-after", method="POST", path=r"/order-items$", status=502, after_apply=True, skip=3, times=2
    )
    left = 1.0
    for name, share, rule in FAULTS:
        sandbox.add_fault(name=name, probability=share * scale / left, **rule)
        left -= share * scale


class Twin:
    """Two agents meet here and then make the same change at once."""

    def __init__(self) -> None:
        self.arrived = 0
        self.go = asyncio.Event()


class Conductor:
    """Counts calls; makes the UI's edits and the gateway's restart happen at fixed counts."""

    def __init__(
        self, settings: Settings, sandbox: Any, make_gateway: Callable[[], Any], add_pool: list[str]
    ) -> None:
        self.s = settings
        self.sandbox = sandbox
        self.make_gateway = make_gateway
        self.gateway = make_gateway()
        self.add_pool = add_pool
        self.rng = random.Random(settings.seed * 7919)
        self.done = 0
        self.epoch = 0
        self.restart_at = settings.agents * settings.steps // 2 if settings.restart else None
        self.restarting = asyncio.Event()
        self.up = asyncio.Event()
        self.up.set()
        self.parked = 0  # agents disconnected, waiting for the new gateway
        self.finished = 0
        #: something the run itself got wrong (not an invariant of the gateway)
        self.problems: list[str] = []
        self.changed = asyncio.Event()
        self.restart_task: asyncio.Task[None] | None = None
        self.restarted_after: int | None = None
        self.ui: list[dict[str, Any]] = []
        self.twins: dict[tuple[int, int], Twin] = {}

    def tick(self) -> None:
        self.done += 1
        if self.done % self.s.ui_every == 0:
            self.ui_edit()
        if self.restart_at is not None and self.done >= self.restart_at and self.restart_task is None:
            self.restart_task = asyncio.ensure_future(self._restart())

    def note(self, parked: int = 0, finished: int = 0) -> None:
        self.parked += parked
        self.finished += finished
        self.changed.set()

    def ui_edit(self) -> None:
        """An edit "from the OrderDesk UI": merged into the order as it is now (atomic in the sandbox)."""
        n = len(self.ui) + 1
        oid = self.rng.choice(self.add_pool)
        order = self.sandbox.order(oid)
        meta = {**(order.get("order_metadata") or {}), f"ui{n}": "1"}
        changes: dict[str, Any] = {"order_metadata": meta, "shipping": {"first_name": f"Ui{n}"}}
        item = None
        if n % 3 == 0:
            item = f"ui-item-{n}"
            changes["order_items"] = [*order["order_items"], {"name": item, "price": 1, "quantity": 1}]
        self.sandbox.edit_order(self.sandbox.store_id, oid, changes)
        self.ui.append({"oid": oid, "key": f"ui{n}", "item": item})

    async def _restart(self) -> None:
        """Cut every connection, let the old gateway shut down, build a new one over the same journal."""
        self.restarted_after = self.done
        self.up.clear()
        self.restarting.set()
        while self.parked + self.finished < self.s.agents:
            self.changed.clear()
            await self.changed.wait()
        if self.gateway.journal is not None:  # it shuts down with its last client
            self.problems.append("the old gateway was still open when the new one started")
        self.gateway = self.make_gateway()
        self.epoch += 1
        self.parked = 0
        self.restarting.clear()
        self.up.set()


class Agent:
    def __init__(self, i: int, conductor: Conductor, calls: list[Call], pools: dict[str, list[str]]) -> None:
        self.i = i
        self.c = conductor
        self.calls = calls
        self.pools = pools
        self.rng = random.Random(conductor.s.seed * 1000 + i)
        self.mode = "auto" if i % 2 == 0 else "legacy"
        self.stack: contextlib.AsyncExitStack | None = None
        self.client: Any = None

    # --- the connection, and the restart --------------------------------------------------------

    async def _connect(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.client = await self.stack.enter_async_context(connect(self.c.gateway, mode=self.mode))

    async def _disconnect(self) -> None:
        if self.stack is not None:
            stack, self.stack, self.client = self.stack, None, None
            await stack.aclose()

    async def _reconnect(self) -> None:
        await self._disconnect()
        self.c.note(parked=1)
        await self.c.up.wait()
        await self._connect()

    async def _race(self, aw: Awaitable[Any]) -> tuple[bool, Any]:
        """Await ``aw`` unless the restart comes first: (True, its result) or (False, None)."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.c.restarting.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False, None

    async def call(
        self,
        tool: str,
        args: dict[str, Any],
        ident: tuple[Any, ...] | None = None,
        *,
        bulk: dict[str, tuple[Any, ...]] | None = None,
    ) -> Call:
        """One tool call. ``ident``: what a single write writes; ``bulk``: a bulk call's report target
        names and what each writes."""
        if self.c.restarting.is_set():
            await self._reconnect()
        epoch = self.c.epoch
        key = args.get("idempotency_key")
        answered, r = await self._race(self.client.call_tool(tool, args))
        if not answered:
            rec = Call(self.i, tool, False, "CUT", False, "", None, ident, epoch, key=key)
            rec.targets = {i: "CUT" for i in ([ident] if ident else list((bulk or {}).values()))}
            self.calls.append(rec)
            self.c.tick()
            await self._reconnect()
            return rec
        text = " ".join(getattr(c, "text", "") for c in r.content)
        structured = r.structured_content if isinstance(r.structured_content, dict) else None
        err = (error_of(r) or {}) if r.is_error else {}
        outcome = "ok" if not r.is_error else str(err.get("code"))
        rec = Call(
            self.i,
            tool,
            not r.is_error,
            outcome,
            bool(err.get("retryable")),
            text,
            structured,
            ident,
            epoch,
            key=key,
        )
        if ident is not None:
            rec.targets = {ident: outcome}
            if rec.retryable:
                rec.retry = {ident}
        elif bulk:
            report = structured if not r.is_error else (err.get("details") or {}).get("report")
            entries = {str(e["target"]): e for e in (report or {}).get("results") or []}
            for name, what in bulk.items():
                e = entries.get(name)
                rec.targets[what] = str(e["outcome"]) if e else outcome
                if (e and e.get("retryable")) or (not e and rec.retryable):
                    rec.retry.add(what)
        self.calls.append(rec)
        self.c.tick()
        return rec

    async def meet(self, twin: Twin) -> None:
        twin.arrived += 1
        if twin.arrived == 2:
            twin.go.set()
        while not twin.go.is_set():
            met, _ = await self._race(twin.go.wait())
            if not met:
                await self._reconnect()

    # --- following the hints --------------------------------------------------------------------

    async def order(self, oid: str, history: bool = False) -> dict[str, Any] | bool | None:
        """The order through the gateway: the dict, False when it does not exist, None when unreadable."""
        for _ in range(READ_TRIES):
            args: dict[str, Any] = {"order_id": oid}
            if history:
                args["include_history"] = True
            rec = await self.call("orders_get", args)
            if rec.ok and rec.result is not None:
                return dict(rec.result["order"])
            if rec.outcome == "NOT_FOUND":
                return False
        return None

    async def follow(
        self,
        tool: str,
        args: dict[str, Any],
        ident: tuple[Any, ...],
        there: Callable[[], Awaitable[bool | None]] | None,
    ) -> None:
        """One logical write: call, and follow the answer's hint (see the module doc)."""
        for _ in range(TRIES):
            rec = await self.call(tool, args, ident)
            if rec.ok:
                return
            if rec.unknown:
                if there is None:
                    continue  # a keyed create: the same key and body again
                seen = await there()
                if seen is None or seen:
                    return  # it is there (or it can't be told: stop, an honest unknown)
                continue  # the re-read shows it missing: apply it (the only thing missing) again
            if rec.retryable:
                continue
            return

    async def notes_many(self, oids: list[str], note: str) -> None:
        """A keyed bulk job: the same note on several orders. Whatever is unclear or retryable is sent
        again with the same key and arguments (the documented way: a repeat skips what was applied,
        reconciles what was in flight, re-runs retryable failures)."""
        args = {"order_ids": oids, "note": note, "idempotency_key": f"nk-{note}"}
        bulk = {oid: ("note", oid, note) for oid in oids}
        for _ in range(TRIES):
            rec = await self.call("orders_add_note_many", args, bulk=bulk)
            open_ = [i for i, o in rec.targets.items() if o != "ok" and (o in UNKNOWN or i in rec.retry)]
            if not open_:
                return

    # --- the steps ------------------------------------------------------------------------------

    async def run(self, twins: dict[int, tuple[Twin, str, str, str]]) -> None:
        await self._connect()
        try:
            for n in range(1, self.c.s.steps + 1):
                if n in twins:
                    twin, kind, oid, what = twins[n]
                    await self.meet(twin)
                    if kind == "item":
                        await self.add_item(oid, what)
                    else:
                        await self.add_note(oid, what)
                    continue
                op = self.rng.choices(OPS, WEIGHTS)[0]
                oid = self.rng.choice(self.pools["add"])
                tag = f"chaos-{self.c.s.seed}-{self.i}-{n}"
                if op == "item":
                    await self.add_item(oid, tag)
                elif op == "note":
                    await self.add_note(oid, tag)
                elif op == "update":
                    await self.update(oid, f"a{self.i}n{n}", str(n))
                elif op == "update_item":
                    await self.update_item(oid, tag)
                elif op == "create":
                    await self.create(tag)
                elif op == "notes_many":
                    await self.notes_many(sorted(self.rng.sample(self.pools["add"], 3)), tag)
                elif op == "delete":
                    await self.delete(self.rng.choice(self.pools["delete"]))
                else:
                    await self.order(oid)
        finally:
            await self._disconnect()
            self.c.note(finished=1)

    def _items_named(self, order: dict[str, Any], name: str) -> int:
        return sum(1 for it in order.get("order_items") or [] if it.get("name") == name)

    async def add_item(self, oid: str, name: str) -> None:
        item = {"name": name, "code": "CH-1", "price": 2.5, "quantity": 1}

        async def there() -> bool | None:
            order = await self.order(oid)
            return None if not isinstance(order, dict) else self._items_named(order, name) > 0

        await self.follow("order_items_add", {"order_id": oid, "item": item}, ("item", oid, name), there)

    async def update_item(self, oid: str, name: str) -> None:
        item = {"name": name, "code": "CU-1", "price": 1.5, "quantity": 1}

        async def there() -> bool | None:
            order = await self.order(oid)
            return None if not isinstance(order, dict) else self._items_named(order, name) > 0

        args = {"order_id": oid, "changes": {"order_items": [item]}}
        await self.follow("orders_update", args, ("item", oid, name), there)

    async def add_note(self, oid: str, note: str) -> None:
        async def there() -> bool | None:
            order = await self.order(oid, history=True)
            if not isinstance(order, dict):
                return None
            return any(h.get("note") == note for h in order.get("order_history") or [])

        await self.follow("orders_add_note", {"order_id": oid, "note": note}, ("note", oid, note), there)

    async def update(self, oid: str, key: str, value: str) -> None:
        async def there() -> bool | None:
            order = await self.order(oid)
            return None if not isinstance(order, dict) else key in (order.get("order_metadata") or {})

        args = {"order_id": oid, "changes": {"order_metadata": {key: value}}}
        await self.follow("orders_update", args, ("key", oid, key), there)

    async def create(self, tag: str) -> None:
        body = {
            "email": f"{tag}@chaos.example",
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
        args = {"order": body, "idempotency_key": f"key-{tag}"}
        await self.follow("orders_create", args, ("order", body["email"]), None)

    async def delete(self, oid: str) -> None:
        async def there() -> bool | None:
            order = await self.order(oid)
            return None if order is None else order is False

        args = {"order_id": oid, "confirm": True}
        await self.follow("orders_delete", args, ("deleted", oid), there)


def _twins(settings: Settings, add_pool: list[str]) -> dict[int, dict[int, tuple[Twin, str, str, str]]]:
    """Per agent, its twin steps: every TWIN_EVERY-th step, one pair of agents (in turn) meets."""
    rng = random.Random(settings.seed * 31)
    out: dict[int, dict[int, tuple[Twin, str, str, str]]] = {i: {} for i in range(settings.agents)}
    if settings.agents < 2:
        return out
    pairs = [(a, b) for a in range(settings.agents) for b in range(a + 1, settings.agents)]
    for k, n in enumerate(range(TWIN_EVERY // 2, settings.steps + 1, TWIN_EVERY)):
        a, b = pairs[k % len(pairs)]
        kind = "item" if k % 2 == 0 else "note"
        oid = rng.choice(add_pool)
        what = f"twin-{settings.seed}-{kind}-{k}"
        twin = Twin()
        out[a][n] = out[b][n] = (twin, kind, oid, what)
    return out


async def run_chaos(settings: Settings, sandbox: Any, make_gateway: Callable[[], Any]) -> Result:
    """Run the agents against ``sandbox`` through gateways from ``make_gateway`` (each over the same
    journal); returns the figures and the violations of the invariants (see the module doc)."""
    seeded = sorted(o["id"] for o in sandbox.orders())
    pools = {
        "add": seeded[: settings.add_pool],
        "delete": seeded[settings.add_pool : settings.add_pool + settings.delete_pool],
    }
    initial = {oid: sandbox.order(oid, with_history=True) for oid in seeded}
    initial_ids = set(seeded)
    add_faults(sandbox, settings.fault_scale)
    conductor = Conductor(settings, sandbox, make_gateway, pools["add"])
    calls: list[Call] = []
    twins = _twins(settings, pools["add"])
    agents = [Agent(i, conductor, calls, pools) for i in range(settings.agents)]
    t0 = time.monotonic()
    await asyncio.gather(*(a.run(twins[a.i]) for a in agents))
    if conductor.restart_task is not None:
        await conductor.restart_task
    elapsed = time.monotonic() - t0
    fired = Counter(r.fault for r in sandbox.requests() if r.fault)
    requests = len(sandbox.requests())
    sandbox.clear_faults()
    violations = conductor.problems + check(sandbox, calls, pools, initial, initial_ids)
    outcomes = Counter(c.outcome for c in calls)
    writes = [c for c in calls if c.targets]
    ui_lost = sum(
        1
        for u in conductor.ui
        if (sandbox.order(u["oid"]) or {}).get("order_metadata", {}).get(u["key"]) is None
    )
    figures: dict[str, Any] = {
        "seed": settings.seed,
        "agents": settings.agents,
        "steps": settings.steps,
        "calls": len(calls),
        "write_calls": len(writes),
        "outcomes": dict(sorted(outcomes.items())),
        "write_outcomes": dict(sorted(Counter(c.outcome for c in writes).items())),
        "by_tool": dict(sorted(Counter(c.tool for c in calls).items())),
        "outcome_unknown": outcomes["OUTCOME_UNKNOWN"],
        "bulk_targets_unknown": sum(
            1 for c in calls if c.ident is None for o in c.targets.values() if o == "OUTCOME_UNKNOWN"
        ),
        "unknown_reasons": dict(
            sorted(Counter(_reason(c.text) for c in calls if c.outcome == "OUTCOME_UNKNOWN").items())
        ),
        "cut_by_restart": outcomes["CUT"],
        "reconciled": sum(bool((c.result or {}).get("reconciled")) for c in writes if c.ok),
        "twins": sum(len(t) for t in twins.values()) // 2,
        "ui_edits": len(conductor.ui),
        "ui_edits_overwritten": ui_lost,
        "restarted_after_call": conductor.restarted_after,
        "upstream_requests": requests,
        "faults": dict(sorted(fired.items())),
        "violations": len(violations),
        "seconds": round(elapsed, 2),
    }
    return Result(figures, violations, calls, lambda: check(sandbox, calls, pools, initial, initial_ids))


def _reason(text: str) -> str:
    """Why a call ended OUTCOME_UNKNOWN, in a few words (from its message)."""
    for words, reason in (
        ("still be in flight", "unanswered, not there yet"),
        ("re-read failed", "the re-read failed"),
        ("only part of it", "a re-read shows part or other changes"),
        ("kept changing", "kept changing"),
    ):
        if words in text:
            return reason
    return text[:60]


def check(
    sandbox: Any,
    calls: list[Call],
    pools: dict[str, list[str]],
    initial: dict[str, Any],
    initial_ids: set[str],
) -> list[str]:
    """Every invariant of the module doc, against the sandbox's final state: the violations found."""
    bad: list[str] = []
    acked: Counter[tuple[Any, ...]] = Counter()
    unknown: Counter[tuple[Any, ...]] = Counter()
    keyed: dict[tuple[str, tuple[Any, ...]], list[str]] = {}
    for c in calls:
        if not c.ok and c.outcome not in DOCUMENTED and c.outcome != "CUT":
            bad.append(
                f"untrue answer: {c.tool} failed with an undocumented code {c.outcome}: {c.text[:160]}"
            )
        if "Traceback" in c.text:
            bad.append(f"untrue answer: {c.tool} showed a traceback")
        for ident, outcome in c.targets.items():
            if outcome not in DOCUMENTED and outcome not in ("ok", "unchanged", "CUT"):
                bad.append(f"untrue answer: {c.tool} reported {ident} as {outcome}")
            if c.key is not None:
                keyed.setdefault((c.key, ident), []).append(outcome)
            elif outcome == "ok":
                acked[ident] += 1
            elif outcome in UNKNOWN:
                unknown[ident] += 1
    # every call with one idempotency key is one logical write per identity: written at most once
    for (_key, ident), outcomes in keyed.items():
        if "ok" in outcomes:
            acked[ident] += 1
        elif any(o in UNKNOWN for o in outcomes):
            unknown[ident] += 1

    def judge(ident: tuple[Any, ...], upstream: int) -> None:
        a, u = acked[ident], unknown[ident]
        if upstream < a:
            bad.append(f"lost: {ident} acknowledged {a}x, upstream {upstream}x")
        elif upstream > a + u:
            kind = "phantom" if a + u == 0 else "duplicated"
            bad.append(f"{kind}: {ident} acknowledged {a}x, unknown {u}x, upstream {upstream}x")

    final = {oid: sandbox.order(oid, with_history=True) for oid in initial_ids}
    idents = set(acked) | set(unknown) | {i for c in calls for i in c.targets}
    # items and notes on the add pool: every agent's entry is accounted for
    for oid in pools["add"]:
        order = final[oid]
        if order is None:
            bad.append(f"phantom: order {oid} of the add pool vanished")
            continue
        history = order.get("order_history") or []
        if len(history) >= 250:
            bad.append(f"order {oid}: history reached OrderDesk's cap; note counts can't be checked")
        for name in {str(it.get("name")) for it in order.get("order_items") or []}:
            if name.startswith(("chaos-", "twin-")):
                idents.add(("item", oid, name))
        for note in {str(h.get("note")) for h in history}:
            if note.startswith(("chaos-", "twin-")):
                idents.add(("note", oid, note))
        meta = order.get("order_metadata") or {}
        for key in meta:
            if key.startswith("a") and "n" in key and key[1:].split("n")[0].isdigit():
                idents.add(("key", oid, key))
        before = initial[oid]
        for key in before.get("order_metadata") or {}:
            if key not in meta:
                bad.append(f"lost: order {oid} lost its seeded metadata key {key!r}")
    idents.update(("deleted", oid) for oid in pools["delete"])
    for ident in sorted(idents, key=str):
        kind = ident[0]
        if kind == "item":
            order = final.get(ident[1])
            upstream = (
                0 if not order else sum(it.get("name") == ident[2] for it in order.get("order_items") or [])
            )
        elif kind == "note":
            order = final.get(ident[1])
            upstream = (
                0 if not order else sum(h.get("note") == ident[2] for h in order.get("order_history") or [])
            )
        elif kind == "key":
            order = final.get(ident[1])
            upstream = int(bool(order) and ident[2] in (order.get("order_metadata") or {}))
        elif kind == "order":
            upstream = sum(1 for o in sandbox.orders() if o.get("email") == ident[1])
        else:  # deleted: gone once acknowledged; gone only if some call acknowledged or was unsure
            gone = final.get(ident[1]) is None
            if acked[ident] and not gone:
                bad.append(f"lost: order {ident[1]} reported deleted, still there")
            elif gone and not acked[ident] and not unknown[ident]:
                bad.append(f"phantom: order {ident[1]} is gone, and no delete of it succeeded or was unsure")
            continue
        judge(ident, upstream)
    # deletes: only the delete pool, and never "deleted" twice
    for oid in initial_ids - set(pools["delete"]):
        if final[oid] is None:
            bad.append(f"phantom: order {oid} vanished, and nobody deleted it")
    # creates: the answers name the stored order; no order appears that no agent created
    emails = {c.ident[1] for c in calls if c.ident and c.ident[0] == "order"}
    for o in sandbox.orders():
        if str(o["id"]) not in initial_ids and o.get("email") not in emails:
            bad.append(f"phantom: order {o['id']} ({o.get('email')}) appeared that nobody created")
    stored = {o.get("email"): str(o["id"]) for o in sandbox.orders()}
    for c in calls:
        if not c.ok or c.ident is None or c.result is None:
            continue
        kind = c.ident[0]
        if kind == "order":
            got = str(c.result["order"]["id"])
            if stored.get(c.ident[1]) != got:
                bad.append(
                    f"untrue answer: create of {c.ident[1]} returned order {got}, stored {stored.get(c.ident[1])}"
                )
        elif kind == "key":
            meta = c.result["order"].get("order_metadata") or {}
            if c.ident[2] not in meta:
                bad.append(f"untrue answer: update of {c.ident} answered an order without the key")
        elif kind == "note" and c.result.get("note") != c.ident[2]:
            bad.append(f"untrue answer: note {c.ident} answered with {c.result.get('note')!r}")
    for ident, n in acked.items():
        if ident[0] == "deleted" and n > 1:
            bad.append(f"duplicated: order {ident[1]} reported deleted {n} times")
    return bad
