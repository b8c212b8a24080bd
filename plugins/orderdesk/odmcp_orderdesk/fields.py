"""The field names OrderDesk documents for each object, and the check that refuses a misspelt one.

OrderDesk silently ignores a field it doesn't know, so ``{"emial": "a@b.c"}`` would "succeed" and
change nothing. A key is accepted when OrderDesk documents it (API notes §6.1 orders, §6.6 items,
§6.7 shipments, §5.13 inventory items; the lists are the fields of the Structs in
:mod:`odmcp_orderdesk.models`) or when the fetched object already carries it (a field a newer API
version added). Anything else is a VALIDATION error naming the closest documented field and where
custom data belongs.
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
