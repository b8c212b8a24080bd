"""The one write route. Every write of every store goes through :meth:`WriteRoute.run`.

    lock -> snapshot inside the lock -> plan -> guard the lease -> journal the intent -> send once
         -> reconcile by counting (after an unclear answer) -> invalidate -> journal the outcome

A store plugin declares each kind of write as a :class:`WriteOp`: data (the targets and what to do
with them) plus four small methods: how to read the current state (the *snapshot*), how to compute
the intended state from it (:meth:`WriteOp.plan`), how to send it, and how to tell from a plan (its
*witness*, taken from the snapshot) and a fresh read whether *this* write is there
(:meth:`WriteOp.verdict`). The route owns everything else, once for all kinds:

* **Lock first, snapshot inside the lock.** Nothing is read before the lock is held; every decision
  compares the snapshot with a fresh read.
* **Send once.** A request is never repeated blindly. After an unclear answer (a 5xx, a timeout, a
  dropped connection) the route re-reads and asks the op for its verdict: applied (a normal result,
  marked ``reconciled``); not applied after an answer from upstream (sent again, planned from that
  re-read without letting the lock go: nothing was written, and nothing else could write);
  otherwise ``OUTCOME_UNKNOWN``, saying how to check.
* **A lost lease stops the write.** Right before a request goes out the lease is checked and fenced
  (:meth:`odmcp.locks.Lease.guard`); a holder that lost it re-acquires, re-reads and reconciles against
  the witness it recorded, or fails CONFLICT with nothing written.
* **One way back.** A :class:`WriteOutcome` (one :class:`TargetOutcome` per target) is returned to the
  tool, and recorded in the journal and on the call (for the audit line).
* **A disconnect never hides a write.** Once a request may have been sent, cancelling the caller does
  not cancel the write: it settles (reconciled, invalidated, journaled), then the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import anyio

from odmcp.errors import (
    Conflict,
    GatewayError,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    Unavailable,
    UpstreamError,
)
from odmcp.journal import WriteRecord
from odmcp.refs import Ref

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.locks import Lease
    from odmcp.tools import ToolCall

log = logging.getLogger("odmcp.route")

#: what a fresh read shows about one planned write
Verdict = Literal["applied", "already", "not_applied", "unknown"]
#: what became of one target
State = Literal["applied", "already", "not_applied", "unknown", "failed", "dry_run"]


@dataclass(frozen=True, slots=True)
class WriteIO:
    """What the route passes to an op's reads and sends (values, not context variables)."""

    gateway: Gateway
    #: rate-limit tokens this op's requests must leave for interactive calls (bulk jobs set it)
    reserve: int = 0


@dataclass
class Plan:
    """What one target's write will do, decided from its snapshot inside the lock.

    ``body`` is what :meth:`WriteOp.send` sends for the target; None means there is nothing to send
    (the snapshot already shows the intended state: the outcome is ``already``).
    """

    body: Any = None
    #: what the snapshot showed that the verdict counts from (plain JSON; journaled with the intent)
    witness: Any = None
    #: changed field paths, and their values before and after (journal, audit, undo)
    fields: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    #: the diff as ``[{"path", "before", "after"}]`` (dry runs and results)
    changes: list[dict[str, Any]] = field(default_factory=list)
    #: the value a dry run or an ``already`` outcome returns (e.g. the merged object)
    preview: Any = None
    #: why nothing is sent, for ``already`` (e.g. "already in folder 3; no folder rules ran")
    message: str = ""


class WriteOp:
    """One kind of write over a set of targets, declared by a store plugin (subclass it).

    ``targets`` maps each target's name (what a bulk report calls it) to the object it changes; the
    route locks every distinct object, in one sorted order. Override :meth:`read` (the default fetches
    each object through ``gateway_fetch``, None when it does not exist), :meth:`plan`, :meth:`send` and
    :meth:`verdict`; :meth:`value` and :meth:`how_to_check` have useful defaults.
    """

    #: what the write does, for the journal and the audit line (``update``, ``add_note``, ...)
    action: ClassVar[str] = "write"
    #: whether the lists of the objects' kinds may change (creates, deletes, moves, updates)
    lists: ClassVar[bool] = True

    targets: dict[str, Ref]

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        """The current state of each object in ``refs``, None for one that does not exist."""
        out: dict[Ref, Any] = {}
        for ref in refs:
            try:
                out[ref] = await io.gateway.hooks.fetch(ref, reserve=io.reserve)
            except NotFound:
                out[ref] = None
        return out

    def plan(self, target: str, snapshot: Any) -> Plan:
        """What to send for ``target``, given its object's snapshot (None: it does not exist).

        Raise a :class:`GatewayError` to refuse the target (nothing is sent for it): NOT_FOUND for a
        missing object, VALIDATION for what the store itself would refuse (a duplicate tracking number).
        """
        raise NotImplementedError

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        """Send the planned writes once (one request, or one per target) -> a result per target.

        A target's result may be a :class:`GatewayError` (a batch endpoint refused that entry). Raise
        :class:`OutcomeUnknown` when the answer is unclear for all of them, :class:`Conflict` when the
        store reports the snapshot stale (the route re-reads, re-plans and tries again), any other
        GatewayError for a clean refusal of the whole request.
        """
        raise NotImplementedError

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        """Is this write there? Decided from ``plan.witness`` (the snapshot) and a fresh read.

        Count, never guess: an added entry is applied only if the entries matching it went up by
        exactly one since the snapshot; ``not_applied`` only if the fresh read shows none of it
        (the route may then send it again). ``already`` when the intended state is there but the
        fresh read also shows another writer's change, so it can't be told who set it.
        """
        raise NotImplementedError

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        """What the tool gets back for an applied target: ``result`` (the send's answer for it) when
        the answer was clear, else the ``fresh`` object read while reconciling."""
        return result if fresh is None else fresh

    def cached(self, ref: Ref, outcome: TargetOutcome) -> dict[str, Any] | None:
        """The stored object to cache for ``ref`` after a clear write (None: only invalidate)."""
        return None

    def how_to_check(self, target: str) -> str:
        """How an agent checks the target itself when even a re-read can't tell (OUTCOME_UNKNOWN)."""
        ref = self.targets[target]
        return f"read {ref.kind} {ref.id} again in a few seconds and check the change"

    def lock_keys(self, gw: Gateway) -> list[str]:
        """The locks to hold (default: one per object in ``targets``); a create locks its natural key."""
        return sorted({lock_key(gw, ref) for ref in self.targets.values()})

    def only(self, names: list[str]) -> Self:
        """This op for a subset of its targets (a repeat of a keyed bulk job skips finished ones)."""
        part = copy.copy(self)
        part.targets = {n: r for n, r in self.targets.items() if n in names}
        return part


@dataclass
class TargetOutcome:
    """What became of one target: its state, its value, and how it got there."""

    target: str
    ref: Ref
    state: State
    value: Any = None
    fields: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    #: the answer was unclear and a re-read settled it
    reconciled: bool = False
    error: GatewayError | None = None
    message: str = ""
    change_id: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("applied", "already", "dry_run")

    def raise_error(self) -> None:
        """Raise the target's error, if it has one (single-target tools)."""
        if self.error is not None:
            raise self.error


@dataclass
class WriteOutcome:
    """The outcome of one op: a :class:`TargetOutcome` per target, in the op's order."""

    targets: dict[str, TargetOutcome]

    def only(self) -> TargetOutcome:
        """The outcome of a single-target op; raises its error if it failed."""
        (one,) = self.targets.values()
        one.raise_error()
        return one


@dataclass
class _Pending:
    """A target sent without a clear answer (or recorded as an intent by a crashed run)."""

    plan: Plan
    #: every unclear send of it was answered by upstream (nothing is still in flight)
    answered: bool
    change_id: str


class WriteRoute:
    """Runs :class:`WriteOp`\\ s for one gateway (see the module doc)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def run(
        self,
        op: WriteOp,
        call: ToolCall | None = None,
        *,
        dry_run: bool = False,
        reserve: int = 0,
        job: str | None = None,
        resume: Mapping[str, WriteRecord] | None = None,
    ) -> WriteOutcome:
        """Run ``op`` through the route (see the module doc); never raises for one target's failure.

        ``job`` names the keyed job the writes belong to (journal); ``resume`` maps targets to the
        intents a crashed run of that job left without an outcome: they are reconciled against their
        recorded witness before anything is sent.
        """
        if not dry_run:
            self.gw.audit.check_writable()
        run = _Run(self.gw, op, call, WriteIO(self.gw, reserve), dry_run=dry_run, job=job)
        for target, rec in (resume or {}).items():
            run.pending[target] = _Pending(
                Plan(
                    body=None,
                    witness=rec.witness,
                    fields=list(rec.before),
                    before=rec.before,
                    after=rec.after,
                ),
                answered=False,
                change_id=rec.id,
            )
        task = asyncio.ensure_future(run.execute())
        try:
            # shielded: a caller that goes away never interrupts a write that may have been sent
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not run.sent:
                task.cancel()
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(BaseException):
                    await task
            raise


class _Run:
    """One run of one op (the state the route keeps between its steps)."""

    def __init__(
        self, gw: Gateway, op: WriteOp, call: ToolCall | None, io: WriteIO, *, dry_run: bool, job: str | None
    ) -> None:
        self.gw, self.op, self.call, self.io = gw, op, call, io
        self.dry_run, self.job = dry_run, job
        self.refs = sorted(set(op.targets.values()), key=lambda r: (r.store, r.kind, r.id))
        self.out: dict[str, TargetOutcome] = {}
        self.pending: dict[str, _Pending] = {}
        #: the plan each target was (last) sent with, for its journaled outcome
        self.plans: dict[str, Plan] = {}
        self.attempts: dict[str, int] = {}
        #: whether any request may have gone out (from then on a cancel must not interrupt)
        self.sent = False
        self.touched: set[Ref] = set()

    # --- the steps ------------------------------------------------------------------------------

    async def execute(self) -> WriteOutcome:
        m = self.gw.config.mutations
        attempt = 0
        try:
            while attempt < m.attempts and self._left():
                # The lock is held across every round: a round plans from what the previous one read
                # under it. Only a lapsed lease (nothing sent) lets go, re-acquires and reads afresh.
                fresh: dict[Ref, Any] | None = None
                try:
                    async with self._locked() as leases:
                        while attempt < m.attempts:
                            attempt += 1
                            fresh = await self._round(attempt, leases, fresh)
                            if not self._left():
                                break
                            await self.gw.workflow.sleep(self.gw.workflow.backoff(attempt))
                except LeaseLost as lost:
                    log.warning("%s: %s; taking the lock again", self.refs[0], lost.message)
                    if attempt >= m.attempts:
                        self._fail_left(lost)
            self._fail_left(self._kept_changing(m.attempts, "it kept changing"))
        finally:
            await self._finish()
        return WriteOutcome({t: self.out[t] for t in self.op.targets})

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[list[Lease]]:
        async with contextlib.AsyncExitStack() as stack:
            leases = []
            for key in self.op.lock_keys(self.gw):  # one global order: no deadlocks
                leases.append(await stack.enter_async_context(self.gw.locks.hold(key)))
            yield leases

    def _kept_changing(self, attempts: int, why: str) -> Conflict:
        ref = self.refs[0]
        return Conflict(
            f"{ref.kind} {ref.id} changed during each of {attempts} attempts; nothing was lost but your "
            f"change was not applied ({why})",
            hint="Fetch the object again, check the change still makes sense, then retry.",
            attempts=attempts,
        )

    def _left(self) -> list[str]:
        return [t for t in self.op.targets if t not in self.out]

    async def _round(
        self, attempt: int, leases: list[Lease], fresh: dict[Ref, Any] | None
    ) -> dict[Ref, Any] | None:
        """One round under the lock: snapshot, plan, send, settle. Returns a fresh read to plan the next
        round from (after a verified not-applied answer), or None."""
        left = self._left()
        refs = sorted({self.op.targets[t] for t in left}, key=lambda r: (r.store, r.kind, r.id))
        try:
            snaps = fresh if fresh is not None else await self.op.read(self.io, refs)
        except GatewayError as err:
            self._settle_unread(left, err)
            return None
        plans: dict[str, Plan] = {}
        for target in left:
            snap = snaps.get(self.op.targets[target])
            earlier = self.pending.get(target)
            if earlier is not None:  # an earlier send (or a crashed run) left it unclear: count first
                verdict = self.op.verdict(target, earlier.plan, snap)
                if verdict in ("applied", "already"):
                    self._done(target, earlier.plan, verdict, None, snap, reconciled=True)
                    continue
                if verdict == "unknown" or (not earlier.answered and earlier.plan.body is not None):
                    self._unknown(target, earlier.plan, "a re-read shows only part of it, or other changes")
                    continue
                del self.pending[target]  # verified absent and nothing in flight: plan it afresh
            try:
                plan = self.op.plan(target, snap)
            except GatewayError as err:
                self._failed(target, err, Plan())
                continue
            if plan.body is None:
                self._done(target, plan, "already", plan.preview, None)
            elif self.dry_run:
                self._settle(target, "dry_run", plan, value=plan.preview, message=plan.message)
            else:
                plans[target] = self.plans[target] = plan
        if not plans:
            return None
        change_ids = {t: self.pending[t].change_id if t in self.pending else uuid.uuid4().hex for t in plans}
        guarded: list[Lease] = []
        try:
            for lease in leases:  # fenced: a lease that lapsed sends nothing (LeaseLost)
                await lease.guard(self.gw.config.mutations.write_deadline)
                guarded.append(lease)
            await self._journal_intents(plans, change_ids)  # the intent is durable before the request
            self.gw.metrics.inc("mutation_attempts_total", kind=self.refs[0].kind)
            for t in plans:
                self.attempts[t] = self.attempts.get(t, 0) + 1
            self.sent = True
            self.touched.update(self.op.targets[t] for t in plans)
            try:
                async with asyncio.timeout(self.gw.config.mutations.write_deadline):
                    results = await self.op.send(self.io, plans)
            except TimeoutError:
                unclear = OutcomeUnknown(
                    f"no answer within {self.gw.config.mutations.write_deadline:g} s", answered=False
                )
                return await self._reconcile(plans, change_ids, unclear, attempt)
            except OutcomeUnknown as unclear:
                return await self._reconcile(plans, change_ids, unclear, attempt)
            except Conflict as err:
                self.gw.metrics.inc("mutation_conflicts_total", kind=self.refs[0].kind)
                log.info("conflict on %s (attempt %d): %s", self.refs[0], attempt, err.message)
                if attempt >= self.gw.config.mutations.attempts:
                    for t, plan in plans.items():
                        self._failed(t, self._kept_changing(attempt, err.message), plan, change_ids[t])
                return None
            except GatewayError as err:
                for t, plan in plans.items():
                    self._failed(t, err, plan, change_ids[t])
                return None
        finally:
            for lease in guarded:
                await lease.settled()
        for t, plan in plans.items():
            result = results.get(t)
            if isinstance(result, GatewayError):
                self._failed(t, result, plan, change_ids[t])
            else:
                self._done(t, plan, "applied", result, None, change_id=change_ids[t])
        return None

    async def _reconcile(
        self, plans: dict[str, Plan], change_ids: dict[str, str], unclear: OutcomeUnknown, attempt: int
    ) -> dict[Ref, Any] | None:
        """After an unclear answer: drop the cache, let an in-flight request land, re-read, count."""
        m = self.gw.config.mutations
        for ref in {self.op.targets[t] for t in plans}:
            await self.gw.workflow.invalidate(ref, lists=self.op.lists)
        if not unclear.answered:
            await self.gw.workflow.sleep(m.reconcile_settle)
        refs = sorted({self.op.targets[t] for t in plans}, key=lambda r: (r.store, r.kind, r.id))
        try:
            fresh = await self.op.read(self.io, refs)
        except GatewayError as err:
            for t, plan in plans.items():
                self._unknown(
                    t, plan, f"{unclear.message}; the re-read failed too ({err.message})", change_ids[t]
                )
            return None
        again = False
        for t, plan in plans.items():
            verdict = self.op.verdict(t, plan, fresh.get(self.op.targets[t]))
            self.gw.metrics.inc("mutation_reconciled_total", kind=self.op.targets[t].kind, verdict=verdict)
            if verdict in ("applied", "already"):
                self._done(
                    t,
                    plan,
                    verdict,
                    None,
                    fresh.get(self.op.targets[t]),
                    reconciled=True,
                    change_id=change_ids[t],
                )
            elif verdict == "not_applied" and unclear.answered and attempt < m.attempts:
                log.info("%s: unclear write was not applied (re-read); sending it again", self.op.targets[t])
                self.pending[t] = _Pending(plan, answered=True, change_id=change_ids[t])
                again = True
            elif verdict == "not_applied" and unclear.answered:
                self._failed(
                    t,
                    OutcomeUnknown(f"{unclear.message}; a re-read shows it was not applied", answered=True),
                    plan,
                    change_ids[t],
                    verified_absent=True,
                )
            else:
                why = (
                    "a re-read does not show it yet, but the request may still be in flight"
                    if verdict == "not_applied"
                    else "a re-read shows only part of it, or other changes to the same fields"
                )
                self._unknown(t, plan, f"{unclear.message}; {why}", change_ids[t])
        if again:
            # planned afresh next round from this read (the lock is still held: nothing else wrote)
            for t in [t for t, p in self.pending.items() if p.answered and t not in self.out]:
                del self.pending[t]
            return fresh
        return None

    # --- outcomes -------------------------------------------------------------------------------

    def _done(
        self,
        target: str,
        plan: Plan,
        state: Literal["applied", "already"],
        result: Any,
        fresh: Any,
        *,
        reconciled: bool = False,
        change_id: str = "",
    ) -> None:
        value = (
            plan.preview
            if state == "already" and fresh is None
            else self.op.value(target, plan, result, fresh)
        )
        message = plan.message
        if state == "already" and not message:
            message = (
                "already so; nothing was sent"
                if not reconciled
                else (
                    "the object has these values now, but a re-read shows another change too, so it "
                    "can't be told whether this call set them"
                )
            )
        self._settle(
            target, state, plan, value=value, reconciled=reconciled, message=message, change_id=change_id
        )

    def _failed(
        self,
        target: str,
        err: GatewayError,
        plan: Plan,
        change_id: str = "",
        *,
        verified_absent: bool = False,
    ) -> None:
        if verified_absent:
            err = UpstreamError(
                err.message, hint="A re-read shows nothing was written; retry in a few seconds."
            )
        self._settle(target, "failed", plan, error=err, change_id=change_id)

    def _unknown(self, target: str, plan: Plan, why: str, change_id: str = "") -> None:
        ref = self.op.targets[target]
        shown = ", ".join(plan.fields[:8]) + (
            f" and {len(plan.fields) - 8} more" if len(plan.fields) > 8 else ""
        )
        err = OutcomeUnknown(
            f"{ref.kind} {ref.id}: {why}" + (f" (fields: {shown})" if shown else ""),
            hint=f"Do not repeat it blindly: {self.op.how_to_check(target)}; apply only what is missing.",
            fields=plan.fields,
        )
        self._settle(target, "unknown", plan, error=err, change_id=change_id)

    def _settle(
        self,
        target: str,
        state: State,
        plan: Plan,
        *,
        value: Any = None,
        error: GatewayError | None = None,
        reconciled: bool = False,
        message: str = "",
        change_id: str = "",
    ) -> None:
        """Record what became of ``target`` (every outcome goes through here)."""
        self.out[target] = TargetOutcome(
            target,
            self.op.targets[target],
            state,
            value,
            plan.fields,
            plan.changes,
            attempts=self.attempts.get(target, 0),
            reconciled=reconciled,
            error=error,
            message=error.message if error is not None else message,
            change_id=change_id,
        )

    def _settle_unread(self, targets: list[str], err: GatewayError) -> None:
        """The snapshot could not be read: targets sent earlier are unknown, the rest failed cleanly."""
        for t in targets:
            earlier = self.pending.get(t)
            if earlier is not None and (earlier.plan.body is not None or not earlier.answered):
                self._unknown(t, earlier.plan, f"the re-read failed ({err.message})", earlier.change_id)
            else:
                self._failed(t, err, Plan())

    def _fail_left(self, err: GatewayError) -> None:
        for t in self._left():
            earlier = self.pending.get(t)
            if earlier is not None:
                self._unknown(t, earlier.plan, err.message, earlier.change_id)
            else:
                self._failed(t, err, Plan())

    # --- after ----------------------------------------------------------------------------------

    async def _journal_intents(self, plans: dict[str, Plan], change_ids: dict[str, str]) -> None:
        journal = self.gw.journal
        if journal is None:
            return
        now = time.time()
        try:
            for t, plan in plans.items():
                await journal.put_write(self._record(t, plan, change_ids[t], "intent", now))
        except Exception as err:
            raise Unavailable(
                f"the journal ({journal.name}) could not record the write ({type(err).__name__}); "
                "nothing was written",
                hint="Retry in a few seconds; an operator should check the journal's storage.",
            ) from None

    def _record(self, target: str, plan: Plan, change_id: str, state: str, now: float) -> WriteRecord:
        ref = self.op.targets[target]
        call = self.call
        return WriteRecord(
            id=change_id,
            call_id=call.call_id if call is not None else "",
            job=self.job,
            target=target,
            time=now,
            caller=call.principal if call is not None else None,
            tool=call.name if call is not None else "",
            store=ref.store,
            kind=ref.kind,
            object_id=ref.id,
            action=self.op.action,
            state=state,  # type: ignore[arg-type]
            witness=plan.witness,
            before=plan.before,
            after=plan.after,
            attempts=self.attempts.get(target, 0),
        )

    async def _finish(self) -> None:
        """Invalidate what was touched, cache what is known, journal and record every outcome."""
        for ref in self.refs:
            if ref not in self.touched:
                continue
            fresh = None
            for o in self.out.values():
                if o.ref == ref and o.state == "applied" and not o.reconciled:
                    fresh = self.op.cached(ref, o)
            await self.gw.workflow.invalidate(ref, lists=self.op.lists, fresh=fresh)
        journal = self.gw.journal
        now = time.time()
        for t, o in ((t, self.out[t]) for t in self.op.targets if t in self.out):
            if self.call is not None:
                self.call.writes.append(o)
            if journal is None or not o.change_id:
                continue  # nothing was sent (dry runs, refusals, already so): nothing to journal
            plan = self.plans.get(t) or (self.pending[t].plan if t in self.pending else Plan(fields=o.fields))
            rec = self._record(t, plan, o.change_id, o.state, now)
            rec.attempts, rec.reconciled = o.attempts, o.reconciled
            if o.error is not None:
                rec.error = {
                    "code": str(o.error.code),
                    "message": o.error.message,
                    "retryable": o.error.retryable,
                }
            if o.state in ("applied", "already") and isinstance(o.value, dict) and "id" in o.value:
                rec.extra = {"id": str(o.value["id"])}
            try:
                await journal.put_write(rec)
            except Exception:
                log.exception("journal: the outcome of %s (%s) was not recorded", t, o.state)


def lock_key(gw: Gateway, ref: Ref) -> str:
    """The mutation lock of one object (the same on every replica)."""
    return f"{gw.store_id(ref.store)}:{ref.kind}:{ref.id}"
