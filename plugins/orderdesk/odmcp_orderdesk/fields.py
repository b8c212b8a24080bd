"""The field names OrderDesk documents for each object, and the check that refuses a misspelt one.

OrderDesk silently ignores a field it doesn't know, so ``{"emial": "a@b.c"}`` would "succeed" and
change nothing. A key is accepted when OrderDesk documents it (API notes §6.1 orders, §6.6 items,
§6.7 shipments, §5.13 inventory items; the lists are the fields of the Structs in
:mod:`odmcp_orderdesk.models`) or when the fetched object already carries it (a field a newer API
version added). Anything else is a VALIDATION error naming the closest documented field and where
custom data belongs.

The same holds one level down (:func:`check_nested_keys`): the addresses (``shipping``, ``customer``,
``return_address``, §6.2/§6.3) and the entries of ``discount_list`` and ``order_notes`` (§6.4/§6.5)
take only their documented keys, refused as ``unknown field 'shipping.fist_name'; did you mean
'shipping.first_name'?``. The maps OrderDesk leaves open to any key stay open: ``checkout_data``,
``order_metadata`` and an item's ``metadata`` and ``variation_list`` (:data:`OPEN_MAPS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from odmcp.api import ValidationFailed, closest
from odmcp_orderdesk import models


def _names(struct: type[msgspec.Struct], *extra: str) -> frozenset[str]:
    return frozenset(f.name for f in msgspec.structs.fields(struct)) | frozenset(extra)


#: ``cc_number`` is write-only (OrderDesk answers with ``cc_number_masked``)
ORDER_FIELDS = _names(models.Order, "cc_number")
ITEM_FIELDS = _names(models.OrderItem)
SHIPMENT_FIELDS = _names(models.Shipment)
INVENTORY_FIELDS = _names(models.InventoryItem)

#: The documented keys of each address of an order (``customer`` has no ``address3``/``address4``).
ADDRESS_KEYS: dict[str, frozenset[str]] = {
    "shipping": _names(models.Address),
    "customer": _names(models.Address) - {"address3", "address4"},
    "return_address": _names(models.ReturnAddress),
}
#: The documented keys of each entry of an order's object lists (items are checked on their own).
ENTRY_KEYS: dict[str, frozenset[str]] = {
    "discount_list": _names(models.Discount),
    "order_notes": _names(models.OrderNote),
}
#: Maps whose keys are free: the places for custom data (never checked key by key).
OPEN_MAPS = frozenset({"checkout_data", "order_metadata", "metadata", "variation_list"})
#: Names people use for a documented address key.
_ADDRESS_ALIASES = {"zip": "postal_code", "zipcode": "postal_code", "zip_code": "postal_code"}

_CUSTOM_DATA = {
    "order": "custom data belongs in checkout_data (shown) or order_metadata (hidden)",
    "order item": "custom item data belongs in metadata (hidden) or variation_list (shown)",
    "inventory item": "custom data belongs in metadata",
    "shipment": "OrderDesk stores no custom fields on a shipment",
}


def check_keys(
    changes: Mapping[str, Any],
    what: str,
    documented: frozenset[str],
    current: Mapping[str, Any] | None = None,
    *,
    path: str = "$",
    allowed: Iterable[str] = (),
) -> None:
    """Refuse a key of ``changes`` that is neither documented for ``what`` nor present on ``current``.

    ``what`` is ``"order"``, ``"order item"``, ``"shipment"`` or ``"inventory item"``; ``allowed``
    adds control keys (such as ``_delete``); ``path`` prefixes the JSON path in the message.
    """
    known = documented | frozenset(allowed) | (frozenset(current) if isinstance(current, Mapping) else set())
    for key in changes:
        if key in known:
            continue
        where = f"{path}.{key}"
        guess = closest(key, documented)
        raise ValidationFailed(
            f"`{where}`: {what} has no field {key!r}"
            + (f"; did you mean {guess!r}?" if guess else "")
            + f" ({_CUSTOM_DATA[what]})",
            hint="Use a documented field name and call again; nothing was written.",
            field=where,
        )


def check_nested_keys(order: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> None:
    """Refuse an undocumented key inside an address or a ``discount_list``/``order_notes`` entry.

    ``order`` is a create body or a change set; ``current`` the fetched order, whose own keys at the
    same place are accepted (a field a newer API version added). Values of the wrong type are left to
    :func:`odmcp_orderdesk.models.validate`; the open maps (:data:`OPEN_MAPS`) are not looked into.
    """
    current = current if isinstance(current, Mapping) else {}
    for field, documented in ADDRESS_KEYS.items():
        value, there = order.get(field), current.get(field)
        if isinstance(value, Mapping):
            _check_nested(value, field, field, documented, there if isinstance(there, Mapping) else {})
    for field, documented in ENTRY_KEYS.items():
        entries, there = order.get(field), current.get(field)
        if not isinstance(entries, list):
            continue
        # a list is replaced wholesale: a key any fetched entry carries is one OrderDesk keeps
        seen = (
            {key for entry in there if isinstance(entry, Mapping) for key in entry}
            if isinstance(there, list)
            else set()
        )
        for index, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                _check_nested(entry, f"{field}[{index}]", f"a {field} entry", documented, seen)


def _check_nested(
    changes: Mapping[str, Any], path: str, what: str, documented: frozenset[str], current: Iterable[str]
) -> None:
    known = documented | frozenset(current)
    for key in changes:
        if key in known:
            continue
        if path in ADDRESS_KEYS and any(key in keys for keys in ADDRESS_KEYS.values()):
            guess = None  # not a typo: a key of another address (customer.address3)
        else:
            guess = _ADDRESS_ALIASES.get(key.lower()) if path in ADDRESS_KEYS else None
            guess = guess or closest(key, documented)
        raise ValidationFailed(
            f"unknown field '{path}.{key}'" + (f"; did you mean '{path}.{guess}'?" if guess else ""),
            hint=f"{what} takes only: {', '.join(sorted(documented))}; custom data belongs in "
            "checkout_data or order_metadata; nothing was written.",
            field=f"$.{path}.{key}",
        )


# GET /orders filters OrderDesk documents; anything else is refused before a request is made.
ORDER_FILTERS = frozenset(
    {
        "folder_id", "folder_name", "source_id", "source_name", "email", "customer_id",
        "search_start_date", "search_end_date", "search_start_date_local", "search_end_date_local",
        "modified_start_date", "modified_end_date", "order_by", "order", "limit", "offset",
        "get_order_history",
        *(f"{who}_{what}" for who in ("customer", "shipping") for what in
          ("first_name", "last_name", "company", "address1", "phone")),
    }
)  # fmt: skip
