"""inventory.* tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from odmcp.errors import ConfirmationRequired, ValidationFailed
from odmcp.refs import Ref
from odmcp.tools import ToolTable
from odmcp_orderdesk import validate
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.tools.common import DeleteResult, InventoryId, ListResult, StoreArg

if TYPE_CHECKING:
    from odmcp.app import Gateway

INVENTORY = "inventory_item"


class InventoryResult(BaseModel):
    item: dict[str, Any]


class InventoryUpdateResult(BaseModel):
    item: dict[str, Any]
    attempts: int
    changed_fields: list[str]


TOOLS = ToolTable()


def _ref(gateway: Gateway, store: str | None, item_id: str) -> Ref:
    return Ref(gateway.store(store).name, INVENTORY, check_id("item_id", item_id))


@TOOLS.tool("inventory.list", title="List inventory items", read_only=True)
async def inventory_list(
    gateway: Gateway,
    store: StoreArg = None,
    code: Annotated[
        str | None, Field(max_length=1000, description="Comma-separated SKUs to look up.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0,
) -> ListResult:
    """List inventory items (SKU, name, price, stock, location), optionally only the given SKUs.
    Pass next_offset as offset for the next page. Errors: VALIDATION."""
    name = gateway.store(store).name
    client = runtime(gateway).client(name)
    params = {"limit": limit, "offset": offset, "code": code}
    page = await gateway.workflow.read_list(
        name, INVENTORY, params, lambda: client.list_inventory(limit=limit, offset=offset, code=code)
    )
    items = list(page["inventory_items"])
    total = int(page.get("total_records", len(items)))
    nxt = offset + len(items) if len(items) == limit and offset + len(items) < total else None
    return ListResult(
        items=items,
        total_records=total,
        records_returned=len(items),
        offset=offset,
        limit=limit,
        next_offset=nxt,
    )


@TOOLS.tool("inventory.get", title="Get an inventory item", read_only=True, object_arg="item_id")
async def inventory_get(gateway: Gateway, item_id: InventoryId, store: StoreArg = None) -> InventoryResult:
    """Get one inventory item by id. Errors: NOT_FOUND, VALIDATION."""
    return InventoryResult(item=await gateway.workflow.read(_ref(gateway, store, item_id)))


@TOOLS.tool("inventory.create", title="Create an inventory item", read_only=False)
async def inventory_create(
    gateway: Gateway,
    item: Annotated[
        dict[str, Any],
        Field(
            description="name and code (unique SKU) are required; price, cost, "
            "weight, stock, location, metadata are optional."
        ),
    ],
    store: StoreArg = None,
) -> InventoryResult:
    """Create an inventory item and return it with its new id. The SKU (code) must be unique.
    Errors: VALIDATION."""
    validate.validate_inventory_item(item, creating=True)
    return InventoryResult(
        item=await gateway.workflow.create(Ref(gateway.store(store).name, INVENTORY), item)
    )


@TOOLS.tool(
    "inventory.update",
    title="Update an inventory item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="item_id",
)
async def inventory_update(
    gateway: Gateway,
    item_id: InventoryId,
    changes: Annotated[dict[str, Any], Field(description="Only the fields to change; null removes one.")],
    store: StoreArg = None,
) -> InventoryUpdateResult:
    """Change an inventory item safely: the full item is fetched, merged with your changes and sent
    complete (OrderDesk blanks fields left out of an update). Errors: NOT_FOUND, VALIDATION, CONFLICT."""
    if not isinstance(changes, dict):
        raise ValidationFailed("changes must be an object")
    validate.validate_inventory_changes(changes)
    result = await gateway.workflow.mutate(_ref(gateway, store, item_id), changes)
    return InventoryUpdateResult(
        item=result.obj, attempts=result.attempts, changed_fields=result.changed_fields
    )


@TOOLS.tool(
    "inventory.delete",
    title="Delete an inventory item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="item_id",
)
async def inventory_delete(
    gateway: Gateway, item_id: InventoryId, confirm: bool = False, store: StoreArg = None
) -> DeleteResult:
    """Delete an inventory item. Requires confirm=true after the user agreed.
    Errors: CONFIRMATION_REQUIRED, NOT_FOUND."""
    r = _ref(gateway, store, item_id)
    if not confirm:
        raise ConfirmationRequired(f"inventory item {r.id} was not deleted: confirmation missing")
    await gateway.workflow.delete(r)
    return DeleteResult(deleted=True, id=r.id)
