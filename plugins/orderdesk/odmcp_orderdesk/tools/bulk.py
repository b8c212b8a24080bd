"""Bulk tools (toolset ``bulk``): hundreds of orders in one call, paced to the rate limit, with progress,
cancellation, a per-target report and idempotent repeats (the host's :mod:`odmcp.bulk` runner).

Every target is validated before the first write; then each runs through the same write route and the
same operations as the single tools. Order updates and history notes have no batch endpoint: one op
per order. Shipments and inventory go through OrderDesk's batch endpoints, 100 entries per request.
An idempotency key is bound to the arguments in canonical form (ids canonical, lists whose order does
not matter sorted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field

from odmcp.api import (
    MAX_TARGETS,
    BulkJob,
    BulkReport,
    Ref,
    ToolCall,
    ToolTable,
    ValidationFailed,
)
from odmcp_orderdesk import validate
from odmcp_orderdesk.fields import INVENTORY_FIELDS, ORDER_FIELDS, check_keys, check_nested_keys
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.operations import AddNote, AddShipments, UpdateInventoryItems, UpdateWhole
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.tools.common import IdempotencyKey, IdText, StoreArg, Text, capped
from odmcp_orderdesk.tools.orders import resolve_changes

if TYPE_CHECKING:
    from odmcp.api import Gateway

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


@TOOLS.tool(
    "orders.update_many",
    title="Update many orders",
    read_only=False,
    destructive=True,
    idempotent=False,  # a change that adds an item adds it again when repeated
    object_arg="order_ids",
)
async def orders_update_many(
    gateway: Gateway,
    ctx: Context,
    call: ToolCall,
    order_ids: IdList | None = None,
    changes: Annotated[dict[str, Any] | None, Field(description="For every order in order_ids.")] = None,
    updates: Annotated[
        list[OrderChange] | None, Field(max_length=MAX_TARGETS, description="Or changes per order.")
    ] = None,
    dry_run: Annotated[bool, Field(description="Return each diff; write nothing.")] = False,
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Update up to 500 orders as orders_update does, all checked first; reports each (ok, unchanged,
    dry_run, or a code with retryable and hint). Cost: 2 requests per order, paced. Errors:
    VALIDATION (nothing written); the code when none succeeded."""
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
            valid = validate.validate_order_changes(change)
            # every field name against OrderDesk's documented ones, before the first write of the job
            # (a field only some orders carry is accepted by orders_update, which checks the order itself)
            check_keys(valid, "order", ORDER_FIELDS)
            check_nested_keys(valid)
            checked[oid] = await resolve_changes(gateway, name, valid)
        except ValidationFailed as err:
            raise ValidationFailed(f"order {oid} (entry {i}): {err.message}", hint=err.hint) from None
    job = BulkJob(
        [UpdateWhole(gateway, Ref(name, ORDER, oid), checked[oid]) for oid, _ in pairs],
        store=name,
        label="update" if not dry_run else "dry run",
        arguments=sorted([oid, checked[oid]] for oid, _ in pairs),
        idempotency_key=idempotency_key,
        dry_run=dry_run,
    )
    return await gateway.bulk.run(job, call, ctx.report_progress)


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
    call: ToolCall,
    order_ids: IdList,
    note: Annotated[str, Field(min_length=1, max_length=1800)],
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Add one history note to up to 500 orders as orders_add_note does; reports each. Cost: 3
    requests per order, paced. Errors: VALIDATION (nothing written); the code when none succeeded."""
    validate.validate_note(note)
    name = gateway.store(store).name
    ids = _ids(list(order_ids), "order_ids")
    job = BulkJob(
        [AddNote(Ref(name, ORDER, oid), note) for oid in ids],
        store=name,
        label="add note",
        arguments={"order_ids": sorted(ids), "note": note},
        idempotency_key=idempotency_key,
    )
    return await gateway.bulk.run(job, call, ctx.report_progress)


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
    call: ToolCall,
    shipments: Annotated[list[ShipmentEntry], Field(min_length=1, max_length=MAX_TARGETS)],
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Add up to 500 shipments as shipments_add does; reports each as order_id:tracking_number. Cost:
    1 request per order + 1 per 100. Errors: VALIDATION (nothing written); the code when none
    succeeded."""
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
    keys = list(entries)
    job = BulkJob(
        [
            AddShipments(name, {k: entries[k] for k in keys[i : i + BATCH]})
            for i in range(0, len(keys), BATCH)
        ],
        store=name,
        label="add shipments",
        arguments=sorted(entries.items()),
        idempotency_key=idempotency_key,
    )
    return await gateway.bulk.run(job, call, ctx.report_progress)


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
    call: ToolCall,
    updates: Annotated[list[InventoryChange], Field(min_length=1, max_length=MAX_TARGETS)],
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> BulkReport:
    """Update up to 500 inventory items as inventory_update does; reports each. Cost: 2 requests per
    100 (+1 per item given by id). Errors: VALIDATION (nothing written); the code when none
    succeeded."""
    name = gateway.store(store).name
    given: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, u in enumerate(updates):
        if (u.id is None) == (u.code is None):
            raise ValidationFailed(f"updates[{i}]: give exactly one of id or code")
        by, value = ("id", check_id(f"updates[{i}].id", u.id)) if u.id is not None else ("code", str(u.code))
        try:
            change = validate.validate_inventory_changes(u.changes)
            check_keys(change, "inventory item", INVENTORY_FIELDS)
        except ValidationFailed as err:
            raise ValidationFailed(f"updates[{i}]: {err.message}", hint=err.hint) from None
        if value in given:
            raise ValidationFailed(f"updates[{i}]: {value} is listed twice", hint="List each item once.")
        given[value] = (by, change)
    wanted = await _resolve_items(gateway, name, given)
    names = list(wanted)
    job = BulkJob(
        [
            UpdateInventoryItems(name, {n: wanted[n] for n in names[i : i + BATCH]})
            for i in range(0, len(names), BATCH)
        ],
        store=name,
        label="update inventory",
        arguments=sorted([n, w[0], w[2]] for n, w in wanted.items()),
        idempotency_key=idempotency_key,
    )
    return await gateway.bulk.run(job, call, ctx.report_progress)


async def _resolve_items(
    gateway: Gateway, store: str, given: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Each target's item id (a SKU is looked up: identity only, the snapshot is read under the lock).

    An item named twice (once by id, once by its SKU) is refused: the second change would silently
    replace the first.
    """
    codes = [v for v, (by, _) in given.items() if by == "code"]
    found = await runtime(gateway).client(store).find_inventory_by_codes(codes) if codes else {}
    out: dict[str, tuple[str, str, dict[str, Any]]] = {}
    seen: dict[str, str] = {}
    for value, (by, change) in given.items():
        if by == "id":
            item_id, code = value, ""
        elif value in found:
            item_id, code = str(found[value].get("id")), value
        else:
            item_id, code = f"code:{value}", value
        if item_id in seen:
            raise ValidationFailed(
                f"inventory item {item_id} is named twice ({seen[item_id]!r} and {value!r})",
                hint="Give each item once, by id or by code, with all its changes; nothing was written.",
            )
        seen[item_id] = value
        out[value] = (item_id, code, change)
    return out
