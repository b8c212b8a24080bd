"""order_items.* and shipments.* tools. Each write invalidates the order it touched."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from gateway.refs import Ref
from plugins.orderdesk import merge, validate
from plugins.orderdesk.ids import check_id
from plugins.orderdesk.runtime import runtime
from plugins.orderdesk.tools.common import (
    DeleteResult,
    ItemId,
    ListResult,
    MessageResult,
    OrderId,
    ShipmentId,
    StoreArg,
)

if TYPE_CHECKING:
    from gateway.app import Gateway

ItemArg = Annotated[
    dict[str, Any],
    Field(
        description="Item fields: name, code (SKU), price, quantity, weight, "
        "delivery_type, category_code, variation_list {k: v}, metadata {k: v}."
    ),
]
ShipmentArg = Annotated[
    dict[str, Any],
    Field(
        description="Shipment fields: tracking_number (required; 'n/a' if "
        "none), carrier_code (UPS, USPS, FedEx...), shipment_method, weight, "
        "cost, status, tracking_url."
    ),
]


def _message(result: Any, default: str) -> str:
    """OrderDesk answers item and shipment writes with ``{"message": ...}`` only."""
    return str(result.get("message") or default) if isinstance(result, dict) else default


def register(register: Callable[..., None], gateway: Gateway) -> None:
    wf = gateway.workflow

    def order_ref(store: str | None, order_id: str) -> Ref:
        return Ref(gateway.store(store).name, "order", check_id("order_id", order_id))

    async def order_items_add(order_id: OrderId, item: ItemArg, store: StoreArg = None) -> MessageResult:
        """Add one item to an order; OrderDesk recalculates the totals. Errors: NOT_FOUND, VALIDATION."""
        validate.validate_order_item(item, creating=True)
        r = order_ref(store, order_id)
        client = runtime(gateway).client(r.store)
        msg = await wf.write(r, lambda: client.add_order_item(r.id, item))
        return MessageResult(message=_message(msg, "Order Item Added"))

    register(order_items_add, name="order_items.add", title="Add an order item", read_only=False)

    async def order_items_update(
        order_id: OrderId, item_id: ItemId, item: ItemArg, store: StoreArg = None
    ) -> MessageResult:
        """Change one item of an order. Only the fields you give change: the current item is fetched,
        merged with yours and sent complete. Errors: NOT_FOUND (order or item), VALIDATION."""
        validate.validate_order_item(item, creating=False)
        r = order_ref(store, order_id)
        iid = check_id("item_id", item_id)
        client = runtime(gateway).client(r.store)

        async def op() -> Any:
            current = await client.get_order_item(r.id, iid)
            merged = merge.merge_item(current, item)
            validate.validate_order_item(merged, creating=False)
            return await client.update_order_item(r.id, iid, merged)

        msg = await wf.write(r, op)
        return MessageResult(message=_message(msg, "Order Item Updated"))

    register(
        order_items_update,
        name="order_items.update",
        title="Update an order item",
        read_only=False,
        destructive=True,
        idempotent=True,
    )

    async def order_items_delete(order_id: OrderId, item_id: ItemId, store: StoreArg = None) -> DeleteResult:
        """Remove one item from an order; OrderDesk recalculates the totals. Errors: NOT_FOUND."""
        r = order_ref(store, order_id)
        iid = check_id("item_id", item_id)
        client = runtime(gateway).client(r.store)
        await wf.write(r, lambda: client.delete_order_item(r.id, iid))
        return DeleteResult(deleted=True, id=iid)

    register(
        order_items_delete,
        name="order_items.delete",
        title="Delete an order item",
        read_only=False,
        destructive=True,
        idempotent=True,
    )

    async def shipments_list(order_id: OrderId, store: StoreArg = None) -> ListResult:
        """List an order's shipments (tracking numbers, carriers, dates). Errors: NOT_FOUND."""
        r = order_ref(store, order_id)
        items = await runtime(gateway).client(r.store).list_shipments(r.id)
        return ListResult(items=items, total_records=len(items), records_returned=len(items))

    register(shipments_list, name="shipments.list", title="List an order's shipments", read_only=True)

    async def shipments_add(
        order_id: OrderId, shipment: ShipmentArg, store: StoreArg = None
    ) -> MessageResult:
        """Add a shipment (tracking number) to an order; several shipments mean partial fulfilment.
        OrderDesk refuses a duplicate tracking number. Errors: VALIDATION, NOT_FOUND."""
        validate.validate_shipment(shipment)
        r = order_ref(store, order_id)
        client = runtime(gateway).client(r.store)
        msg = await wf.write(r, lambda: client.add_shipment(r.id, shipment))
        return MessageResult(message=_message(msg, "Shipment Added"))

    register(shipments_add, name="shipments.add", title="Add a shipment", read_only=False)

    async def shipments_update(
        order_id: OrderId, shipment_id: ShipmentId, shipment: ShipmentArg, store: StoreArg = None
    ) -> MessageResult:
        """Change a shipment's fields (only those given change). Errors: NOT_FOUND, VALIDATION."""
        r = order_ref(store, order_id)
        sid = check_id("shipment_id", shipment_id)
        client = runtime(gateway).client(r.store)

        async def op() -> Any:
            current = await client.get_shipment(r.id, sid)
            merged = merge.merge_shipment(current, shipment)
            validate.validate_shipment(merged, creating=False)
            return await client.update_shipment(r.id, sid, merged)

        msg = await wf.write(r, op)
        return MessageResult(message=_message(msg, "Shipment Updated"))

    register(
        shipments_update,
        name="shipments.update",
        title="Update a shipment",
        read_only=False,
        destructive=True,
        idempotent=True,
    )

    async def shipments_delete(
        order_id: OrderId, shipment_id: ShipmentId, store: StoreArg = None
    ) -> DeleteResult:
        """Delete a shipment from an order. Errors: NOT_FOUND."""
        r = order_ref(store, order_id)
        sid = check_id("shipment_id", shipment_id)
        client = runtime(gateway).client(r.store)
        await wf.write(r, lambda: client.delete_shipment(r.id, sid))
        return DeleteResult(deleted=True, id=sid)

    register(
        shipments_delete,
        name="shipments.delete",
        title="Delete a shipment",
        read_only=False,
        destructive=True,
        idempotent=True,
    )
