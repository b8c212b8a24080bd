"""Bulk jobs: many targets in one tool call, through the same write route as single writes.

A store plugin's bulk tool validates every target first (nothing is written when one is invalid),
then hands the host a :class:`BulkJob`: its :class:`~odmcp.route.WriteOp`\\ s (each covers one target,
or a batch sent in one upstream request) and the canonical arguments its key is bound to. The host:

* runs the ops ``bulk.concurrency`` at a time through :meth:`odmcp.route.WriteRoute.run`, with
  ``bulk.reserve`` rate-limit tokens left for interactive calls (a bulk job never starves a single get);
* reports MCP progress (done/total) after every 10 targets and at least every ``bulk.progress_interval``
  seconds;
* on cancellation starts nothing new; the writes in flight settle (the route never lets a cancel hide
  a write), and the audit line says which targets were written;
* with an ``idempotency_key``, keeps the job in the durable journal (scoped per caller, store and
  tool): the same key and arguments return the first report, even after a restart; a repeat after an
  interruption skips targets already applied, re-runs those whose failure was retryable (and says so),
  and reconciles targets left with an intent and no outcome against their recorded snapshot before
  deciding to send; no target is ever written twice;
* never lets one failure stop the rest; a job in which no target succeeded is an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, Field

from odmcp.cache import digest
from odmcp.errors import Conflict, ErrorCode, GatewayError, ValidationFailed
from odmcp.journal import ChangeQuery, JobRecord, WriteRecord
from odmcp.route import TargetOutcome, WriteOp

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.tools import ToolCall

log = logging.getLogger("odmcp.bulk")

#: the longest list of targets one call may carry
MAX_TARGETS = 500


@dataclass
class BulkJob:
    """One bulk call: its ops and what its idempotency key is bound to."""

    ops: list[WriteOp]
    store: str
    label: str
    #: the call's arguments in canonical form (ids canonical, order-insensitive lists sorted)
    arguments: Any = None
    idempotency_key: str | None = None
    dry_run: bool = False


#: the shape of one entry of a bulk report (in the output schema, instead of prose)
_RESULT_ENTRY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "target": {"type": "string"},
        "outcome": {"type": "string"},
        "message": {"type": "string"},
    },
}


class BulkReport(BaseModel):
    # The per-target report of a bulk call: ``outcome`` is ok, unchanged, dry_run or an error code
    # (then ``retryable`` and ``hint``). Kept short: every bulk tool's output schema carries it.
    total: int
    totals: dict[str, int]
    results: list[dict[str, Any]] = Field(json_schema_extra={"items": _RESULT_ENTRY})
    replayed: bool = False


ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


def report_entry(o: TargetOutcome) -> dict[str, Any]:
    """One target's line of a bulk report."""
    out: dict[str, Any] = {"target": o.target}
    if o.state == "applied":
        out["outcome"] = "ok"
    elif o.state == "already":
        out.update(outcome="unchanged", message=o.message or "already so; nothing was sent")
    elif o.state == "dry_run":
        out.update(outcome="dry_run", message="nothing was sent", changes=o.changes)
    else:
        err = o.error
        assert err is not None
        out.update(outcome=str(err.code), message=err.message, retryable=err.retryable)
        if err.hint:
            out["hint"] = err.hint
    if o.fields and o.state in ("applied", "dry_run"):
        out["changed_fields"] = o.fields
    made = o.value.get("id") if o.ok and isinstance(o.value, dict) else None
    if made and str(made) != o.target:  # a created object's id
        out["id"] = str(made)
    if o.reconciled:
        out["reconciled"] = True
    return out


def _entry_of_record(rec: WriteRecord) -> dict[str, Any]:
    """A target's report line from its journaled outcome (a repeat of a keyed job)."""
    out: dict[str, Any] = {"target": rec.target}
    if rec.state == "applied":
        out["outcome"] = "ok"
        if rec.before:
            out["changed_fields"] = sorted(rec.before)
    elif rec.state == "already":
        out.update(outcome="unchanged", message="already so; nothing was sent")
    else:
        err = rec.error or {}
        out.update(outcome=str(err.get("code", "OUTCOME_UNKNOWN")), message=str(err.get("message", "")))
        out["retryable"] = bool(err.get("retryable"))
    if rec.extra.get("id") and rec.extra["id"] != rec.target:
        out["id"] = rec.extra["id"]
    if rec.reconciled:
        out["reconciled"] = True
    out["replayed"] = True
    return out


class _Progress:
    """MCP progress after every ``every`` targets and at least every ``interval`` seconds."""

    def __init__(self, report: ProgressFn | None, total: int, label: str, interval: float, every: int = 10):
        self.report, self.total, self.label = report, total, label
        self.interval, self.every = interval, every
        self.done = 0
        self.last = time.monotonic()

    async def send(self, note: str = "") -> None:
        if self.report is None:
            return
        self.last = time.monotonic()
        message = f"{self.label}: {self.done}/{self.total} done" + (f"; {note}" if note else "")
        try:
            await self.report(self.done, self.total, message)
        except Exception:  # a client that went away must not fail the job
            log.debug("progress notification failed", exc_info=True)

    async def step(self, n: int, note: str) -> None:
        before, self.done = self.done, self.done + n
        if self.done // self.every > before // self.every or time.monotonic() - self.last >= self.interval:
            await self.send(note)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - self.last)))
            if time.monotonic() - self.last >= self.interval:
                await self.send()


class BulkRunner:
    """Runs one bulk call's ops for ``gw`` (see the module doc)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def run(self, job: BulkJob, call: ToolCall, progress: ProgressFn | None = None) -> BulkReport:
        names = [n for op in job.ops for n in op.targets]
        if not names:
            raise ValidationFailed("no targets", hint="Give at least one target.")
        if len(names) > MAX_TARGETS:
            raise ValidationFailed(
                f"{len(names)} targets; at most {MAX_TARGETS} per call", hint="Split the list into calls."
            )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationFailed(
                f"target {dupes[0]} is listed more than once",
                hint="Give each target once (merge its changes); nothing was written.",
            )
        if not job.idempotency_key or job.dry_run or self.gw.journal is None:
            outcomes = await self._run(job, job.ops, call, progress, len(names), None, {})
            return self._report(names, {n: report_entry(o) for n, o in outcomes.items()}, call)
        return await self._keyed(job, call, progress, names)

    async def _keyed(
        self, job: BulkJob, call: ToolCall, progress: ProgressFn | None, names: list[str]
    ) -> BulkReport:
        journal = self.gw.journal
        assert journal is not None and job.idempotency_key
        key = job_key(call, job.store, job.idempotency_key)
        fingerprint = digest(job.arguments)
        try:
            # one run per key at a time, on every replica (the lock is in the store's slot)
            async with self.gw.locks.hold(f"{self.gw.store_id(job.store)}:job:{key}"):
                rec = await journal.get_job(key)
                if rec is not None and rec.fingerprint != fingerprint:
                    raise ValidationFailed(
                        "idempotency_key was already used with different arguments",
                        hint="Use a new idempotency_key for a different job, or resend the same arguments; "
                        "nothing was written.",
                    )
                last = _latest(await journal.query(ChangeQuery(job=key, limit=10 * MAX_TARGETS)))
                prior = {e["target"]: e for e in (rec.result or {}).get("results", [])} if rec else {}
                # what a repeat keeps: journaled outcomes that are settled, and failures the first run
                # reported as not worth retrying (refused before anything was sent)
                kept = {n: _entry_of_record(r) for n, r in last.items() if n in names and _settled(r)}
                for n, e in prior.items():
                    if n in names and n not in kept and n not in last and not _retry(e):
                        kept[n] = {**e, "replayed": True}
                retried = [
                    n
                    for n in names
                    if n not in kept
                    and ((n in prior and _retry(prior[n])) or (n in last and last[n].state == "failed"))
                ]
                if rec is not None and rec.status == "finished" and n_left(names, kept) == 0:
                    report = BulkReport.model_validate(rec.result)
                    report.replayed = True
                    return report
                now = time.time()
                await journal.put_job(
                    JobRecord(key=key, fingerprint=fingerprint, status="running", created=now, updated=now)
                )
                resume = {n: r for n, r in last.items() if n in names and r.state in ("intent", "unknown")}
                ops = [op.only([n for n in op.targets if n not in kept]) for op in job.ops]
                outcomes = await self._run(
                    job,
                    [op for op in ops if op.targets],
                    call,
                    progress,
                    len(names),
                    key,
                    resume,
                    done_already=len(kept),
                )
                entries = dict(kept)
                for n, o in outcomes.items():
                    entries[n] = report_entry(o)
                    if n in retried:
                        entries[n]["retried"] = True
                report = self._report(names, entries, call)
                await journal.put_job(
                    JobRecord(
                        key=key,
                        fingerprint=fingerprint,
                        status="finished",
                        result=report.model_dump(mode="json"),
                        created=now,
                        updated=time.time(),
                    )
                )
                return report
        except Conflict as err:
            if err.code is not Conflict.code or "another writer" not in err.message:
                raise
            raise Conflict(
                "a call with this idempotency_key is still in progress",
                hint="Wait for it to finish, then repeat the call with the same key to get its report.",
            ) from None

    async def _run(
        self,
        job: BulkJob,
        ops: list[WriteOp],
        call: ToolCall,
        progress: ProgressFn | None,
        total: int,
        key: str | None,
        resume: dict[str, WriteRecord],
        done_already: int = 0,
    ) -> dict[str, TargetOutcome]:
        settings = self.gw.config.bulk
        meter = _Progress(progress, total, job.label, settings.progress_interval)
        meter.done = done_already
        outcomes: dict[str, TargetOutcome] = {}
        queue = list(reversed(ops))
        stopping = False

        async def one(op: WriteOp) -> None:
            try:
                result = await self.gw.route.run(
                    op,
                    call,
                    dry_run=job.dry_run,
                    reserve=settings.reserve,
                    job=key,
                    resume={n: r for n, r in resume.items() if n in op.targets},
                )
            except GatewayError as err:  # a refusal of the whole op (e.g. the journal is down)
                result = None
                for n, ref in op.targets.items():
                    outcomes[n] = TargetOutcome(n, ref, "failed", error=err, message=err.message)
            if result is not None:
                outcomes.update(result.targets)
            last = next(reversed(op.targets))
            await meter.step(len(op.targets), f"{last}: {report_entry(outcomes[last])['outcome']}")

        async def worker() -> None:
            while queue and not stopping:
                await one(queue.pop())

        workers = [asyncio.create_task(worker()) for _ in range(min(settings.concurrency, len(ops)) or 1)]
        beat = asyncio.create_task(meter.heartbeat())
        try:
            await asyncio.wait(workers)
        except BaseException:  # cancelled: start nothing new; what is in flight settles (the route)
            stopping = True
            with anyio.CancelScope(shield=True):
                await asyncio.wait(workers)
                never = "not started: the call was cancelled"
                for op in ops:  # the audit line names what was never started
                    for n, ref in op.targets.items():
                        if n not in outcomes:
                            call.writes.append(TargetOutcome(n, ref, "not_applied", message=never))
                written = sorted(n for n, o in outcomes.items() if o.state == "applied")
                log.warning(
                    "bulk %s cancelled: %d of %d targets done (%s); written: %s; %d not started",
                    job.label,
                    len(outcomes),
                    total,
                    dict(Counter(o.state for o in outcomes.values())),
                    ", ".join(written[:20]) + (" ..." if len(written) > 20 else ""),
                    total - len(outcomes) - done_already,
                )
            raise
        finally:
            beat.cancel()
        for w in workers:
            w.result()  # a crash outside a target is a bug: let it surface
        await meter.send("finished")
        return outcomes

    def _report(self, names: list[str], entries: dict[str, dict[str, Any]], call: ToolCall) -> BulkReport:
        results = [self._worded(entries[n], call) for n in names if n in entries]
        report = BulkReport(
            total=len(names), totals=dict(Counter(r["outcome"] for r in results)), results=results
        )
        if results and not any(r["outcome"] in ("ok", "unchanged", "dry_run") for r in results):
            raise all_failed(report)
        return report

    def _worded(self, entry: dict[str, Any], call: ToolCall) -> dict[str, Any]:
        """A report line's message and hint as its caller may read them (tools it sees only)."""
        token = call.token
        return {
            **entry,
            **{
                k: self.gw.for_caller(entry[k], token)
                for k in ("message", "hint")
                if isinstance(entry.get(k), str)
            },
        }


def all_failed(report: BulkReport) -> GatewayError:
    """The error of a job in which no target succeeded; its per-target report is in the details."""
    codes = Counter(r["outcome"] for r in report.results)
    first = report.results[0]
    shown = "; ".join(f"{r['target']}: {r.get('message', r['outcome'])}" for r in report.results[:3])
    more = f" (and {len(report.results) - 3} more)" if len(report.results) > 3 else ""
    retryable = all(r.get("retryable") for r in report.results)
    default = "Retry later; nothing was written." if retryable else "Fix the targets named and call again."
    err = GatewayError(
        f"no target succeeded ({', '.join(f'{n} {c}' for c, n in codes.items())}): {shown}{more}",
        hint=str(first.get("hint") or default),
        report=report.model_dump(mode="json"),
    )
    err.code = (
        ErrorCode(first["outcome"]) if first["outcome"] in ErrorCode.__members__ else ErrorCode.UPSTREAM
    )
    err.retryable = retryable
    return err


def job_key(call: ToolCall, store: str, idempotency_key: str) -> str:
    """The journal key of a keyed call: per caller (and the identity provider that named it), store and
    tool; two callers never share a key."""
    issuer = str(getattr(call.token, "issuer", "") or "")
    return digest(["job", issuer, call.principal or "", store, call.name, idempotency_key])


def _latest(records: list[WriteRecord]) -> dict[str, WriteRecord]:
    """The newest record per target (records come newest first)."""
    out: dict[str, WriteRecord] = {}
    for r in records:
        out.setdefault(r.target, r)
    return out


def n_left(names: list[str], kept: dict[str, Any]) -> int:
    """How many targets a repeat still has to run."""
    return sum(1 for n in names if n not in kept)


def _retry(entry: dict[str, Any]) -> bool:
    """A report line a repeat runs again: a failure that said it may be retried."""
    return entry.get("outcome") not in ("ok", "unchanged", "dry_run") and bool(entry.get("retryable"))


def _settled(rec: WriteRecord) -> bool:
    """A journaled outcome a repeat keeps as it is: applied, already so, or a failure not worth retrying."""
    if rec.state in ("applied", "already"):
        return True
    return rec.state == "failed" and not (rec.error or {}).get("retryable")
