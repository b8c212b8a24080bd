"""Checks that run before any write to OrderDesk; every error names the offending field's JSON path.

Nothing here transforms the payload that is sent: the checks read the dict (types through the
lenient Structs in :mod:`odmcp_orderdesk.models`, semantics by hand) and either return it or raise
:class:`ValidationFailed` with ``details["field"]`` set to the path. The only exception is
:func:`validate_order_changes`, which returns a copy whose item ids are canonical strings so the
merge can match them against the (normalised) order.

Limits (OrderDesk API notes §5.5/§6.5, MED confidence): ``checkout_data`` ≤ 3,500 and
``order_metadata`` ≤ 2,000 characters as JSON; a note ≤ 2,000 characters *including* the date and
username OrderDesk prepends, so note content is capped at 1,800.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from odmcp.api import ValidationFailed
from odmcp_orderdesk import models
from odmcp_orderdesk.fields import (
    INVENTORY_FIELDS,
    ITEM_FIELDS,
    ORDER_FIELDS,
    SHIPMENT_FIELDS,
    check_keys,
    check_nested_keys,
)
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.merge import ADDRESS_FIELDS, DELETE_MARKER, ITEM_MAP_FIELDS, MAP_FIELDS

CHECKOUT_DATA_MAX_CHARS = 3500
ORDER_METADATA_MAX_CHARS = 2000
NOTE_MAX_CHARS = 1800

#: Map fields with a size limit upstream.
SIZE_LIMITS: dict[str, int] = {
    "checkout_data": CHECKOUT_DATA_MAX_CHARS,
    "order_metadata": ORDER_METADATA_MAX_CHARS,
}

_TOTALS_HINT = (
    "totals are computed by OrderDesk from order_items, shipping_total, handling_total, tax_total and "
    "discount_list; change those instead"
)
#: Order fields a change set may not touch, with what to do instead.
READ_ONLY_ORDER_FIELDS: dict[str, str] = {
    "id": "the order id identifies the order and cannot be changed",
    "quantity_total": _TOTALS_HINT,
    "weight_total": _TOTALS_HINT,
    "product_total": _TOTALS_HINT,
    "discount_total": _TOTALS_HINT,
    "order_total": _TOTALS_HINT,
    "email_count": "OrderDesk counts the orders per email address itself",
    "date_added": "OrderDesk sets the order date",
    "date_updated": "OrderDesk sets it on every update",
    "order_shipments": "shipments cannot be changed through an order update; use the shipment tools",
    "order_history": "history is append-only; add an entry with orders.add_note",
}

READ_ONLY_INVENTORY_FIELDS = ("id", "date_added", "date_updated")


def _fail(path: str, what: str) -> ValidationFailed:
    return ValidationFailed(f"`{path}`: {what}", field=path)


def _check_id(path: str, value: Any) -> str:
    """:func:`check_id` with this module's ``"`path`: reason"`` message shape and ``field`` detail."""
    try:
        return check_id(path, value)
    except ValidationFailed as exc:
        raise _fail(path, exc.message.removeprefix(f"{path} ")) from exc


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require_object(value: Any, path: str, what: str = "an object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"expected {what}, got {_type_name(value)}")
    return value


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_number(value: Any) -> float | None:
    """A value the models accepted as an amount (number, numeric string, blank) as a float."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if str(value).strip() else 0.0
    except ValueError:
        return None


def json_size(value: Any) -> int:
    """Characters ``value`` takes as compact JSON the way PHP's ``json_encode`` writes it.

    PHP escapes non-ASCII as ``\\uXXXX`` and ``/`` as ``\\/`` by default; counting the same way keeps
    the check on the safe side of OrderDesk's limit.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str)
    return len(text) + text.count("/")


def check_size(field: str, value: Any, limit_chars: int) -> None:
    """Refuse a payload part larger than ``limit_chars``.

    A string is measured by its length (note content); anything else by :func:`json_size`.
    """
    size = len(value) if isinstance(value, str) else json_size(value)
    if size > limit_chars:
        unit = "characters" if isinstance(value, str) else "characters as JSON"
        raise _fail(field, f"is {size} {unit}; OrderDesk allows at most {limit_chars}, so shorten it")


def _check_sizes(order: Mapping[str, Any]) -> None:
    for field, limit in SIZE_LIMITS.items():
        if order.get(field) is not None:
            check_size(f"$.{field}", order[field], limit)
    notes = order.get("order_notes")
    if isinstance(notes, list):
        for index, note in enumerate(notes):
            if isinstance(note, Mapping) and isinstance(note.get("content"), str):
                check_size(f"$.order_notes[{index}].content", note["content"], NOTE_MAX_CHARS)


def _check_folder_id(value: Any) -> None:
    # The model converts "64" to 64 while validating, but the dict is what gets sent, so insist on int.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("$.folder_id", f"expected an integer folder id, got {_type_name(value)}")


def _check_item_values(item: Mapping[str, Any], path: str) -> None:
    """Quantity and price rules shared by new items and item changes (types already checked)."""
    if "quantity" in item and item["quantity"] is not None:
        quantity = item["quantity"]
        number = _as_number(quantity)
        if number is None or not number.is_integer() or number < 1:
            raise _fail(
                f"{path}.quantity",
                f"must be a whole number of at least 1, got {quantity!r}; "
                f'to remove an item send {{"id": ..., "{DELETE_MARKER}": true}}',
            )
    if "price" in item and item["price"] is not None:
        price = _as_number(item["price"])
        if price is None or not math.isfinite(price) or price < 0:
            raise _fail(f"{path}.price", f"must be a number of at least 0, got {item['price']!r}")


def _check_new_item(item: Any, path: str) -> None:
    item = _require_object(item, path)
    if _is_blank(item.get("name")) and _is_blank(item.get("code")):
        raise _fail(path, "a new item needs a name or a code (SKU)")
    _check_item_values(item, path)


def validate_order_item(item: Any, *, creating: bool) -> dict[str, Any]:
    """Check one order item for ``order_items.add`` (``creating``) or a merged item for an update."""
    record = _require_object(item, "$.item", "the item as an object")
    models.validate(record, models.OrderItem, root="$.item")
    if creating:
        check_keys(record, "order item", ITEM_FIELDS, path="$.item")
        _check_new_item(record, "$.item")
    else:
        _check_item_values(record, "$.item")
    return record


def _has_name_or_company(address: Any) -> bool:
    if not isinstance(address, Mapping):
        return False
    named = not _is_blank(address.get("first_name")) and not _is_blank(address.get("last_name"))
    return named or not _is_blank(address.get("company"))


def validate_new_order(body: Any) -> dict[str, Any]:
    """Check a ``POST /orders`` body and return it unchanged.

    Needs ≥ 1 item (each with a name or code; quantity a whole number ≥ 1 and price ≥ 0 when given)
    and a first+last name or a company in ``shipping`` or ``customer``. Read-only fields (totals,
    dates) are not required: OrderDesk computes them. Only documented keys, at the top, in the items,
    the addresses and the ``discount_list``/``order_notes`` entries (:mod:`odmcp_orderdesk.fields`).
    """
    order = _require_object(body, "$", "the order as an object")
    check_keys(order, "order", ORDER_FIELDS)
    check_nested_keys(order)
    models.validate(order, models.Order)
    items = order.get("order_items")
    if not isinstance(items, list) or not items:
        raise _fail("$.order_items", "a new order needs at least one item")
    for index, item in enumerate(items):
        _check_new_item(item, f"$.order_items[{index}]")
        check_keys(item, "order item", ITEM_FIELDS, path=f"$.order_items[{index}]")
    if not (_has_name_or_company(order.get("shipping")) or _has_name_or_company(order.get("customer"))):
        raise _fail(
            "$.shipping",
            "a new order needs a first and last name or a company in shipping or customer",
        )
    if order.get("folder_id") is not None:
        _check_folder_id(order["folder_id"])
    _check_sizes(order)
    return order


def validate_order_changes(changes: Any) -> dict[str, Any]:
    """Check a change set for :func:`odmcp_orderdesk.merge.merge_order`.

    Refuses read-only fields (naming what to do instead), non-object addresses/maps, a non-list
    ``order_items``, malformed or duplicate item ids and a null ``folder_id``. Returns a shallow copy
    whose ``order_items`` entries carry canonical string ids.
    """
    changes = _require_object(changes, "$", "the changes as an object")
    if not changes:
        raise _fail("$", "no changes given; name at least one field to change")
    for field, instead in READ_ONLY_ORDER_FIELDS.items():
        if field in changes:
            raise _fail(f"$.{field}", f"is read-only: {instead}")
    for field in sorted(ADDRESS_FIELDS | MAP_FIELDS):
        value = changes.get(field)
        if value is not None and not isinstance(value, dict):
            raise _fail(f"$.{field}", f"expected an object (or null to remove it), got {_type_name(value)}")
    if "folder_id" in changes:
        _check_folder_id(changes["folder_id"])
    result = dict(changes)
    if "order_items" in changes:
        result["order_items"] = _check_item_changes(changes["order_items"])
    models.validate(result, models.Order)
    _check_sizes(result)
    return result


def _check_item_changes(entries: Any) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise _fail(
            "$.order_items",
            f"expected a list of item changes, got {_type_name(entries)}; "
            f'to remove an item send {{"id": ..., "{DELETE_MARKER}": true}}',
        )
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        path = f"$.order_items[{index}]"
        item = dict(_require_object(entry, path))
        marker = item.get(DELETE_MARKER)
        if marker is not None and not isinstance(marker, bool):
            raise _fail(f"{path}.{DELETE_MARKER}", f"expected true or false, got {_type_name(marker)}")
        if item.get("id") is None:
            if marker:
                raise _fail(f"{path}.id", "removing an item needs its id")
            _check_new_item(item, path)
        else:
            item["id"] = _check_id(f"{path}.id", item["id"])
            if item["id"] in seen:
                raise _fail(f"{path}.id", f"item {item['id']} is named twice; combine the changes")
            seen.add(item["id"])
            _check_item_values(item, path)
        for field in sorted(ITEM_MAP_FIELDS):
            value = item.get(field)
            if value is not None and not isinstance(value, dict):
                raise _fail(
                    f"{path}.{field}", f"expected an object (or null to remove it), got {_type_name(value)}"
                )
        checked.append(item)
    return checked


def validate_full_order(order: Any) -> None:
    """Re-check the merged order right before the full-replacement PUT (types, item count, sizes)."""
    order = _require_object(order, "$", "the order as an object")
    models.validate(order, models.Order)
    items = order.get("order_items")
    if not isinstance(items, list) or not items:
        raise _fail(
            "$.order_items",
            "the order would have no items left; keep at least one item (or delete the order instead)",
        )
    if order.get("folder_id") is not None:
        _check_folder_id(order["folder_id"])
    _check_sizes(order)


def validate_note(note: Any) -> str:
    """A history note or order-note text: a non-empty string of at most 1,800 characters."""
    if not isinstance(note, str):
        raise _fail("$.note", f"expected a string, got {_type_name(note)}")
    if not note.strip():
        raise _fail("$.note", "must not be empty")
    check_size("$.note", note, NOTE_MAX_CHARS)
    return note


def validate_inventory_changes(changes: Any) -> dict[str, Any]:
    """Check an inventory change set: no read-only fields (id, dates), then the item rules."""
    record = _require_object(changes, "$", "changes as an object")
    for field in READ_ONLY_INVENTORY_FIELDS:
        if field in record:
            raise _fail(f"$.{field}", "is read-only: OrderDesk sets it")
    return validate_inventory_item(record, creating=False)


def validate_inventory_item(item: Any, *, creating: bool) -> dict[str, Any]:
    """Check an inventory item body (create) or a change set / merged record (update).

    Creating needs a ``name`` and a ``code``, documented fields only, and no read-only fields. On
    update a given ``name``/``code`` must not be blank or null (the PUT is a full replacement and both
    are required upstream); ``id``, when present, must be a valid id. ``price``/``cost`` must be ≥ 0
    when given.
    """
    record = _require_object(item, "$", "the inventory item as an object")
    models.validate(record, models.InventoryItem)
    if creating:
        check_keys(record, "inventory item", INVENTORY_FIELDS)
        for field in READ_ONLY_INVENTORY_FIELDS:
            if field in record:
                raise _fail(f"$.{field}", "is read-only: OrderDesk sets it")
    for field in ("name", "code"):
        if (creating or field in record) and _is_blank(record.get(field)):
            raise _fail(f"$.{field}", "is required and must not be blank")
    if not creating and record.get("id") is not None:
        _check_id("$.id", record["id"])
    for field in ("price", "cost"):
        if record.get(field) is not None:
            amount = _as_number(record[field])
            if amount is None or not math.isfinite(amount) or amount < 0:
                raise _fail(f"$.{field}", f"must be a number of at least 0, got {record[field]!r}")
    for field in sorted(ITEM_MAP_FIELDS):
        value = record.get(field)
        if value is not None and not isinstance(value, dict):
            raise _fail(f"$.{field}", f"expected an object (or null to remove it), got {_type_name(value)}")
    return record


def validate_shipment(shipment: Any, *, creating: bool = True) -> dict[str, Any]:
    """Check a shipment body; creating needs a ``tracking_number`` (OrderDesk suggests ``"n/a"``) and
    documented fields only (an update's merged shipment may carry what OrderDesk sent)."""
    record = _require_object(shipment, "$", "the shipment as an object")
    if creating:
        check_keys(record, "shipment", SHIPMENT_FIELDS)
    models.validate(record, models.Shipment)
    if (creating or "tracking_number" in record) and _is_blank(record.get("tracking_number")):
        raise _fail("$.tracking_number", 'is required; use "n/a" when there is no tracking number')
    for field in ("weight", "cost"):
        if record.get(field) is not None:
            amount = _as_number(record[field])
            if amount is None or amount < 0:
                raise _fail(f"$.{field}", f"must be a number of at least 0, got {record[field]!r}")
    return record
