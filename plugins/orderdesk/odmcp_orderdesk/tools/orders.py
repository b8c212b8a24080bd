"""orders.* tools: get, list, create, update, delete, move, add_note."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from odmcp.api import (
    MAX_TARGETS,
    BulkJob,
    BulkReport,
    ConfirmationRequired,
    Ref,
    TargetOutcome,
    ToolCall,
    ToolTable,
    ValidationFailed,
    can_elicit,
    closest,
    fit_list,
    fit_object,
    text_size,
)
from odmcp_orderdesk import validate
from odmcp_orderdesk.fields import ORDER_FILTERS
from odmcp_orderdesk.folders import folder_names, resolve_folder
from odmcp_orderdesk.ids import ID_PATTERN, check_id
from odmcp_orderdesk.operations import AddNote, CreateOrder, DeleteWhole, MoveOrders, UpdateWhole
from odmcp_orderdesk.runtime import runtime
from odmcp_orderdesk.summary import (
    Fields,
    check_order_fields,
    order_summary,
    pick,
    summaries_of,
    with_summaries,
)
from odmcp_orderdesk.tools.common import (
    DateArg,
    DeleteResult,
    IdempotencyKey,
    IdText,
    NoteResult,
    Offset,
    OrderId,
    OrderListResult,
    OrderResult,
    StoreArg,
    Text,
    UpdateResult,
)

if TYPE_CHECKING:
    from odmcp.api import Gateway

ORDER = "order"
#: order ids per POST /move-orders
MOVE_BATCH = 100


class Confirm(BaseModel):
    confirm: bool = Field(description="true to delete the order; this cannot be undone")


def _ask_delete(order_id: str, ctx: Context, confirm: bool = False) -> Elicit[Confirm] | Confirm:
    """Ask the human through elicitation when the client can; otherwise fall back to ``confirm``."""
    if not ID_PATTERN.fullmatch(str(order_id)):
        return Confirm(confirm=False)  # the tool body reports the bad id; never prompt for it
    if can_elicit(ctx):
        return Elicit(f"Delete OrderDesk order {order_id}? This cannot be undone.", Confirm)
    return Confirm(confirm=confirm)


def _update_message(result: TargetOutcome) -> str:
    if result.state == "dry_run":
        return "Dry run: nothing was sent; changes shows what would be uploaded."
    if result.state == "already" and not result.reconciled:
        return "No change: the order already has these values; nothing was sent to OrderDesk."
    if result.state == "already":
        return (
            "Already so: OrderDesk's answer was unclear, and a re-read shows these values but also another "
            "change, so whether this call set them can't be told; nothing more to do."
        )
    if result.reconciled:
        return "Updated (OrderDesk's answer was unclear; a re-read shows the change, once)."
    return "Updated."


def _updated_view(order: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    """What an update answers about the order, the same shape whatever happened: its summary plus
    every top-level field the change touched, in full (the rest is one orders_get away, from cache)."""
    touched = {re.split(r"[.\[]", c["path"], maxsplit=1)[0] for c in changes}
    return {**order_summary(order, {}), **{k: order[k] for k in sorted(touched) if k in order}}


async def resolve_changes(gateway: Gateway, store: str, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with a destination ``folder_id`` checked against the store (before any write)."""
    if changes.get("folder_id") is None:
        return changes
    return {**changes, "folder_id": await resolve_folder(gateway, store, folder_id=changes["folder_id"])}


TOOLS = ToolTable(toolset="orders")


def _lower(value: Any) -> Any:
    """``ASC`` is accepted as ``asc`` (OrderDesk's own spelling is upper case)."""
    return value.lower() if isinstance(value, str) else value


def _ref(gateway: Gateway, store: str | None, order_id: str = "") -> Ref:
    return Ref(gateway.store(store).name, ORDER, check_id("order_id", order_id) if order_id else "")


@TOOLS.tool("orders.get", title="Get an order", read_only=True, object_arg="order_id")
async def orders_get(
    gateway: Gateway,
    order_id: OrderId,
    include_history: Annotated[
        bool, Field(description="Adds order_history (+1 request; the newest 250 entries).")
    ] = False,
    fields: Fields = "full",
    store: StoreArg = None,
) -> OrderResult:
    """Get one order in full (items with ids, shipments, metadata). Cost: 1 request, 0 if cached.
    Errors: NOT_FOUND."""
    check_order_fields(fields)
    r = _ref(gateway, store, order_id)
    order = await gateway.workflow.read(r)
    if include_history:
        history = await runtime(gateway).client(r.store).get_order_history(order)
        order = {**order, "order_history": history}
    budget = gateway.config.gateway.max_result_bytes
    if fields == "full":
        result = OrderResult(order=order)
        if text_size(result) <= budget:
            return result
    summary = order_summary(order, await folder_names(gateway, r.store))
    if fields != "full":
        result = OrderResult(order=_with_history(pick(order, summary, fields), order, include_history))
    return fit_object(result, "order", budget, summary, f"order {r.id}", "name the fields you need in fields")


def _with_history(picked: dict[str, Any], order: dict[str, Any], include_history: bool) -> dict[str, Any]:
    """``include_history`` asks for order_history whatever ``fields`` selects."""
    if include_history and "order_history" in order:
        picked["order_history"] = order["order_history"]
    return picked


#: the address fields OrderDesk searches by (``customer_last_name=...``), notes §5.3
ADDRESS_FIELDS = ("first_name", "last_name", "company", "address1", "phone")


def address_filters(who: str, given: dict[str, Any] | None) -> dict[str, str]:
    """``customer``/``shipping`` filter fields, checked (an unknown one names the closest)."""
    for key, value in (given or {}).items():
        if key not in ADDRESS_FIELDS:
            guess = closest(key, ADDRESS_FIELDS)
            raise ValidationFailed(
                f"argument {who!r}: no filter {key!r}" + (f"; did you mean {guess!r}?" if guess else ""),
                hint=f"Filter {who} by {', '.join(ADDRESS_FIELDS)}.",
                field=who,
            )
        if not isinstance(value, str) or not value or len(value) > 254:
            raise ValidationFailed(
                f"argument '{who}.{key}' should be a text of 1 to 254 characters, got {value!r:.40}",
                field=f"{who}.{key}",
            )
    return dict(given or {})


def _sort_field(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[a-z_]{1,40}", value):
        raise ValueError("should be an order field name such as date_added")
    return value


_END_DATES = ("search_end_date", "search_end_date_local", "modified_end_date")


def whole_day(filters: dict[str, Any]) -> dict[str, Any]:
    """An end date without a time means the whole day (``2026-12-05`` -> ``2026-12-05 23:59:59``):
    OrderDesk parses dates loosely, PHP-style, which reads a bare date as midnight (notes §5.3; the
    sandbox does the same), so a one-day search would find nothing."""
    for key in _END_DATES:
        value = filters.get(key)
        if isinstance(value, str) and len(value) == 10:
            filters[key] = f"{value} 23:59:59"
    return filters


@TOOLS.tool("orders.list", title="Search orders", read_only=True)
async def orders_list(
    gateway: Gateway,
    store: StoreArg = None,
    folder_id: Annotated[int | None, Field(ge=0, description="See store_get.")] = None,
    folder_name: Annotated[Text | None, Field(description="Exact name.")] = None,
    source_id: Annotated[Text | None, Field(description="Cart/marketplace order id.")] = None,
    source_name: Text | None = None,
    email: Text | None = None,
    customer_id: Text | None = None,
    customer: Annotated[
        dict[str, Any] | None, Field(description="By first_name, last_name, company, address1, phone.")
    ] = None,
    shipping: Annotated[dict[str, Any] | None, Field(description="As customer.")] = None,
    search_start_date: DateArg = None,
    search_end_date: DateArg = None,
    search_start_date_local: DateArg = None,
    search_end_date_local: DateArg = None,
    modified_start_date: DateArg = None,
    modified_end_date: DateArg = None,
    order_by: Annotated[
        str | None, AfterValidator(_sort_field), Field(description="e.g. date_added.")
    ] = None,
    order: Annotated[Literal["asc", "desc"] | None, BeforeValidator(_lower)] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
    offset: Offset = 0,
    include_history: Annotated[bool, Field(description="Adds order_history.")] = False,
    fields: Fields = "summary",
) -> OrderListResult:
    """Search orders (summaries); filters AND-ed, text as OrderDesk matches it. Dates UTC
    'YYYY-MM-DD[ HH:MM:SS]' (*_local: store time; an end date alone: whole day); search_*: added,
    modified_*: changed. Cost: 1 request, 0 if cached."""
    args = dict(locals())  # first: the arguments as called, each filter named as OrderDesk names it
    check_order_fields(fields)
    for who, given in (("customer", customer), ("shipping", shipping)):
        args.update({f"{who}_{k}": v for k, v in address_filters(who, given).items()})
    filters = whole_day({k: v for k, v in args.items() if k in ORDER_FILTERS and v is not None})
    filters["get_order_history"] = True if include_history else None  # the client upper-cases order
    filters = {k: v for k, v in filters.items() if v is not None}
    name = gateway.store(store).name
    client = runtime(gateway).client(name)

    async def load() -> dict[str, Any]:
        page = await client.list_orders(**filters)
        folders = await folder_names(gateway, name)
        return with_summaries(page, "orders", lambda o: order_summary(o, folders))

    page = await gateway.workflow.read_list(name, ORDER, filters, load)
    orders = page["orders"]
    returned = int(page.get("records_returned", len(orders)))
    total = int(page.get("total_records", returned))
    nxt = offset + returned if returned == limit and offset + returned < total else None
    summaries = summaries_of(page, "orders", lambda o: order_summary(o, {}))
    if fields == "full":
        shown = orders
    else:
        shown = [
            _with_history(pick(o, s, fields), o, include_history)
            for o, s in zip(orders, summaries, strict=True)
        ]
    by_id = {str(s.get("id")): s for s in summaries}
    return fit_list(
        OrderListResult(orders=shown, total_records=total, next_offset=nxt),
        "orders",
        gateway.config.gateway.max_result_bytes,
        offset=offset,
        narrow="ask for a smaller limit or fewer fields",
        shrink=lambda o: by_id.get(str(o.get("id")), o),
    )


@TOOLS.tool("orders.create", title="Create an order", read_only=False, destructive=False, idempotent=False)
async def orders_create(
    gateway: Gateway,
    order: Annotated[
        dict[str, Any],
        Field(
            description="order_items (name/code, price, quantity each), shipping or customer "
            "(first_name+last_name or company); optional: email, source_id, folder_id, shipping_method, "
            "checkout_data, order_metadata."
        ),
    ],
    call: ToolCall,
    idempotency_key: IdempotencyKey = None,
    store: StoreArg = None,
) -> OrderResult:
    """Create an order (first folder unless folder_id); OrderDesk computes totals and refuses a
    duplicate source_id. With idempotency_key a repeat returns the same order. Cost: 2 requests.
    Errors: VALIDATION, OUTCOME_UNKNOWN (orders_list by source_id)."""
    body = validate.validate_new_order(order)
    name = gateway.store(store).name
    generated = not body.get("source_id")
    if generated:
        # A gateway-made source_id: from the key (so a repeat after any crash finds the same order),
        # else random; either way the order can always be found again after an unclear answer.
        seed = f"{name}\0{call.principal or ''}\0{idempotency_key}" if idempotency_key else uuid.uuid4().hex
        body = {**body, "source_id": "mcpgw-" + hashlib.sha256(seed.encode()).hexdigest()[:24]}
    op = CreateOrder(gateway, name, body, generated=generated and bool(idempotency_key))
    if not idempotency_key:
        return OrderResult(order=(await gateway.route.run(op, call)).only().value)
    report = await gateway.bulk.run(
        BulkJob([op], store=name, label="create order", arguments=body, idempotency_key=idempotency_key), call
    )
    ran = [w for w in call.writes if w.ref.store == name and isinstance(w.value, dict) and w.value.get("id")]
    if ran:  # this call created it (or found the one its key created)
        return OrderResult(order=ran[-1].value)
    # a repeat answered from the journal: the order as it is now
    return OrderResult(order=await gateway.workflow.read(Ref(name, ORDER, str(report.results[0]["id"]))))


@TOOLS.tool(
    "orders.update",
    title="Update an order",
    read_only=False,
    destructive=True,
    idempotent=False,  # a change that adds an item adds it again when repeated
    object_arg="order_id",
)
async def orders_update(
    gateway: Gateway,
    order_id: OrderId,
    changes: Annotated[
        dict[str, Any],
        Field(
            description="Only what changes. Addresses, checkout_data, order_metadata merge by key; "
            'null removes. order_items: with id updates, without adds, {"id":..,"_delete":true} '
            "removes. folder_id moves (runs folder rules)."
        ),
    ],
    call: ToolCall,
    dry_run: Annotated[bool, Field(description="Return the diff; write nothing.")] = False,
    store: StoreArg = None,
) -> UpdateResult:
    """Change an order safely (fields you don't name are kept; totals, dates, shipments are
    read-only); returns the diff and a summary with the changed fields. Cost: 2 requests (+1 to move). Errors:
    VALIDATION, NOT_FOUND, CONFLICT, OUTCOME_UNKNOWN (check the fields with orders_get)."""
    if not isinstance(changes, dict):
        raise ValidationFailed("changes must be an object")
    changes = validate.validate_order_changes(changes)
    r = _ref(gateway, store, order_id)
    changes = await resolve_changes(gateway, r.store, changes)  # every step checked before the first write
    result = (await gateway.route.run(UpdateWhole(gateway, r, changes), call, dry_run=dry_run)).only()
    return UpdateResult(
        order=_updated_view(result.value, result.changes),
        attempts=result.attempts,
        changed_fields=result.fields,
        dry_run=dry_run,
        changes=result.changes,
        reconciled=result.reconciled,
        message=_update_message(result),
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
    call: ToolCall,
    confirm: Annotated[bool, Field(description="true only after the user agreed.")] = False,
    store: StoreArg = None,
) -> DeleteResult:
    """Delete an order for good once the user confirms (a prompt, or ask and pass confirm=true).
    Cost: 2 requests. Errors: CONFIRMATION_REQUIRED (nothing deleted), NOT_FOUND, OUTCOME_UNKNOWN
    (orders_get: NOT_FOUND = deleted)."""
    r = _ref(gateway, store, order_id)
    if not (isinstance(answer, AcceptedElicitation) and answer.data.confirm):
        declined = not isinstance(answer, AcceptedElicitation)
        raise ConfirmationRequired(
            f"order {r.id} was not deleted: " + ("the user declined" if declined else "confirmation missing"),
            hint="Ask the user; if they agree, call again with confirm=true."
            if not declined
            else "The user said no; do not retry unless they ask again.",
        )
    (await gateway.route.run(DeleteWhole(gateway, r), call)).only()
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
    order_ids: Annotated[list[Annotated[str, IdText]], Field(min_length=1, max_length=MAX_TARGETS)],
    call: ToolCall,
    folder_id: Annotated[int | None, Field(ge=0, description="See store_get.")] = None,
    folder_name: Annotated[Text | None, Field(description="Or the exact name.")] = None,
    store: StoreArg = None,
) -> BulkReport:
    """Move orders to a folder; runs its rules (emails, fulfilment), so a repeat is not harmless; one
    already there is not sent. Reports each (OUTCOME_UNKNOWN: see folder_id in orders_get).
    Cost: 1 request per order + 1 per 100. Errors: VALIDATION (nothing moved)."""
    if (folder_id is None) == (folder_name is None):
        raise ValidationFailed("give exactly one of folder_id or folder_name")
    ids = list(dict.fromkeys(check_id(f"order_ids[{i}]", v) for i, v in enumerate(order_ids)))
    name = gateway.store(store).name
    target = await resolve_folder(gateway, name, folder_id=folder_id, folder_name=folder_name)
    chunks = [ids[i : i + MOVE_BATCH] for i in range(0, len(ids), MOVE_BATCH)]
    job = BulkJob(
        [MoveOrders(name, chunk, target) for chunk in chunks], store=name, label=f"move to folder {target}"
    )
    return await gateway.bulk.run(job, call, ctx.report_progress)


@TOOLS.tool(
    "orders.add_note",
    title="Add a history note",
    read_only=False,
    destructive=False,
    idempotent=False,
    object_arg="order_id",
)
async def orders_add_note(
    gateway: Gateway,
    order_id: OrderId,
    note: Annotated[str, Field(min_length=1, max_length=1800)],
    call: ToolCall,
    store: StoreArg = None,
) -> NoteResult:
    """Add a note to the order's history (append-only; OrderDesk keeps the newest 250; not
    order_notes); returns the note and the entry count. Cost: 3 requests. Errors: NOT_FOUND,
    VALIDATION, OUTCOME_UNKNOWN (count it with orders_get include_history=true)."""
    validate.validate_note(note)
    result = (await gateway.route.run(AddNote(_ref(gateway, store, order_id), note), call)).only()
    return NoteResult(message="History note added", **result.value, reconciled=result.reconciled)
