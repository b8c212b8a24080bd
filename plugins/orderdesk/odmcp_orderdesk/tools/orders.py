"""orders.* tools: get, list, create, update, delete, move, add_note."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from odmcp.bulk import MAX_TARGETS, BulkReport, Done, Target
from odmcp.errors import ConfirmationRequired, ValidationFailed
from odmcp.refs import Ref
from odmcp.tools import ToolTable
from odmcp.workflow import MutationResult, current_call
from odmcp_orderdesk import validate
from odmcp_orderdesk.folders import resolve_folder
from odmcp_orderdesk.ids import ID_PATTERN, check_id
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.tools.common import (
    DeleteResult,
    IdText,
    MessageResult,
    OrderId,
    OrderListResult,
    OrderResult,
    StoreArg,
    UpdateResult,
)
from odmcp_orderdesk.writes import add_note, move_orders, resolve_changes, update_order

if TYPE_CHECKING:
    from odmcp.app import Gateway

ORDER = "order"
#: order ids per POST /move-orders
MOVE_BATCH = 100


def entry_code(message: str) -> str:
    """The error code of a failed per-entry result of a batch endpoint, from its message."""
    return "NOT_FOUND" if "not found" in message.lower() else "VALIDATION"


DateArg = Annotated[
    str | None,
    Field(
        description="UTC date 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.",
        max_length=32,
        pattern=r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?Z?)?$",
    ),
]
ShortText = Annotated[str | None, Field(max_length=200)]


class Confirm(BaseModel):
    confirm: bool = Field(description="true to delete the order; this cannot be undone")


def _can_elicit(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return False
    # 2026-07-28 rides InputRequiredResult; older protocol versions need a live back-channel
    return is_version_at_least(ctx.protocol_version or "", "2026-07-28") or bool(
        getattr(ctx.session, "can_send_request", False)
    )


def _ask_delete(order_id: str, ctx: Context, confirm: bool = False) -> Elicit[Confirm] | Confirm:
    """Ask the human through elicitation when the client can; otherwise fall back to ``confirm``."""
    if not ID_PATTERN.fullmatch(str(order_id)):
        return Confirm(confirm=False)  # the tool body reports the bad id; never prompt for it
    if _can_elicit(ctx):
        return Elicit(f"Delete OrderDesk order {order_id}? This cannot be undone.", Confirm)
    return Confirm(confirm=confirm)


def _reconciled() -> bool:
    call = current_call.get()
    return bool(call is not None and call.reconciled)


def _update_message(result: MutationResult, dry_run: bool) -> str:
    if dry_run:
        return "Dry run: nothing was sent; changes shows what would be uploaded."
    if not result.uploaded:
        return "No change: the order already has these values; nothing was sent to OrderDesk."
    if result.reconciled:
        return "Updated (OrderDesk's answer was unclear; a re-read confirmed the change)."
    return "Updated."


TOOLS = ToolTable()


def _ref(gateway: Gateway, store: str | None, order_id: str = "") -> Ref:
    return Ref(gateway.store(store).name, ORDER, check_id("order_id", order_id) if order_id else "")


@TOOLS.tool("orders.get", title="Get an order", read_only=True, object_arg="order_id")
async def orders_get(
    gateway: Gateway,
    order_id: OrderId,
    include_history: Annotated[
        bool,
        Field(description="Also return order_history (the notes log); costs one more request."),
    ] = False,
    store: StoreArg = None,
) -> OrderResult:
    """Get one order with every field: addresses, items (with their ids), totals, notes, shipments,
    checkout_data and order_metadata.

    Served from a short-lived cache when fresh. Errors: NOT_FOUND if no order has this id in the
    store; VALIDATION for a malformed id; RATE_LIMITED/UPSTREAM when OrderDesk is busy or down."""
    r = _ref(gateway, store, order_id)
    order = await gateway.workflow.read(r)
    if include_history:
        history = await runtime(gateway).client(r.store).get_order_history(order)
        order = {**order, "order_history": history}
    return OrderResult(order=order)


@TOOLS.tool("orders.list", title="Search orders", read_only=True)
async def orders_list(
    gateway: Gateway,
    store: StoreArg = None,
    folder_id: Annotated[int | None, Field(ge=0, description="Only orders in this folder id.")] = None,
    folder_name: Annotated[
        str | None, Field(max_length=100, description="Only orders in this folder (exact name).")
    ] = None,
    source_id: Annotated[
        str | None, Field(max_length=100, description="The cart/marketplace order id.")
    ] = None,
    source_name: ShortText = None,
    email: Annotated[str | None, Field(max_length=254)] = None,
    customer_id: ShortText = None,
    search_start_date: DateArg = None,
    search_end_date: DateArg = None,
    modified_start_date: DateArg = None,
    modified_end_date: DateArg = None,
    order_by: Annotated[
        str | None, Field(pattern=r"^[a-z_]{1,40}$", description="Field to sort by; default date_added.")
    ] = None,
    order: Literal["asc", "desc", "ASC", "DESC"] | None = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Page size, 1-500.")] = 50,
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0,
    include_history: Annotated[
        bool, Field(description="Also return each order's order_history (slower upstream).")
    ] = False,
) -> OrderListResult:
    """Search orders. All filters are optional and combine with AND; dates are UTC and
    search_* filter on the order date, modified_* on the last change. Returns one page of full orders
    plus total_records; pass next_offset as offset for the next page (null means last page).
    Prefer a date range or folder filter over listing everything. Errors: VALIDATION for bad filters."""
    filters: dict[str, Any] = {
        "folder_id": folder_id,
        "folder_name": folder_name,
        "source_id": source_id,
        "source_name": source_name,
        "email": email,
        "customer_id": customer_id,
        "search_start_date": search_start_date,
        "search_end_date": search_end_date,
        "modified_start_date": modified_start_date,
        "modified_end_date": modified_end_date,
        "order_by": order_by,
        "order": order,  # the client checks and upper-cases it
        "limit": limit,
        "offset": offset,
        "get_order_history": True if include_history else None,
    }
    filters = {k: v for k, v in filters.items() if v is not None}
    name = gateway.store(store).name
    client = runtime(gateway).client(name)
    page = await gateway.workflow.read_list(name, ORDER, filters, lambda: client.list_orders(**filters))
    returned = int(page.get("records_returned", len(page["orders"])))
    total = int(page.get("total_records", returned))
    nxt = offset + returned if returned == limit and offset + returned < total else None
    return OrderListResult(
        orders=page["orders"],
        total_records=total,
        records_returned=returned,
        offset=offset,
        limit=limit,
        next_offset=nxt,
    )


@TOOLS.tool("orders.create", title="Create an order", read_only=False, destructive=False, idempotent=False)
async def orders_create(
    gateway: Gateway,
    order: Annotated[
        dict[str, Any],
        Field(
            description="The new order: order_items (at least one, each with "
            "name/code, price, quantity) and a shipping or customer address with "
            "first_name+last_name or company. Optional: email, source_id, "
            "checkout_data, order_metadata, folder_id, shipping_method, totals "
            "for shipping/handling/tax."
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        Field(
            min_length=8,
            max_length=128,
            description="Any unique string "
            "per intended order; resending the same key and body returns "
            "the first result instead of creating a duplicate.",
        ),
    ] = None,
    store: StoreArg = None,
) -> OrderResult:
    """Create an order. OrderDesk computes the totals, fills the missing one of shipping/customer from
    the other, puts it in the first folder unless folder_id is given, and rejects duplicates (same
    source_id and source_name). Always pass an idempotency_key so a retry never creates a second order.
    Errors: VALIDATION names the bad field (nothing is created); CONFLICT never happens here."""
    body = validate.validate_new_order(order)
    r = _ref(gateway, store)
    if idempotency_key and not body.get("source_id"):
        # The key also becomes the source_id, so OrderDesk's own duplicate check and the client's
        # lookup-after-timeout protect the create even when the cache has lost the key.
        digest = hashlib.sha256(f"{r.store}\0{idempotency_key}".encode()).hexdigest()[:24]
        body = {**body, "source_id": f"mcpgw-{digest}"}
    created = await gateway.workflow.create(r, body, idempotency_key)
    return OrderResult(order=created)


@TOOLS.tool(
    "orders.update",
    title="Update an order",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def orders_update(
    gateway: Gateway,
    order_id: OrderId,
    changes: Annotated[
        dict[str, Any],
        Field(
            description="Only the fields to change. Addresses (shipping, "
            "customer, return_address) and checkout_data/order_metadata merge "
            "key by key; null removes a field or key. order_items: an entry "
            "with id updates that item, without id adds one, "
            '{"id": ..., "_delete": true} removes one; items you don\'t '
            "mention are kept. folder_id moves the order (runs folder rules)."
        ),
    ],
    dry_run: Annotated[
        bool, Field(description="true: return the diff that would be uploaded; write nothing.")
    ] = False,
    store: StoreArg = None,
) -> UpdateResult:
    """Change an order safely: fetches the full order, merges only your changes, uploads the complete
    order (OrderDesk replaces the whole order on update, so nothing you didn't mention is lost) and
    retries with backoff if another writer changed it meanwhile. Totals, ids, dates and shipments are
    read-only here (use order_items_*/shipments_* tools). Errors: VALIDATION names the field;
    NOT_FOUND; CONFLICT after all retries (re-read the order and retry)."""
    if not isinstance(changes, dict):
        raise ValidationFailed("changes must be an object")
    changes = validate.validate_order_changes(changes)
    r = _ref(gateway, store, order_id)
    changes = await resolve_changes(gateway, r.store, changes)  # every step checked before the first write
    result = await update_order(gateway, r, changes, dry_run)
    return UpdateResult(
        order=result.obj,
        attempts=result.attempts,
        changed_fields=result.changed_fields,
        dry_run=dry_run,
        changes=result.changes if dry_run else [],
        reconciled=result.reconciled,
        message=_update_message(result, dry_run),
    )


@TOOLS.tool(
    "orders.delete",
    title="Delete an order",
    read_only=False,
    destructive=True,
    idempotent=True,
    object_arg="order_id",
)
async def orders_delete(
    gateway: Gateway,
    order_id: OrderId,
    ctx: Context,
    answer: Annotated[ElicitationResult[Confirm], Resolve(_ask_delete)],
    confirm: Annotated[
        bool,
        Field(
            description="Set true only after the user explicitly agreed (used "
            "when the client can't show a confirmation prompt)."
        ),
    ] = False,
    store: StoreArg = None,
) -> DeleteResult:
    """Delete an order permanently. The user must confirm: the client shows a prompt when it
    supports elicitation; otherwise ask the user yourself and call again with confirm=true.
    Errors: CONFIRMATION_REQUIRED (nothing deleted), NOT_FOUND, VALIDATION."""
    r = _ref(gateway, store, order_id)
    if not (isinstance(answer, AcceptedElicitation) and answer.data.confirm):
        declined = not isinstance(answer, AcceptedElicitation)
        raise ConfirmationRequired(
            f"order {r.id} was not deleted: " + ("the user declined" if declined else "confirmation missing"),
            hint="Ask the user; if they agree, call again with confirm=true."
            if not declined
            else "The user said no; do not retry unless they ask again.",
        )
    await gateway.workflow.delete(r)
    return DeleteResult(deleted=True, id=r.id)


@TOOLS.tool(
    "orders.move",
    title="Move orders to a folder",
    read_only=False,
    destructive=False,
    idempotent=False,  # a repeat re-runs the folder's rules (emails, fulfilment)
    object_arg="order_ids",
)
async def orders_move(
    gateway: Gateway,
    ctx: Context,
    order_ids: Annotated[
        list[Annotated[str, IdText]],
        Field(min_length=1, max_length=MAX_TARGETS, description="Order ids to move (at most 500)."),
    ],
    folder_id: Annotated[
        int | None, Field(ge=0, description="Destination folder id (see store_get).")
    ] = None,
    folder_name: Annotated[
        str | None, Field(max_length=100, description="Destination folder name, exact.")
    ] = None,
    store: StoreArg = None,
) -> BulkReport:
    """Move orders to another folder, 100 per request. This runs the destination folder's rules in
    OrderDesk (which may send emails or start fulfilment) and writes an order-history entry, so a repeat
    is not harmless. Give exactly one of folder_id or folder_name. The result reports every order
    (ok, or its error code); progress is reported for long lists. Errors: VALIDATION (nothing moved)."""
    if (folder_id is None) == (folder_name is None):
        raise ValidationFailed("give exactly one of folder_id or folder_name")
    ids = list(dict.fromkeys(check_id(f"order_ids[{i}]", v) for i, v in enumerate(order_ids)))
    name = gateway.store(store).name
    target = await resolve_folder(gateway, name, folder_id=folder_id, folder_name=folder_name)

    async def move(left: list[str]) -> dict[str, Done]:
        out = await move_orders(gateway, name, left, target)
        failed = {str(f) for f in out.get("failed") or []}
        said = {str(r.get("order_id")): str(r.get("message") or "") for r in out.get("results") or []}
        confirmed = "re-read" in str(out.get("message", ""))
        return {
            oid: Done(
                entry_code(said.get(oid, "")) if oid in failed else "ok",
                said.get(oid, "") or f"moved to folder {target}",
                reconciled=confirmed,
            )
            for oid in left
        }

    chunks = [ids[i : i + MOVE_BATCH] for i in range(0, len(ids), MOVE_BATCH)]
    return await gateway.bulk.run(
        [Target(chunk, move) for chunk in chunks],
        store=name,
        tool="orders.move",
        label=f"move to folder {target}",
        progress=ctx.report_progress,
    )


@TOOLS.tool(
    "orders.add_note",
    title="Add an order history note",
    read_only=False,
    destructive=False,
    idempotent=False,
    object_arg="order_id",
)
async def orders_add_note(
    gateway: Gateway,
    order_id: OrderId,
    note: Annotated[str, Field(min_length=1, max_length=1800, description="Text of the history entry.")],
    store: StoreArg = None,
) -> MessageResult:
    """Append an entry to the order's history (OrderDesk's audit trail, shown in its UI). History is
    append-only and capped at 250 entries per order. This is not the editable order_notes field.
    Costs 2-3 requests (the history is read first, so an unclear answer can be checked).
    Errors: NOT_FOUND, VALIDATION, OUTCOME_UNKNOWN (check with orders_get include_history)."""
    validate.validate_note(note)
    order = await add_note(gateway, _ref(gateway, store, order_id), note)
    return MessageResult(message="History note added", order=order, reconciled=_reconciled())
