"""orders.* tools: get, list, create, update, delete, move, add_note."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from gateway.errors import ConfirmationRequired, ValidationFailed
from gateway.refs import Ref
from plugins.orderdesk import validate
from plugins.orderdesk.ids import ID_PATTERN, check_id
from plugins.orderdesk.runtime import runtime
from plugins.orderdesk.tools.common import (
    DeleteResult,
    IdText,
    MessageResult,
    OrderId,
    OrderListResult,
    OrderResult,
    StoreArg,
    UpdateResult,
)

if TYPE_CHECKING:
    from gateway.app import Gateway

ORDER = "order"
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


def register(register: Callable[..., None], gateway: Gateway) -> None:
    wf = gateway.workflow

    def ref(store: str | None, order_id: str = "") -> Ref:
        return Ref(gateway.store(store).name, ORDER, check_id("order_id", order_id) if order_id else "")

    async def orders_get(order_id: OrderId, store: StoreArg = None) -> OrderResult:
        """Get one order with every field: addresses, items (with their ids), totals, notes, shipments,
        checkout_data and order_metadata.

        Served from a short-lived cache when fresh. Errors: NOT_FOUND if no order has this id in the
        store; VALIDATION for a malformed id; RATE_LIMITED/UPSTREAM when OrderDesk is busy or down."""
        return OrderResult(order=await wf.read(ref(store, order_id)))

    register(orders_get, name="orders.get", title="Get an order", read_only=True)

    async def orders_list(
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
        }
        filters = {k: v for k, v in filters.items() if v is not None}
        name = gateway.store(store).name
        client = runtime(gateway).client(name)
        page = await wf.read_list(name, ORDER, filters, lambda: client.list_orders(**filters))
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

    register(orders_list, name="orders.list", title="Search orders", read_only=True)

    async def orders_create(
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
        r = ref(store)
        if idempotency_key and not body.get("source_id"):
            # The key also becomes the source_id, so OrderDesk's own duplicate check and the client's
            # lookup-after-timeout protect the create even when the cache has lost the key.
            digest = hashlib.sha256(f"{r.store}\0{idempotency_key}".encode()).hexdigest()[:24]
            body = {**body, "source_id": f"mcpgw-{digest}"}
        created = await wf.create(r, body, idempotency_key)
        return OrderResult(order=created)

    register(
        orders_create,
        name="orders.create",
        title="Create an order",
        read_only=False,
        destructive=False,
        idempotent=False,
    )

    async def orders_update(
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
        result = await wf.mutate(ref(store, order_id), changes, dry_run=dry_run)
        return UpdateResult(
            order=result.obj,
            attempts=result.attempts,
            changed_fields=result.changed_fields,
            dry_run=dry_run,
            changes=result.changes if dry_run else [],
        )

    register(
        orders_update,
        name="orders.update",
        title="Update an order",
        read_only=False,
        destructive=True,
        idempotent=True,
    )

    async def orders_delete(
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
        r = ref(store, order_id)
        if not (isinstance(answer, AcceptedElicitation) and answer.data.confirm):
            declined = not isinstance(answer, AcceptedElicitation)
            raise ConfirmationRequired(
                f"order {r.id} was not deleted: "
                + ("the user declined" if declined else "confirmation missing"),
                hint="Ask the user; if they agree, call again with confirm=true."
                if not declined
                else "The user said no; do not retry unless they ask again.",
            )
        await wf.delete(r)
        return DeleteResult(deleted=True, id=r.id)

    register(
        orders_delete,
        name="orders.delete",
        title="Delete an order",
        read_only=False,
        destructive=True,
        idempotent=True,
    )

    async def orders_move(
        order_ids: Annotated[
            list[Annotated[str, IdText]],
            Field(min_length=1, max_length=100, description="Order ids to move."),
        ],
        folder_id: Annotated[
            int | None, Field(ge=0, description="Destination folder id (see store_get).")
        ] = None,
        folder_name: Annotated[
            str | None, Field(max_length=100, description="Destination folder name, exact.")
        ] = None,
        store: StoreArg = None,
    ) -> MessageResult:
        """Move orders to another folder. This runs the destination folder's rules in OrderDesk (which
        may send emails or start fulfilment) and writes an order-history entry. Give exactly one of
        folder_id or folder_name. Per-order failures are listed in results. Errors: VALIDATION."""
        if (folder_id is None) == (folder_name is None):
            raise ValidationFailed("give exactly one of folder_id or folder_name")
        ids = list(dict.fromkeys(check_id(f"order_ids[{i}]", v) for i, v in enumerate(order_ids)))
        name = gateway.store(store).name
        client = runtime(gateway).client(name)
        out = await wf.write_many(
            [Ref(name, ORDER, oid) for oid in ids],
            lambda: client.move_orders(ids, folder_id=folder_id, folder_name=folder_name),
        )
        return MessageResult(message=str(out.get("message", "")), results=list(out.get("results", [])))

    register(
        orders_move,
        name="orders.move",
        title="Move orders to a folder",
        read_only=False,
        destructive=False,
        idempotent=False,  # a repeat re-runs the folder's rules (emails, fulfilment)
    )

    async def orders_add_note(
        order_id: OrderId,
        note: Annotated[str, Field(min_length=1, max_length=1800, description="Text of the history entry.")],
        store: StoreArg = None,
    ) -> MessageResult:
        """Append an entry to the order's history (OrderDesk's audit trail, shown in its UI). History is
        append-only and capped at 250 entries per order. This is not the editable order_notes field.
        Errors: NOT_FOUND, VALIDATION."""
        validate.validate_note(note)
        r = ref(store, order_id)
        client = runtime(gateway).client(r.store)
        order = await wf.write(
            r,
            lambda: client.add_order_history(r.id, note),
            # the answer is the whole order (plus its history, which GET /orders/{id} doesn't carry)
            fresh=lambda o: {k: v for k, v in o.items() if k != "order_history"},
        )
        return MessageResult(message="History note added", order=order)

    register(
        orders_add_note,
        name="orders.add_note",
        title="Add an order history note",
        read_only=False,
        destructive=False,
        idempotent=False,
    )
