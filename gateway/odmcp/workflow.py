"""The read path every store plugin gets for free, and the helpers the write route uses.

Reads:  cache -> single-flight -> ``gateway_fetch``.
Writes go through the one write route (:mod:`odmcp.route`); :meth:`Workflow.mutate` is its
fetch -> merge -> upload operation for code that wants a plain partial update.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from odmcp.refs import Ref

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.tools import ToolCall

log = logging.getLogger("odmcp.workflow")
T = TypeVar("T")


@dataclass
class MutationResult:
    obj: dict[str, Any]
    attempts: int
    changed_fields: list[str]
    changes: list[dict[str, Any]] = field(default_factory=list)
    uploaded: bool = True
    #: the upload's answer was unclear and a re-read showed the change applied
    reconciled: bool = False
    #: ``applied``, ``already`` (nothing to send, or someone else set the values) or ``dry_run``
    state: str = "applied"


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

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), with +/- jitter."""
        m = self.gw.config.mutations
        base = m.backoff[min(attempt - 1, len(m.backoff) - 1)]
        return max(0.0, base * (1 + m.jitter * (2 * self.rng() - 1)))

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

    async def mutate(
        self, ref: Ref, changes: dict[str, Any], *, dry_run: bool = False, call: ToolCall | None = None
    ) -> MutationResult:
        """Fetch, merge and upload ``changes`` through the write route (:class:`UpdateObject`).

        Raises the target's error (NOT_FOUND, CONFLICT, OUTCOME_UNKNOWN, ...) when it failed.
        """
        from odmcp.object_ops import UpdateObject

        outcome = await self.gw.route.run(UpdateObject(self.gw, ref, changes), call, dry_run=dry_run)
        one = outcome.only()
        return MutationResult(
            obj=one.value,
            attempts=one.attempts,
            changed_fields=one.fields,
            changes=one.changes,
            uploaded=one.state == "applied" or one.reconciled,
            reconciled=one.reconciled,
            state=one.state,
        )

    async def _after_write(self, ref: Ref, *, lists: bool, fresh: dict[str, Any] | None = None) -> None:
        await self.gw.hooks.invalidate(ref, lists, self.gw)
        cache = self.gw.cache
        if fresh is not None and cache is not None and ref.id:
            key = cache.obj_key(self.gw.store_id(ref.store), ref.kind, ref.id)
            await cache.put(key, fresh, self._ttl(ref.kind))

    async def invalidate(self, ref: Ref, *, lists: bool, fresh: dict[str, Any] | None = None) -> None:
        """Drop what is cached about ``ref`` (and its kind's lists) and cache ``fresh`` when given: after a
        write of the route, or a change announced from outside the gateway (e.g. a webhook post)."""
        await self._after_write(ref, lists=lists, fresh=fresh)
