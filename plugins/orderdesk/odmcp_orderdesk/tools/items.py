"""order_items.* and shipments.* tools. Each write invalidates the order it touched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from odmcp.api import Ref, ToolCall, ToolTable, fit_list
from odmcp_orderdesk import validate
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.operations import (
    AddItem,
    AddShipment,
    DeleteItem,
    DeleteShipment,
    UpdateItem,
    UpdateShipment,
)
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
)

if TYPE_CHECKING:
    from odmcp.api import Gateway

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


TOOLS = ToolTable(toolset="items")


def _message(result: Any, default: str) -> str:
    """OrderDesk answers item and shipment writes with ``{"message": ...}`` only."""
    return str(result.get("message") or default) if isinstance(result, dict) else default


def _order_ref(gateway: Gateway, store: str | None, order_id: str) -> Ref:
    return Ref(gateway.store(store).name, "order", check_id("order_id", order_id))


@TOOLS.tool("order_items.add", title="Add an order item", read_only=False, object_arg="order_id")
async def order_items_add(
    gateway: Gateway, call: ToolCall, order_id: OrderId, item: ItemArg, store: StoreArg = None
) -> MessageResult:
    """Add an item to an order (totals recalculated). Cost: 3 requests. Errors: NOT_FOUND,
    VALIDATION, OUTCOME_UNKNOWN (check order_items with orders_get)."""
    validate.validate_order_item(item, creating=True)
    r = _order_ref(gateway, store, order_id)
    result = (await gateway.route.run(AddItem(r, item), call)).only()
    return MessageResult(message=_message(result.value, "Order Item Added"), reconciled=result.reconciled)


@TOOLS.tool(
    "order_items.update",
    title="Update an order item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def order_items_update(
    gateway: Gateway,
    call: ToolCall,
    order_id: OrderId,
    item_id: ItemId,
    item: ItemArg,
    store: StoreArg = None,
) -> MessageResult:
    """Change fields of an order item (the rest are kept). Cost: 2 requests.
    Errors: NOT_FOUND, VALIDATION, OUTCOME_UNKNOWN (check the item with orders_get)."""
    validate.validate_order_item(item, creating=False)
    r = _order_ref(gateway, store, order_id)
    iid = check_id("item_id", item_id)
    result = (await gateway.route.run(UpdateItem(r, iid, item), call)).only()
    done = (
        "No change: the item already has these values" if result.state == "already" else "Order Item Updated"
    )
    return MessageResult(message=_message(result.value, done), reconciled=result.reconciled)


@TOOLS.tool(
    "order_items.delete",
    title="Delete an order item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def order_items_delete(
    gateway: Gateway, call: ToolCall, order_id: OrderId, item_id: ItemId, store: StoreArg = None
) -> DeleteResult:
    """Remove an item from an order (totals recalculated). Cost: 2 requests. Errors: NOT_FOUND,
    OUTCOME_UNKNOWN (check order_items with orders_get)."""
    r = _order_ref(gateway, store, order_id)
    iid = check_id("item_id", item_id)
    (await gateway.route.run(DeleteItem(r, iid), call)).only()
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
    gateway: Gateway, call: ToolCall, order_id: OrderId, shipment: ShipmentArg, store: StoreArg = None
) -> MessageResult:
    """Add a shipment (tracking number) to an order; one the order already has is refused. Cost: 3
    requests. Errors: VALIDATION, NOT_FOUND, OUTCOME_UNKNOWN (check with shipments_list)."""
    validate.validate_shipment(shipment)
    r = _order_ref(gateway, store, order_id)
    result = (await gateway.route.run(AddShipment(r, shipment), call)).only()
    return MessageResult(message=_message(result.value, "Shipment Added"), reconciled=result.reconciled)


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
    call: ToolCall,
    order_id: OrderId,
    shipment_id: ShipmentId,
    shipment: ShipmentArg,
    store: StoreArg = None,
) -> MessageResult:
    """Change fields of a shipment. Cost: 2 requests. Errors: NOT_FOUND, VALIDATION,
    OUTCOME_UNKNOWN (see shipments_list)."""
    r = _order_ref(gateway, store, order_id)
    sid = check_id("shipment_id", shipment_id)
    result = (await gateway.route.run(UpdateShipment(r, sid, shipment), call)).only()
    done = (
        "No change: the shipment already has these values"
        if result.state == "already"
        else "Shipment Updated"
    )
    return MessageResult(message=_message(result.value, done), reconciled=result.reconciled)


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
    gateway: Gateway, call: ToolCall, order_id: OrderId, shipment_id: ShipmentId, store: StoreArg = None
) -> DeleteResult:
    """Delete a shipment from an order. Cost: 2 requests. Errors: NOT_FOUND, OUTCOME_UNKNOWN (check
    with shipments_list)."""
    r = _order_ref(gateway, store, order_id)
    sid = check_id("shipment_id", shipment_id)
    (await gateway.route.run(DeleteShipment(r, sid), call)).only()
    return DeleteResult(deleted=True, id=sid)
