"""The read path and the mutation workflow every store plugin gets for free.

Reads:  cache -> single-flight -> ``gateway_fetch``.
Writes: lock -> ``gateway_fetch`` -> ``gateway_merge`` -> [precondition] -> ``gateway_upload``
        -> ``gateway_invalidate``, retried with backoff when the upload reports a conflict.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from odmcp.cache import digest
from odmcp.errors import (
    Conflict,
    GatewayError,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    UpstreamError,
    ValidationFailed,
)
from odmcp.refs import Ref
from odmcp.tools import ToolCall

if TYPE_CHECKING:
    from odmcp.app import Gateway

log = logging.getLogger("odmcp.workflow")
T = TypeVar("T")

#: the tool call being served (set by the middleware adapter); the workflow records audit facts on it
current_call: contextvars.ContextVar[ToolCall | None] = contextvars.ContextVar("current_call", default=None)


@dataclass
class MutationResult:
    obj: dict[str, Any]
    attempts: int
    changed_fields: list[str]
    changes: list[dict[str, Any]] = field(default_factory=list)
    uploaded: bool = True
    #: the upload's answer was unclear and a re-read showed the change applied
    reconciled: bool = False


class Workflow:
    def __init__(
        self, gw: Gateway, *, sleep: Callable[[float], Awaitable[Any]], rng: Callable[[], float]
    ) -> None:
        self.gw = gw
        self.sleep = sleep
        self.rng = rng

    # --- helpers --------------------------------------------------------------------------------

    def _ttl(self, kind: str) -> float:
        return self.gw.config.cache.ttl_for(kind)

    def _record(self, ref: Ref | None, **facts: Any) -> None:
        """Audit facts about the call being served; ``ref`` (when given) names its object."""
        call = current_call.get()
        if call is None:
            return
        if ref is not None:
            call.store = ref.store
            if ref.id:
                call.object_id = ref.id
        for k, v in facts.items():
            setattr(call, k, v)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), with +/- jitter."""
        m = self.gw.config.mutations
        base = m.backoff[min(attempt - 1, len(m.backoff) - 1)]
        return max(0.0, base * (1 + m.jitter * (2 * self.rng() - 1)))

    def _lock_key(self, ref: Ref) -> str:
        return f"{self.gw.store_id(ref.store)}:{ref.kind}:{ref.id}"

    # --- reads -------------------------------------------------------------------------------

    async def read(self, ref: Ref) -> dict[str, Any]:
        """The object, from the cache when fresh, else fetched once for all concurrent callers."""
        cache = self.gw.cache
        if cache is None:
            return await self.gw.hooks.fetch(ref)
        key = cache.obj_key(self.gw.store_id(ref.store), ref.kind, ref.id)
        return await cache.get_or_load(key, lambda: self.gw.hooks.fetch(ref), self._ttl(ref.kind))

    async def peek(self, ref: Ref) -> dict[str, Any] | None:
        """The cached object, or None; never goes upstream."""
        cache = self.gw.cache
        if cache is None:
            return None
        out: dict[str, Any] | None = await cache.get(
            cache.obj_key(self.gw.store_id(ref.store), ref.kind, ref.id)
        )
        return out

    async def read_list(
        self, store: str, kind: str, params: dict[str, Any], loader: Callable[[], Awaitable[T]]
    ) -> T:
        """A list/search result, cached under the store's current list generation for ``kind``."""
        cache = self.gw.cache
        if cache is None:
            return await loader()
        key = await cache.list_key(self.gw.store_id(store), kind, params)
        return await cache.get_or_load(key, loader, self.gw.config.cache.ttl_list)

    async def read_keyed(self, store: str, name: str, loader: Callable[[], Awaitable[T]], ttl: float) -> T:
        """Any other cacheable read (store settings, ...), keyed by store and ``name``."""
        cache = self.gw.cache
        if cache is None:
            return await loader()
        return await cache.get_or_load(cache.key(self.gw.store_id(store), name), loader, ttl)

    # --- writes --------------------------------------------------------------------------------

    async def mutate(self, ref: Ref, changes: dict[str, Any], *, dry_run: bool = False) -> MutationResult:
        """Fetch, merge, upload and invalidate, retrying on conflict; never loses a concurrent update.

        Nothing is uploaded when the merge changes nothing. When the upload's outcome is unclear the
        object is re-read and reconciled (``gateway_reconcile``): applied -> a normal result marked
        ``reconciled``; not applied after an answer from upstream -> another attempt; otherwise
        OUTCOME_UNKNOWN, never a plain retryable error.
        """
        m = self.gw.config.mutations
        self._record(ref)
        if not dry_run:
            self.gw.audit.check_writable()
        async with self.gw.locks.hold(self._lock_key(ref)) as lease:
            for attempt in range(1, m.attempts + 1):
                self.gw.metrics.inc("mutation_attempts_total", kind=ref.kind)
                self._record(ref, attempts=attempt)
                fetched = await self.gw.hooks.fetch(ref)
                merged = self.gw.hooks.merge(ref, fetched, changes)
                changes_list = self.gw.hooks.diff(ref, fetched, merged)
                paths = [c["path"] for c in changes_list]
                self._record(ref, changed_fields=paths)
                if dry_run or not changes_list:
                    return MutationResult(merged, attempt, paths, changes_list, uploaded=False)
                try:
                    if m.precondition:
                        await self._precondition(ref, fetched)
                    await lease.guard(m.write_deadline)  # fenced: a lapsed lease sends nothing
                    try:
                        stored = await self.gw.hooks.upload(ref, merged, fetched)
                    finally:
                        await lease.settled()
                except LeaseLost:
                    raise
                except Conflict as err:
                    self.gw.metrics.inc("mutation_conflicts_total", kind=ref.kind)
                    if attempt == m.attempts:
                        raise Conflict(
                            f"{ref.kind} {ref.id} changed during each of {attempt} attempts; "
                            "nothing was lost "
                            f"but your change was not applied ({err.message})",
                            hint="Fetch the object again, check the change still makes sense, then retry.",
                            attempts=attempt,
                        ) from None
                    delay = self.backoff(attempt)
                    log.info(
                        "conflict on %s (attempt %d/%d); retrying in %.2f s", ref, attempt, m.attempts, delay
                    )
                    await self.sleep(delay)
                    continue
                except OutcomeUnknown as unclear:
                    current = await self._reread(ref, unclear, paths)
                    verdict = self.gw.hooks.reconcile(ref, fetched, merged, current)
                    self.gw.metrics.inc("mutation_reconciled_total", kind=ref.kind, verdict=verdict)
                    if verdict == "applied":
                        self._record(ref, reconciled=True)
                        await self._after_write(ref, lists=True, fresh=current)
                        return MutationResult(current, attempt, paths, changes_list, reconciled=True)
                    if verdict == "not_applied" and unclear.answered and attempt < m.attempts:
                        log.info("%s: unclear upload was not applied (re-read); trying again", ref)
                        await self.sleep(self.backoff(attempt))
                        continue
                    raise self._unknown(ref, unclear, paths, verdict) from None
                except GatewayError:
                    # A later step may have been applied (the plugin's error says which): drop the cache.
                    await self._invalidate(ref, lists=True)
                    raise
                await self._after_write(ref, lists=True, fresh=stored)
                return MutationResult(stored, attempt, paths, changes_list)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _precondition(self, ref: Ref, fetched: dict[str, Any]) -> None:
        """Re-read right before the upload; any change in content is a conflict (costs 1 request).

        Compared with ``gateway_diff``, i.e. by the content the upload carries, not by a modification
        stamp: OrderDesk's ``date_updated`` has one-second resolution, so two edits in the same second
        can carry the same stamp.
        """
        fresh = await self.gw.hooks.fetch(ref)
        if self.gw.hooks.diff(ref, fetched, fresh):
            raise Conflict(f"{ref.kind} {ref.id} was changed by another writer since it was fetched")

    async def _reread(self, ref: Ref, unclear: OutcomeUnknown, paths: list[str]) -> dict[str, Any]:
        """After an unclear write: drop the cache (every replica reads upstream truth), then re-read."""
        await self._invalidate(ref, lists=True)
        if not unclear.answered:
            await self.sleep(self.gw.config.mutations.reconcile_settle)  # let an in-flight write land
        try:
            return await self.gw.hooks.fetch(ref)
        except GatewayError as err:
            raise self._unknown(ref, unclear, paths, f"the re-read failed too: {err.message}") from None

    @staticmethod
    def _unknown(ref: Ref, unclear: OutcomeUnknown, paths: list[str], why: str) -> OutcomeUnknown:
        shown = ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
        reason = {
            "unknown": "a re-read shows only part of the change, or other changes to the same fields",
            "not_applied": "a re-read does not show it yet, but the request may still be in flight",
        }.get(why, why)
        hint = (
            unclear.hint
            if unclear.hint != OutcomeUnknown.default_hint
            else (
                f"Do not repeat the change blindly: read {ref.kind} {ref.id} again in a few seconds and "
                f"check {shown or 'the fields you changed'}; apply only what is missing."
            )
        )
        return OutcomeUnknown(
            f"{ref.kind} {ref.id}: {unclear.message}; {reason} (fields: {shown})",
            hint=hint,
            answered=unclear.answered,
            fields=paths,
        )

    async def _invalidate(self, ref: Ref, *, lists: bool) -> None:
        await self.gw.hooks.invalidate(ref, lists, self.gw)

    async def _after_write(self, ref: Ref, *, lists: bool, fresh: dict[str, Any] | None = None) -> None:
        await self._invalidate(ref, lists=lists)
        cache = self.gw.cache
        if fresh is not None and cache is not None and ref.id:
            key = cache.obj_key(self.gw.store_id(ref.store), ref.kind, ref.id)
            await cache.put(key, fresh, self._ttl(ref.kind))

    async def create(
        self, ref: Ref, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create through ``gateway_create``; with a key, the same key and body never create twice."""
        self._record(ref)
        self.gw.audit.check_writable()
        if not idempotency_key:
            created = await self._create_once(ref, body)
            await self._after_create(ref, created)
            return created
        cache = self.gw.cache
        store_id = self.gw.store_id(ref.store)
        body_digest = digest(body)
        key_digest = digest(idempotency_key)
        async with self.gw.locks.hold(f"{store_id}:idem:{ref.kind}:{key_digest}"):
            if cache is not None:
                rec = await cache.get(cache.key(store_id, "idem", ref.kind, key_digest))
                if rec is not None:
                    if rec.get("body") != body_digest:
                        raise ValidationFailed(
                            "idempotency_key was already used with a different body",
                            hint="Use a new idempotency_key for a different order, or resend the same body.",
                        )
                    self._record(ref, object_id=str(rec["result"].get("id", "")))
                    out: dict[str, Any] = rec["result"]
                    return out
            created = await self._create_once(ref, body)
            if cache is not None:
                await cache.put(
                    cache.key(store_id, "idem", ref.kind, key_digest),
                    {"body": body_digest, "result": created},
                    self.gw.config.cache.idempotency_ttl,
                )
            await self._after_create(ref, created)
            return created

    async def _create_once(self, ref: Ref, body: dict[str, Any]) -> dict[str, Any]:
        """``gateway_create``; after any failure the lists are dropped (the create may have landed).

        Settling an unclear create (finding the new object) is the store plugin's job: only it knows
        what identifies an object that has no id yet (see the ``gateway_create`` contract).
        """
        try:
            return await self.gw.hooks.create(ref, body)
        except GatewayError:
            await self._invalidate(ref, lists=True)
            raise

    async def _after_create(self, ref: Ref, created: dict[str, Any]) -> None:
        new_id = str(created.get("id", ""))
        self._record(Ref(ref.store, ref.kind, new_id))
        await self._after_write(
            Ref(ref.store, ref.kind, new_id), lists=True, fresh=created if new_id else None
        )

    async def delete(self, ref: Ref) -> None:
        """Delete under the object's lock; an unclear outcome is settled by a re-read (gone = done)."""

        async def gone() -> bool | None:
            try:
                await self.gw.hooks.fetch(ref)
            except NotFound:
                return True
            return None

        await self.write(
            ref,
            lambda: self.gw.hooks.delete(ref),
            reconcile=gone,
            how_to_check=f"read {ref.kind} {ref.id} again: NOT_FOUND means it was deleted",
        )

    async def write(
        self,
        ref: Ref,
        op: Callable[[], Awaitable[T]],
        *,
        lists: bool = True,
        fresh: Callable[[T], dict[str, Any] | None] | None = None,
        reconcile: Callable[[], Awaitable[T | None]] | None = None,
        how_to_check: str = "",
    ) -> T:
        """Run any other write on ``ref`` under its lock, then invalidate (item, shipment, note tools).

        ``reconcile`` re-reads after an unclear outcome (a timeout, a drop, a 5xx after sending) and
        returns the write's result when its effect is visible, None when it is not; ``how_to_check``
        tells the agent how to look itself when even that can't tell (OUTCOME_UNKNOWN).
        """
        return await self.write_many(
            [ref], op, lists=lists, fresh=fresh, reconcile=reconcile, how_to_check=how_to_check
        )

    async def write_many(
        self,
        refs: list[Ref],
        op: Callable[[], Awaitable[T]],
        *,
        lists: bool = True,
        fresh: Callable[[T], dict[str, Any] | None] | None = None,
        reconcile: Callable[[], Awaitable[T | None]] | None = None,
        how_to_check: str = "",
    ) -> T:
        """:meth:`write` for several objects (e.g. a folder move): locks taken in one sorted order."""
        self._record(refs[0], attempts=1)
        if len(refs) > 1:
            self._record(refs[0], object_id=",".join(r.id for r in refs))
        self.gw.audit.check_writable()
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted({self._lock_key(r) for r in refs}):  # one global order: no deadlocks
                await stack.enter_async_context(self.gw.locks.hold(key))
            result = await self._settled(refs, op, lists, reconcile, how_to_check)
            for i, ref in enumerate(refs):
                await self._after_write(
                    ref, lists=lists and i == 0, fresh=fresh(result) if fresh and len(refs) == 1 else None
                )
            return result

    async def _settled(
        self,
        refs: list[Ref],
        op: Callable[[], Awaitable[T]],
        lists: bool,
        reconcile: Callable[[], Awaitable[T | None]] | None,
        how_to_check: str,
    ) -> T:
        """``op()``, with every failure invalidating and every unclear outcome reconciled.

        Verified "not applied" after an answer from upstream is sent once more (nothing was written,
        so that can't apply it twice); in-flight uncertainty is reported as OUTCOME_UNKNOWN.
        """
        hint = f"Do not repeat the call blindly: {how_to_check}." if how_to_check else None
        for attempt in (1, 2):
            self._record(None, attempts=attempt)
            try:
                return await op()
            except OutcomeUnknown as unclear:
                for ref in refs:
                    await self._invalidate(ref, lists=lists)
                if reconcile is None:
                    raise OutcomeUnknown(unclear.message, hint=hint, answered=unclear.answered) from None
                if not unclear.answered:
                    await self.sleep(self.gw.config.mutations.reconcile_settle)
                try:
                    found = await reconcile()
                except OutcomeUnknown:
                    raise  # the reconciler itself could tell only part of the story, and says which
                except GatewayError as err:
                    raise OutcomeUnknown(
                        f"{unclear.message}; the re-read failed too ({err.message})",
                        hint=hint,
                        answered=unclear.answered,
                    ) from None
                self.gw.metrics.inc(
                    "mutation_reconciled_total",
                    kind=refs[0].kind,
                    verdict="applied" if found is not None else "not_applied",
                )
                if found is not None:
                    self._record(None, reconciled=True)
                    return found
                if not unclear.answered:
                    raise OutcomeUnknown(
                        f"{unclear.message}; a re-read does not show it yet, but the request may still "
                        "be in flight",
                        hint=hint,
                    ) from None
                if attempt == 2:
                    raise UpstreamError(
                        f"{unclear.message}; a re-read shows it was NOT applied (twice)",
                        hint="Nothing was written; retry later.",
                    ) from None
                log.info("%s: unclear write was not applied (re-read); sending it once more", refs[0])
            except GatewayError:
                for ref in refs:
                    await self._invalidate(ref, lists=lists)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def invalidate(self, ref: Ref, *, lists: bool, fresh: dict[str, Any] | None = None) -> None:
        """Announce a change made outside the gateway (e.g. a webhook post)."""
        await self._after_write(ref, lists=lists, fresh=fresh)
