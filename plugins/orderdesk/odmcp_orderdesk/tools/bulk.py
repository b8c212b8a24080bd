"""Bulk tools (toolset ``bulk``): hundreds of orders in one call, paced to the rate limit, with progress,
cancellation, a per-target report and idempotent repeats (the host's :mod:`odmcp.bulk` runner).

Every target is validated before the first write. Order updates and history notes have no batch
endpoint: each target is the normal safe single write. Shipments and inventory go through OrderDesk's
batch endpoints, 100 entries per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field

from odmcp.bulk import MAX_TARGETS, BulkReport, Done, Target, single
from odmcp.errors import GatewayError, OutcomeUnknown, ValidationFailed
from odmcp.refs import Ref
from odmcp.tools import ToolTable
from odmcp_orderdesk import merge, validate
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.reconcile import same_value
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.tools.common import IdempotencyKey, IdText, StoreArg, Text, capped
from odmcp_orderdesk.tools.orders import entry_code
from odmcp_orderdesk.writes import add_note, resolve_changes, update_order

if TYPE_CHECKING:
    from odmcp.app import Gateway

TOOLS = ToolTable(toolset="bulk")
ORDER = "order"
INVENTORY = "inventory_item"
#: entries per POST /batch-shipments and PUT /batch-inventory-items
BATCH = 100

IdList = Annotated[list[Annotated[str, IdText]], Field(min_length=1, max_length=MAX_TARGETS)]


class OrderChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: Annotated[str, IdText]
    changes: dict[str, Any] = Field(description="As for orders_update.")


class ShipmentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: Annotated[str, IdText]
    tracking_number: Annotated[str, Field(min_length=1), capped(100)]
    carrier_code: Text | None = None
    shipment_method: Text | None = None
    weight: float | None = None
    cost: float | None = None
    status: Text | None = None
    tracking_url: Annotated[str | None, capped(500)] = None


class InventoryChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str | None, IdText] = None
    code: Annotated[Text | None, Field(description="SKU, instead of id.")] = None
    changes: dict[str, Any] = Field(description="As for inventory_update.")


def _ids(values: list[Any], field: str) -> list[str]:
    ids = [check_id(f"{field}[{i}]", v) for i, v in enumerate(values)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValidationFailed(f"{field}: order {dupes[0]} is listed twice", hint="List each order once.")
    return ids


def _body(**args: Any) -> Any:
    """The arguments an idempotency key is bound to (as plain JSON)."""

    def plain(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump()
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in args.items()}


def _as_done(result: Any, dry_run: bool) -> Done:
    if dry_run:
        return Done("dry_run", "nothing was sent", result.changed_fields, extra={"changes": result.changes})
    if not result.uploaded:
        return Done("unchanged", "already has these values; nothing was sent")
    return Done("ok", "updated", result.changed_fields, reconciled=result.reconciled)


@TOOLS.tool(
    "orders.update_many",
    title="Update many orders",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_ids",
)
async def orders_update_many(
    gateway: Gateway,
    ctx: Context,
    order_ids: IdList | None = None,
    changes: Annotated[dict[str, Any] | None, Field(description="For every order in order_ids.")] = None,
    updates: Annotated[
        list[OrderChange] | None, Field(max_length=MAX_TARGETS, description="Or changes per order.")
    ] = None,
    dry_run: Annotated[bool, Field(description="Return each diff; write nothing.")] = False,
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Update up to 500 orders as orders_update does, all checked first; reports each order (ok,
    unchanged, dry_run or an error code). Cost: 2 requests per changed order, paced. Errors:
    VALIDATION (nothing written)."""
    if (order_ids is None) == (updates is None) or (order_ids is not None) != (changes is not None):
        raise ValidationFailed(
            "give either order_ids with changes, or updates",
            hint="Use order_ids + changes for the same change everywhere, updates for per-order changes.",
        )
    name = gateway.store(store).name
    pairs: list[tuple[str, Any]]
    if updates is not None:
        pairs = list(
            zip(_ids([u.order_id for u in updates], "updates"), [u.changes for u in updates], strict=True)
        )
    else:
        pairs = [(oid, changes) for oid in _ids(list(order_ids or []), "order_ids")]
    checked: dict[str, dict[str, Any]] = {}
    for i, (oid, change) in enumerate(pairs):
        try:
            checked[oid] = await resolve_changes(gateway, name, validate.validate_order_changes(change))
        except ValidationFailed as err:
            raise ValidationFailed(f"order {oid} (entry {i}): {err.message}", hint=err.hint) from None

    def target(oid: str) -> Target:
        async def run() -> Done:
            return _as_done(
                await update_order(gateway, Ref(name, ORDER, oid), checked[oid], dry_run), dry_run
            )

        return single(oid, run)

    return await gateway.bulk.run(
        [target(oid) for oid, _ in pairs],
        store=name,
        tool="orders.update_many",
        label="update" if not dry_run else "dry run",
        progress=ctx.report_progress,
        idempotency_key=None if dry_run else idempotency_key,
        body=_body(order_ids=order_ids, changes=changes, updates=updates),
    )


@TOOLS.tool(
    "orders.add_note_many",
    title="Add a note to many orders",
    read_only=False,
    destructive=False,
    idempotent=False,
    object_arg="order_ids",
)
async def orders_add_note_many(
    gateway: Gateway,
    ctx: Context,
    order_ids: IdList,
    note: Annotated[str, Field(min_length=1, max_length=1800)],
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Add the same history note to up to 500 orders, as orders_add_note does; reports each order.
    Cost: 2-3 requests per order, paced. Errors: VALIDATION (nothing written)."""
    validate.validate_note(note)
    name = gateway.store(store).name
    ids = _ids(list(order_ids), "order_ids")

    def target(oid: str) -> Target:
        async def run() -> Done:
            await add_note(gateway, Ref(name, ORDER, oid), note)
            return Done("ok", "note added")

        return single(oid, run)

    return await gateway.bulk.run(
        [target(oid) for oid in ids],
        store=name,
        tool="orders.add_note_many",
        label="add note",
        progress=ctx.report_progress,
        idempotency_key=idempotency_key,
        body=_body(order_ids=ids, note=note),
    )


@TOOLS.tool(
    "shipments.add_many",
    title="Add many shipments",
    read_only=False,
    destructive=False,
    idempotent=False,
    object_arg="order_id",
)
async def shipments_add_many(
    gateway: Gateway,
    ctx: Context,
    shipments: Annotated[list[ShipmentEntry], Field(min_length=1, max_length=MAX_TARGETS)],
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Add up to 500 shipments to their orders; reports each as order_id:tracking_number. Cost: 1
    request per 100. Errors: VALIDATION (nothing written)."""
    name = gateway.store(store).name
    entries: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(shipments):
        oid = check_id(f"shipments[{i}].order_id", s.order_id)
        body = {k: v for k, v in s.model_dump().items() if v is not None and k != "order_id"}
        try:
            validate.validate_shipment(body)
        except ValidationFailed as err:
            raise ValidationFailed(f"shipments[{i}]: {err.message}", hint=err.hint) from None
        key = f"{oid}:{body['tracking_number']}"
        if key in entries:
            raise ValidationFailed(f"shipments[{i}]: {key} is listed twice", hint="List each shipment once.")
        entries[key] = {"order_id": oid, **body}
    client = runtime(gateway).client(name)

    async def batch(left: list[str]) -> dict[str, Done]:
        sent = [entries[k] for k in left]
        refs = [Ref(name, ORDER, oid) for oid in dict.fromkeys(e["order_id"] for e in sent)]

        async def found_after_all() -> list[dict[str, Any]] | None:
            have: dict[str, set[str]] = {}
            for r in refs:
                have[r.id] = {str(s.get("tracking_number")) for s in await client.list_shipments(r.id)}
            there = [str(e["tracking_number"]) in have[e["order_id"]] for e in sent]
            if not any(there):
                return None
            return [
                {"order_id": e["order_id"], "status": "success" if ok else "unknown", "message": "re-read"}
                for e, ok in zip(sent, there, strict=True)
            ]

        try:
            results = await gateway.workflow.write_many(
                refs,
                lambda: client.batch_shipments(sent),
                reconcile=found_after_all,
                how_to_check="call shipments_list for each order and look for the tracking numbers",
            )
        except GatewayError as err:
            per_entry = err.details.get("results")
            if not isinstance(per_entry, list) or len(per_entry) != len(sent):
                raise
            results = per_entry
        out: dict[str, Done] = {}
        for key, res in zip(left, results, strict=False):
            status = str(res.get("status", "success")).lower() if isinstance(res, dict) else "success"
            message = str(res.get("message", "")) if isinstance(res, dict) else ""
            if status == "unknown":
                out[key] = Done(
                    "OUTCOME_UNKNOWN", "no clear answer and not visible yet — check with shipments_list"
                )
            elif status == "error":
                out[key] = Done(entry_code(message), message)
            else:
                out[key] = Done("ok", message or "Shipment Added", reconciled=message == "re-read")
        return out

    keys = list(entries)
    return await gateway.bulk.run(
        [Target(keys[i : i + BATCH], batch) for i in range(0, len(keys), BATCH)],
        store=name,
        tool="shipments.add_many",
        label="add shipments",
        progress=ctx.report_progress,
        idempotency_key=idempotency_key,
        body=_body(shipments=shipments),
    )


@TOOLS.tool(
    "inventory.update_many",
    title="Update many inventory items",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg=None,
)
async def inventory_update_many(
    gateway: Gateway,
    ctx: Context,
    updates: Annotated[list[InventoryChange], Field(min_length=1, max_length=MAX_TARGETS)],
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Update up to 500 inventory items as inventory_update does (unchanged ones are not sent);
    reports each. Cost: 2 requests per 100 (+1 per item given by id). Errors: VALIDATION (nothing
    written)."""
    name = gateway.store(store).name
    wanted: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for i, u in enumerate(updates):
        if (u.id is None) == (u.code is None):
            raise ValidationFailed(f"updates[{i}]: give exactly one of id or code")
        by, value = ("id", check_id(f"updates[{i}].id", u.id)) if u.id is not None else ("code", str(u.code))
        try:
            change = validate.validate_inventory_changes(u.changes)
        except ValidationFailed as err:
            raise ValidationFailed(f"updates[{i}]: {err.message}", hint=err.hint) from None
        if value in wanted:
            raise ValidationFailed(f"updates[{i}]: {value} is listed twice", hint="List each item once.")
        wanted[value] = (by, value, change)
    client = runtime(gateway).client(name)

    async def batch(left: list[str]) -> dict[str, Done]:
        out: dict[str, Done] = {}
        current: dict[str, dict[str, Any]] = {}
        codes = [v for v in left if wanted[v][0] == "code"]
        if codes:
            page = await client.list_inventory(limit=500, code=",".join(codes))
            by_code = {str(i.get("code")): i for i in page["inventory_items"]}
            current.update({c: by_code[c] for c in codes if c in by_code})
        for v in (v for v in left if wanted[v][0] == "id"):
            try:
                current[v] = await gateway.hooks.fetch(Ref(name, INVENTORY, v))
            except GatewayError as err:
                out[v] = Done(str(err.code), err.message)
        send: list[tuple[str, dict[str, Any], list[str]]] = []
        for v in left:
            if v in out:
                continue
            if v not in current:
                out[v] = Done("NOT_FOUND", f"no inventory item with code {v!r}")
                continue
            try:
                merged = merge.merge_inventory_item(current[v], wanted[v][2])
                validate.validate_inventory_item(merged, creating=False)
            except ValidationFailed as err:
                out[v] = Done("VALIDATION", err.message)
                continue
            changed = [
                c["path"]
                for c in gateway.hooks.diff(Ref(name, INVENTORY, str(merged["id"])), current[v], merged)
            ]
            if not changed:
                out[v] = Done("unchanged", "already has these values; nothing was sent")
            else:
                send.append((v, merged, changed))
        if not send:
            return out
        refs = [Ref(name, INVENTORY, str(m["id"])) for _, m, _ in send]

        async def written_after_all() -> dict[str, Any] | None:
            now = [await gateway.hooks.fetch(r) for r in refs]
            there = [
                all(same_value(m.get(k), n.get(k)) for k in wanted[v][2])
                for (v, m, _), n in zip(send, now, strict=True)
            ]
            if not any(there):
                return None
            if not all(there):
                missing = [v for (v, _, _), ok in zip(send, there, strict=True) if not ok]
                raise OutcomeUnknown(
                    "the batch update got no clear answer; a re-read shows "
                    f"{', '.join(missing[:10])} unchanged",
                    hint="Read those items again in a few seconds; update only those still unchanged.",
                )
            return {"message": "confirmed by a re-read", "failed": []}

        result = await gateway.workflow.write_many(
            refs,
            lambda: client.batch_update_inventory([m for _, m, _ in send]),
            lists=True,
            reconcile=written_after_all,
            how_to_check="call inventory_get for each item and check the fields you changed",
        )
        failed = {str(f) for f in result.get("failed") or []}
        confirmed = result.get("message") == "confirmed by a re-read"
        for v, merged, changed in send:
            if str(merged["id"]) in failed:
                out[v] = Done("VALIDATION", "OrderDesk refused this item")
            else:
                out[v] = Done("ok", "updated", changed, reconciled=confirmed)
        return out

    keys = list(wanted)
    return await gateway.bulk.run(
        [Target(keys[i : i + BATCH], batch) for i in range(0, len(keys), BATCH)],
        store=name,
        tool="inventory.update_many",
        label="update inventory",
        progress=ctx.report_progress,
        idempotency_key=idempotency_key,
        body=_body(updates=updates),
    )
