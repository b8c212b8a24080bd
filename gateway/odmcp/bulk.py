"""Bulk jobs: many targets in one tool call, paced, with progress, cancellation and a per-target report.

A store plugin's bulk tool validates every target first (nothing is written when one is invalid),
then hands the host a list of :class:`Target`\\ s: the names it covers (one, or a batch sent in one
upstream request) and an async ``run`` that performs the safe write through the workflow and
returns a :class:`Done` per name. The host:

* runs them ``bulk.concurrency`` at a time, with :data:`bulk_reserve` set so the store's rate limiter
  leaves that many tokens for interactive calls (a bulk job never starves a single get);
* reports MCP progress (done/total and a short message) after every 10 targets and at least every
  ``bulk.progress_interval`` seconds;
* on cancellation starts nothing new, lets the writes in flight finish (their locks, invalidation
  and audit facts stay consistent), logs what was done and re-raises;
* with an ``idempotency_key``, records every finished target, so a repeat of the same call returns
  the first report and a repeat after an interrupted call redoes nothing already done;
* never lets one failure stop the rest: each target's error becomes its outcome (its code).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, Field

from odmcp.cache import digest
from odmcp.errors import GatewayError, ValidationFailed
from odmcp.workflow import current_call

if TYPE_CHECKING:
    from odmcp.app import Gateway

log = logging.getLogger("odmcp.bulk")

#: while a bulk job runs a target: how many rate-limit tokens its requests must leave for others
bulk_reserve: contextvars.ContextVar[int] = contextvars.ContextVar("bulk_reserve", default=0)

#: the longest list of targets one call may carry
MAX_TARGETS = 500


@dataclass
class Done:
    """What one target came to. ``outcome`` is ``ok``, ``unchanged``, ``dry_run`` or an error code."""

    outcome: str = "ok"
    message: str = ""
    changed_fields: list[str] = field(default_factory=list)
    reconciled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, target: str) -> dict[str, Any]:
        out: dict[str, Any] = {"target": target, "outcome": self.outcome}
        if self.message:
            out["message"] = self.message
        if self.changed_fields:
            out["changed_fields"] = self.changed_fields
        if self.reconciled:
            out["reconciled"] = True
        return {**out, **self.extra}


@dataclass
class Target:
    """One unit of work covering ``names`` (one name, or a batch sent in one upstream request).

    ``run(names)`` gets the names still to do (a repeat after an interruption skips finished ones) and
    returns a :class:`Done` per name.
    """

    names: list[str]
    run: Callable[[list[str]], Awaitable[dict[str, Done]]]


def single(name: str, run: Callable[[], Awaitable[Done]]) -> Target:
    """A target of one name."""

    async def one(_names: list[str]) -> dict[str, Done]:
        return {name: await run()}

    return Target([name], one)


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
    # The per-target report of a bulk call (a partial failure is a normal result, not an error):
    # ``outcome`` is ok, unchanged, dry_run or an error code. Kept short: every bulk tool's output
    # schema in every tools/list carries this model's schema.
    total: int
    totals: dict[str, int]
    results: list[dict[str, Any]] = Field(json_schema_extra={"items": _RESULT_ENTRY})
    replayed: bool = False


ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


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

    async def step(self, note: str) -> None:
        self.done += 1
        if self.done % self.every == 0 or time.monotonic() - self.last >= self.interval:
            await self.send(note)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - self.last)))
            if time.monotonic() - self.last >= self.interval:
                await self.send()


class BulkRunner:
    """Runs one bulk call's targets for ``gw`` (see the module doc)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def run(
        self,
        targets: list[Target],
        *,
        store: str,
        tool: str,
        label: str,
        progress: ProgressFn | None = None,
        idempotency_key: str | None = None,
        body: Any = None,
    ) -> BulkReport:
        if not targets:
            raise ValidationFailed("no targets", hint="Give at least one target.")
        call = current_call.get()
        names = [n for t in targets for n in t.names]
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
        if call is not None:
            call.store, call.object_id = store, ",".join(names)
        if not idempotency_key:
            return self._report(names, await self._run(targets, names, {}, label, progress, None))
        cache = self.gw.cache
        store_id = self.gw.store_id(store)
        key = f"{store_id}:bulk:{tool}:{digest(idempotency_key)}"
        async with self.gw.locks.hold(key):  # one run per key at a time, on every replica
            rec = await cache.get(cache.key(key)) if cache is not None else None
            body_digest = digest(body)
            if rec is not None and rec.get("body") != body_digest:
                raise ValidationFailed(
                    "idempotency_key was already used with different arguments",
                    hint="Use a new idempotency_key for a different job, or resend the same arguments.",
                )
            done: dict[str, dict[str, Any]] = dict(rec.get("done", {})) if rec else {}
            if rec is not None and rec.get("finished"):
                report = self._report(names, done)
                report.replayed = True
                return report

            async def record(finished: bool) -> None:
                if cache is not None:
                    value = {"body": body_digest, "done": done, "finished": finished}
                    await cache.put(cache.key(key), value, self.gw.config.cache.idempotency_ttl)

            results = await self._run(targets, names, done, label, progress, record)
            await record(True)
            return self._report(names, results)

    async def _run(
        self,
        targets: list[Target],
        names: list[str],
        done: dict[str, dict[str, Any]],
        label: str,
        progress: ProgressFn | None,
        record: Callable[[bool], Awaitable[None]] | None,
    ) -> dict[str, dict[str, Any]]:
        settings = self.gw.config.bulk
        todo = [(t, left) for t in targets if (left := [n for n in t.names if n not in done])]
        meter = _Progress(progress, len(names), label, settings.progress_interval)
        meter.done = len(names) - sum(len(left) for _, left in todo)
        stopping = False
        queue = list(reversed(todo))

        parent = current_call.get()

        async def one(target: Target, left: list[str]) -> None:
            # each target records its own audit facts (attempts, reconciled) on a child of the call
            child = replace(parent, changed_fields=[], attempts=0, reconciled=False) if parent else None
            tokens = (bulk_reserve.set(settings.reserve), current_call.set(child))
            try:
                results = await target.run(left)
            except GatewayError as err:
                text = f"{err.message} — {err.hint}" if err.hint else err.message
                # per target, as the error result of a single call would say it: can it be retried?
                results = {n: Done(str(err.code), text, extra={"retryable": err.retryable}) for n in left}
            except Exception as crash:
                log.exception("bulk %s: targets %s crashed", label, left[:5])
                results = {n: Done("INTERNAL", f"failed unexpectedly ({type(crash).__name__})") for n in left}
            finally:
                current_call.reset(tokens[1])
                bulk_reserve.reset(tokens[0])
            for n in left:
                result = results.get(n) or Done("INTERNAL", "the plugin reported no outcome for it")
                result.reconciled = result.reconciled or bool(
                    child and child.reconciled and result.outcome == "ok"
                )
                done[n] = result.as_dict(n)
                if parent is not None:
                    parent.changed_fields = sorted({*parent.changed_fields, *result.changed_fields})
                await meter.step(f"{n}: {result.outcome}")
            if record is not None:
                await record(False)

        async def worker() -> None:
            while queue and not stopping:
                await one(*queue.pop())

        workers = [asyncio.create_task(worker()) for _ in range(min(settings.concurrency, len(todo)) or 1)]
        beat = asyncio.create_task(meter.heartbeat())
        try:
            await asyncio.wait(workers)
        except BaseException:  # cancelled: start nothing new, let the writes in flight finish
            stopping = True
            with anyio.CancelScope(shield=True):
                await asyncio.wait(workers)
                log.warning(
                    "bulk %s cancelled: %d of %d targets done (%s), %d not started",
                    label,
                    len(done),
                    len(names),
                    dict(Counter(d["outcome"] for d in done.values())),
                    len(names) - len(done),
                )
            raise
        finally:
            beat.cancel()
        for w in workers:
            w.result()  # a crash outside a target is a bug: let it surface
        await meter.send("finished")
        return done

    @staticmethod
    def _report(names: list[str], done: dict[str, dict[str, Any]]) -> BulkReport:
        results = [done[n] for n in names if n in done]
        return BulkReport(
            total=len(names),
            totals=dict(Counter(r["outcome"] for r in results)),
            results=results,
        )
