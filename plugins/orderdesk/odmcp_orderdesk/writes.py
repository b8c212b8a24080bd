"""The OrderDesk writes that single and bulk tools share: each goes through the host's workflow (lock,
fetch, merge, upload, reconcile, invalidate, audit facts) and settles an unclear answer by a re-read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odmcp.errors import OutcomeUnknown
from odmcp.refs import Ref
from odmcp.workflow import MutationResult
from odmcp_orderdesk.folders import resolve_folder
from odmcp_orderdesk.runtime import runtime

if TYPE_CHECKING:
    from odmcp.app import Gateway

ORDER = "order"


async def resolve_changes(gateway: Gateway, store: str, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with a destination ``folder_id`` checked against the store (before any write)."""
    if changes.get("folder_id") is None:
        return changes
    return {**changes, "folder_id": await resolve_folder(gateway, store, folder_id=changes["folder_id"])}


async def update_order(gateway: Gateway, ref: Ref, changes: dict[str, Any], dry_run: bool) -> MutationResult:
    """The safe update (``changes`` already validated and resolved)."""
    return await gateway.workflow.mutate(ref, changes, dry_run=dry_run)


async def add_note(gateway: Gateway, ref: Ref, note: str) -> dict[str, Any]:
    """Append a history note; returns the order with its history.

    History has no ids, so an unclear POST is settled by counting this text before and after: the
    history is read first (1-2 requests), the note is posted (1).
    """
    client = runtime(gateway).client(ref.store)
    before = sum(
        1 for h in await client.get_order_history(await gateway.workflow.read(ref)) if h.get("note") == note
    )

    async def added_after_all() -> dict[str, Any] | None:
        order = await gateway.hooks.fetch(ref)
        history = await client.get_order_history(order)
        if sum(1 for h in history if h.get("note") == note) > before:
            return {**order, "order_history": history}
        return None

    order: dict[str, Any] = await gateway.workflow.write(
        ref,
        lambda: client.add_order_history(ref.id, note),
        # the answer is the whole order (plus its history, which GET /orders/{id} doesn't carry)
        fresh=lambda o: {k: v for k, v in o.items() if k != "order_history"},
        reconcile=added_after_all,
        how_to_check=f"call orders_get for order {ref.id} with include_history=true and look for the note",
    )
    return order


async def move_orders(gateway: Gateway, store: str, ids: list[str], target: int) -> dict[str, Any]:
    """``POST /move-orders`` for ``ids`` (one request) -> ``{message, results, failed}``.

    An unclear answer is settled by reading each order's folder.
    """
    client = runtime(gateway).client(store)
    refs = [Ref(store, ORDER, oid) for oid in ids]

    async def moved_after_all() -> dict[str, Any] | None:
        where = {r.id: str((await gateway.hooks.fetch(r)).get("folder_id")) for r in refs}
        done = [oid for oid, fid in where.items() if fid == str(target)]
        if not done:
            return None
        if len(done) < len(ids):
            raise OutcomeUnknown(
                f"the move to folder {target} got no clear answer; a re-read shows "
                f"{', '.join(done)} moved and {', '.join(o for o in ids if o not in done)} not (yet)",
                hint="Read the orders not moved again in a few seconds; move only those still elsewhere.",
            )
        return {
            "message": f"{len(done)} Orders Moved (confirmed by a re-read)",
            "results": [{"order_id": oid, "message": f"in folder {target}"} for oid in done],
            "failed": [],
        }

    out: dict[str, Any] = await gateway.workflow.write_many(
        refs,
        lambda: client.move_orders(ids, folder_id=target),
        reconcile=moved_after_all,
        how_to_check=f"call orders_get for each order and check folder_id == {target}",
    )
    return out
