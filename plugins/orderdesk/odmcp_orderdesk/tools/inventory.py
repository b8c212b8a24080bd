"""inventory.* tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from odmcp.api import (
    ConfirmationRequired,
    Ref,
    ToolCall,
    ToolTable,
    ValidationFailed,
    fit_list,
    fit_object,
)
from odmcp_orderdesk import validate
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.operations import CreateInventoryItem, DeleteWhole, UpdateWhole
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.summary import (
    Fields,
    check_inventory_fields,
    inventory_summary,
    pick,
    summaries_of,
    with_summaries,
)
from odmcp_orderdesk.tools.common import (
    DeleteResult,
    InventoryId,
    InventoryListResult,
    Offset,
    StoreArg,
    capped,
)

if TYPE_CHECKING:
    from odmcp.api import Gateway

INVENTORY = "inventory_item"


class InventoryResult(BaseModel):
    item: dict[str, Any]


class InventoryUpdateResult(BaseModel):
    item: dict[str, Any]
    attempts: int
    changed_fields: list[str]


TOOLS = ToolTable(toolset="inventory")


def _ref(gateway: Gateway, store: str | None, item_id: str) -> Ref:
    return Ref(gateway.store(store).name, INVENTORY, check_id("item_id", item_id))


@TOOLS.tool("inventory.list", title="List inventory items", read_only=True)
async def inventory_list(
    gateway: Gateway,
    store: StoreArg = None,
    code: Annotated[
        str | list[Annotated[str, capped(254)]] | None,
        capped(1000),
        Field(description="SKUs: comma-separated, or a list (commas allowed)."),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
    offset: Offset = 0,
    fields: Fields = "summary",
) -> InventoryListResult:
    """List inventory items (or given SKUs): summaries. Cost: 1 request, 0 if cached."""
    check_inventory_fields(fields)
    name = gateway.store(store).name
    client = runtime(gateway).client(name)
    codes = code if isinstance(code, list) else None
    if codes is not None and not any("," in c or c.strip() != c for c in codes):
        code, codes = ",".join(codes), None  # OrderDesk's own filter can ask for these
    params = {"limit": limit, "offset": offset, "code": code}

    async def load() -> dict[str, Any]:
        if codes is not None:  # SKUs OrderDesk's filter would split: looked up one by one
            found = await client.find_inventory_by_codes(codes)
            listed = [found[c] for c in dict.fromkeys(codes) if c in found][offset : offset + limit]
            page = {"inventory_items": listed, "total_records": len(found)}
        else:
            page = await client.list_inventory(limit=limit, offset=offset, code=code)
        return with_summaries(page, "inventory_items", inventory_summary)

    page = await gateway.workflow.read_list(name, INVENTORY, params, load)
    items = list(page["inventory_items"])
    total = int(page.get("total_records", len(items)))
    nxt = offset + len(items) if len(items) == limit and offset + len(items) < total else None
    if fields != "full":
        summaries = summaries_of(page, "inventory_items", inventory_summary)
        items = [pick(i, s, fields) for i, s in zip(items, summaries, strict=True)]
    return fit_list(
        InventoryListResult(items=items, total_records=total, next_offset=nxt),
        "items",
        gateway.config.gateway.max_result_bytes,
        offset=offset,
        narrow="ask for a smaller limit or fewer fields",
        shrink=inventory_summary,
    )


@TOOLS.tool("inventory.get", title="Get an inventory item", read_only=True, object_arg="item_id")
async def inventory_get(
    gateway: Gateway, item_id: InventoryId, fields: Fields = "full", store: StoreArg = None
) -> InventoryResult:
    """Get one inventory item. Cost: 1 request, 0 if cached. Errors: NOT_FOUND."""
    check_inventory_fields(fields)
    r = _ref(gateway, store, item_id)
    item = await gateway.workflow.read(r)
    summary = inventory_summary(item)
    return fit_object(
        InventoryResult(item=item if fields == "full" else pick(item, summary, fields)),
        "item",
        gateway.config.gateway.max_result_bytes,
        summary,
        f"inventory item {r.id}",
        "name the fields you need in fields",
    )


@TOOLS.tool("inventory.create", title="Create an inventory item", read_only=False)
async def inventory_create(
    gateway: Gateway,
    item: Annotated[
        dict[str, Any],
        Field(
            description="name, code (unique SKU); optional price, cost, weight, stock, location, metadata."
        ),
    ],
    call: ToolCall,
    store: StoreArg = None,
) -> InventoryResult:
    """Create an inventory item with a new SKU (an existing code is refused); returns it with its id.
    Cost: 3 requests. Errors: VALIDATION, OUTCOME_UNKNOWN (inventory_list by code)."""
    validate.validate_inventory_item(item, creating=True)
    op = CreateInventoryItem(gateway.store(store).name, item)
    return InventoryResult(item=(await gateway.route.run(op, call)).only().value)


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
    changes: Annotated[dict[str, Any], Field(description="Only what changes; null removes.")],
    call: ToolCall,
    store: StoreArg = None,
) -> InventoryUpdateResult:
    """Change an inventory item safely (fields you don't name are kept). Cost: 3 requests. Errors:
    NOT_FOUND, VALIDATION, CONFLICT, OUTCOME_UNKNOWN (check with inventory_get)."""
    if not isinstance(changes, dict):
        raise ValidationFailed("changes must be an object")
    validate.validate_inventory_changes(changes)
    op = UpdateWhole(gateway, _ref(gateway, store, item_id), changes)
    result = (await gateway.route.run(op, call)).only()
    return InventoryUpdateResult(item=result.value, attempts=result.attempts, changed_fields=result.fields)


@TOOLS.tool(
    "inventory.delete",
    title="Delete an inventory item",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="item_id",
)
async def inventory_delete(
    gateway: Gateway, call: ToolCall, item_id: InventoryId, confirm: bool = False, store: StoreArg = None
) -> DeleteResult:
    """Delete an inventory item once the user agreed (confirm=true). Cost: 2 requests.
    Errors: CONFIRMATION_REQUIRED, NOT_FOUND, OUTCOME_UNKNOWN (see inventory_get)."""
    r = _ref(gateway, store, item_id)
    if not confirm:
        raise ConfirmationRequired(f"inventory item {r.id} was not deleted: confirmation missing")
    (await gateway.route.run(DeleteWhole(gateway, r), call)).only()
    return DeleteResult(deleted=True, id=r.id)
