"""order_items.* and shipments.* tools. Each write invalidates the order it touched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from odmcp.budget import fit_list
from odmcp.refs import Ref
from odmcp.tools import ToolTable
from odmcp_orderdesk import merge, validate
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.reconcile import item_matches, same_value
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.summary import Fields, check_shipment_fields, pick, shipment_summary
from odmcp_orderdesk.tools.common import (
    DeleteResult,
    ItemId,
    MessageResult,
    OrderId,
    ShipmentId,
    ShipmentListResult,
    StoreArg,
    reconciled,
)

if TYPE_CHECKING:
    from odmcp.app import Gateway

ItemArg = Annotated[
    dict[str, Any],
    Field(
        description="name, code, price, quantity, weight, delivery_type, category_code, "
        "variation_list, metadata."
    ),
]
ShipmentArg = Annotated[
    dict[str, Any],
    Field(
        description="tracking_number ('n/a' if none), carrier_code, shipment_method, weight, cost, "
        "status, tracking_url."
    ),
]


def _message(result: Any, default: str) -> str:
    """OrderDesk answers item and shipment writes with ``{"message": ...}`` only."""
    return str(result.get("message") or default) if isinstance(result, dict) else default


def _fields_match(sent: dict[str, Any], now: dict[str, Any], asked: dict[str, Any]) -> bool:
    """The fields the caller asked to change have the values that were sent (numbers loosely)."""
    return bool(sent) and all(same_value(sent.get(k), now.get(k)) for k in asked if k != "id")


TOOLS = ToolTable(toolset="items")


async def _update_part(
    gateway: Gateway,
    ref: Ref,
    asked: dict[str, Any],
    *,
    read: Callable[[], Awaitable[dict[str, Any]]],
    merged: Callable[[dict[str, Any]], dict[str, Any]],
    write: Callable[[dict[str, Any]], Awaitable[Any]],
    done: str,
    how_to_check: str,
) -> Any:
    """Read a part of an order (an item, a shipment), merge ``asked`` into it, send it whole; after an
    unclear answer a re-read decides whether the asked fields carry the values sent."""
    sent: dict[str, Any] = {}

    async def op() -> Any:
        body = merged(await read())
        sent.update(body)
        return await write(body)

    async def updated_after_all() -> dict[str, Any] | None:
        return {"message": done} if _fields_match(sent, await read(), asked) else None

    return await gateway.workflow.write(ref, op, reconcile=updated_after_all, how_to_check=how_to_check)


def _order_ref(gateway: Gateway, store: str | None, order_id: str) -> Ref:
    return Ref(gateway.store(store).name, "order", check_id("order_id", order_id))


@TOOLS.tool("order_items.add", title="Add an order item", read_only=False, object_arg="order_id")
async def order_items_add(
    gateway: Gateway, order_id: OrderId, item: ItemArg, store: StoreArg = None
) -> MessageResult:
    """Add an item to an order; totals are recalculated. Cost: 2 requests. Errors: NOT_FOUND,
    VALIDATION, OUTCOME_UNKNOWN."""
    validate.validate_order_item(item, creating=True)
    r = _order_ref(gateway, store, order_id)
    client = runtime(gateway).client(r.store)
    before = await gateway.hooks.fetch(r)  # NOT_FOUND before any write; the ids that exist now
    known = {str(i.get("id")) for i in before.get("order_items") or [] if isinstance(i, dict)}

    async def added_after_all() -> dict[str, Any] | None:
        current = await gateway.hooks.fetch(r)
        for it in current.get("order_items") or []:
            if isinstance(it, dict) and str(it.get("id")) not in known and item_matches(item, it):
                return {"message": "Order Item Added", "item": it}
        return None

    msg = await gateway.workflow.write(
        r,
        lambda: client.add_order_item(r.id, item),
        reconcile=added_after_all,
        how_to_check=f"call orders_get for order {r.id} and look for the item in order_items",
    )
    return MessageResult(message=_message(msg, "Order Item Added"), reconciled=reconciled())


@TOOLS.tool(
    "order_items.update",
    title="Update an order item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def order_items_update(
    gateway: Gateway, order_id: OrderId, item_id: ItemId, item: ItemArg, store: StoreArg = None
) -> MessageResult:
    """Change the given fields of an order item (the rest are kept). Cost: 2 requests.
    Errors: NOT_FOUND, VALIDATION."""
    validate.validate_order_item(item, creating=False)
    r = _order_ref(gateway, store, order_id)
    iid = check_id("item_id", item_id)
    client = runtime(gateway).client(r.store)

    def checked(current: dict[str, Any]) -> dict[str, Any]:
        merged = merge.merge_item(current, item)
        validate.validate_order_item(merged, creating=False)
        return merged

    msg = await _update_part(
        gateway,
        r,
        item,
        read=lambda: client.get_order_item(r.id, iid),
        merged=checked,
        write=lambda body: client.update_order_item(r.id, iid, body),
        done="Order Item Updated",
        how_to_check=f"call orders_get for order {r.id} and check item {iid}",
    )
    return MessageResult(message=_message(msg, "Order Item Updated"), reconciled=reconciled())


@TOOLS.tool(
    "order_items.delete",
    title="Delete an order item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def order_items_delete(
    gateway: Gateway, order_id: OrderId, item_id: ItemId, store: StoreArg = None
) -> DeleteResult:
    """Remove an item from an order; totals are recalculated. Cost: 1 request. Errors: NOT_FOUND."""
    r = _order_ref(gateway, store, order_id)
    iid = check_id("item_id", item_id)
    client = runtime(gateway).client(r.store)

    async def gone() -> dict[str, Any] | None:
        items = (await gateway.hooks.fetch(r)).get("order_items") or []
        present = any(isinstance(i, dict) and str(i.get("id")) == iid for i in items)
        return None if present else {"message": "Order Item Deleted"}

    await gateway.workflow.write(
        r,
        lambda: client.delete_order_item(r.id, iid),
        reconcile=gone,
        how_to_check=f"call orders_get for order {r.id} and check item {iid} is gone",
    )
    return DeleteResult(deleted=True, id=iid)


@TOOLS.tool(
    "shipments.list",
    title="List shipments",
    read_only=True,
    object_arg="order_id",
    toolset="shipments",
)
async def shipments_list(
    gateway: Gateway, order_id: OrderId, fields: Fields = "summary", store: StoreArg = None
) -> ShipmentListResult:
    """List an order's shipments, a summary each. Cost: 1 request. Errors: NOT_FOUND."""
    check_shipment_fields(fields)
    r = _order_ref(gateway, store, order_id)
    shipments = await runtime(gateway).client(r.store).list_shipments(r.id)
    if fields != "full":
        shipments = [pick(s, shipment_summary(s), fields) for s in shipments]
    return fit_list(
        ShipmentListResult(shipments=shipments),
        "shipments",
        gateway.config.gateway.max_result_bytes,
        offset=None,
        narrow="ask for fewer fields",
        shrink=shipment_summary,
    )


@TOOLS.tool(
    "shipments.add", title="Add a shipment", read_only=False, object_arg="order_id", toolset="shipments"
)
async def shipments_add(
    gateway: Gateway, order_id: OrderId, shipment: ShipmentArg, store: StoreArg = None
) -> MessageResult:
    """Add a shipment (tracking number) to an order; several mean partial fulfilment. A duplicate
    tracking number is refused. Cost: 1 request. Errors: VALIDATION, NOT_FOUND."""
    validate.validate_shipment(shipment)
    r = _order_ref(gateway, store, order_id)
    client = runtime(gateway).client(r.store)
    # An unclear POST is settled by the client (it looks the tracking number up); what stays unclear
    # is reported as OUTCOME_UNKNOWN with how to check.
    msg = await gateway.workflow.write(
        r,
        lambda: client.add_shipment(r.id, shipment),
        how_to_check=f"call shipments_list for order {r.id} and look for the tracking number",
    )
    reconciled = isinstance(msg, dict) and bool(msg.get("confirmed_by_lookup"))
    return MessageResult(message=_message(msg, "Shipment Added"), reconciled=reconciled)


@TOOLS.tool(
    "shipments.update",
    toolset="shipments",
    title="Update a shipment",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def shipments_update(
    gateway: Gateway,
    order_id: OrderId,
    shipment_id: ShipmentId,
    shipment: ShipmentArg,
    store: StoreArg = None,
) -> MessageResult:
    """Change the given fields of a shipment. Cost: 2 requests. Errors: NOT_FOUND, VALIDATION."""
    r = _order_ref(gateway, store, order_id)
    sid = check_id("shipment_id", shipment_id)
    client = runtime(gateway).client(r.store)

    def checked(current: dict[str, Any]) -> dict[str, Any]:
        merged = merge.merge_shipment(current, shipment)
        validate.validate_shipment(merged, creating=False)
        return merged

    msg = await _update_part(
        gateway,
        r,
        shipment,
        read=lambda: client.get_shipment(r.id, sid),
        merged=checked,
        write=lambda body: client.update_shipment(r.id, sid, body),
        done="Shipment Updated",
        how_to_check=f"call shipments_list for order {r.id} and check shipment {sid}",
    )
    return MessageResult(message=_message(msg, "Shipment Updated"), reconciled=reconciled())


@TOOLS.tool(
    "shipments.delete",
    toolset="shipments",
    title="Delete a shipment",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def shipments_delete(
    gateway: Gateway, order_id: OrderId, shipment_id: ShipmentId, store: StoreArg = None
) -> DeleteResult:
    """Delete a shipment from an order. Cost: 1 request. Errors: NOT_FOUND."""
    r = _order_ref(gateway, store, order_id)
    sid = check_id("shipment_id", shipment_id)
    client = runtime(gateway).client(r.store)

    async def gone() -> dict[str, Any] | None:
        present = any(str(s.get("id")) == sid for s in await client.list_shipments(r.id))
        return None if present else {"message": "Shipment Deleted"}

    await gateway.workflow.write(
        r,
        lambda: client.delete_shipment(r.id, sid),
        reconcile=gone,
        how_to_check=f"call shipments_list for order {r.id} and check shipment {sid} is gone",
    )
    return DeleteResult(deleted=True, id=sid)
