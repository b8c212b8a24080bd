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

from gateway.cache import digest
from gateway.errors import Conflict, ValidationFailed
from gateway.refs import Ref
from gateway.tools import ToolCall

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway.workflow")
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


class Workflow:
    def __init__(
        self, gw: Gateway, *, sleep: Callable[[float], Awaitable[Any]], rng: Callable[[], float]
    ) -> None:
        self.gw = gw
        self.sleep = sleep
        self.rng = rng

    # --- helpers --------------------------------------------------------------------------------

    def _ttl(self, kind: str) -> float:
        c = self.gw.config.cache
        return {"order": c.ttl_order, "store": c.ttl_store, "inventory_item": c.ttl_inventory}.get(
            kind, c.ttl_order
        )

    def _record(self, ref: Ref, **facts: Any) -> None:
        call = current_call.get()
        if call is None:
            return
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
        """Fetch, merge, upload and invalidate, retrying on conflict; never loses a concurrent update."""
        m = self.gw.config.mutations
        self._record(ref)
        if not dry_run:
            self.gw.audit.check_writable()
        async with self.gw.locks.hold(self._lock_key(ref)):
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
                    stored = await self.gw.hooks.upload(ref, merged, fetched)
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
                await self._after_write(ref, lists=True, fresh=stored)
                return MutationResult(stored, attempt, paths, changes_list)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _precondition(self, ref: Ref, fetched: dict[str, Any]) -> None:
        """Re-read right before the upload; a changed ``date_updated`` is a conflict (costs 1 request).

        Objects without a modification stamp are compared whole.
        """
        fresh = await self.gw.hooks.fetch(ref)
        if "date_updated" in fresh and "date_updated" in fetched:
            changed = fresh["date_updated"] != fetched["date_updated"]
        else:
            changed = digest(fresh) != digest(fetched)
        if changed:
            raise Conflict(f"{ref.kind} {ref.id} was changed by another writer since it was fetched")

    async def _after_write(self, ref: Ref, *, lists: bool, fresh: dict[str, Any] | None = None) -> None:
        await self.gw.hooks.invalidate(ref, lists, self.gw)
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
            created = await self.gw.hooks.create(ref, body)
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
            created = await self.gw.hooks.create(ref, body)
            if cache is not None:
                await cache.put(
                    cache.key(store_id, "idem", ref.kind, key_digest),
                    {"body": body_digest, "result": created},
                    self.gw.config.cache.idempotency_ttl,
                )
            await self._after_create(ref, created)
            return created

    async def _after_create(self, ref: Ref, created: dict[str, Any]) -> None:
        new_id = str(created.get("id", ""))
        self._record(Ref(ref.store, ref.kind, new_id))
        await self._after_write(
            Ref(ref.store, ref.kind, new_id), lists=True, fresh=created if new_id else None
        )

    async def delete(self, ref: Ref) -> None:
        self._record(ref)
        self.gw.audit.check_writable()
        async with self.gw.locks.hold(self._lock_key(ref)):
            await self.gw.hooks.delete(ref)
            await self._after_write(ref, lists=True)

    async def write(
        self,
        ref: Ref,
        op: Callable[[], Awaitable[T]],
        *,
        lists: bool = True,
        fresh: Callable[[T], dict[str, Any] | None] | None = None,
    ) -> T:
        """Run any other write on ``ref`` under its lock, then invalidate (used by item/shipment tools)."""
        self._record(ref, attempts=1)
        self.gw.audit.check_writable()
        async with self.gw.locks.hold(self._lock_key(ref)):
            result = await op()
            await self._after_write(ref, lists=lists, fresh=fresh(result) if fresh else None)
            return result

    async def write_many(self, refs: list[Ref], op: Callable[[], Awaitable[T]]) -> T:
        """Like :meth:`write` for several objects (e.g. a folder move): locks taken in sorted order."""
        if len(refs) == 1:
            return await self.write(refs[0], op)
        self._record(refs[0], object_id=",".join(r.id for r in refs), attempts=1)
        self.gw.audit.check_writable()
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted({self._lock_key(r) for r in refs}):  # one global order: no deadlocks
                await stack.enter_async_context(self.gw.locks.hold(key))
            result = await op()
            for i, ref in enumerate(refs):
                await self._after_write(ref, lists=i == 0)
            return result

    async def invalidate(self, ref: Ref, *, lists: bool, fresh: dict[str, Any] | None = None) -> None:
        """Announce a change made outside the gateway (e.g. a webhook post)."""
        await self._after_write(ref, lists=lists, fresh=fresh)
