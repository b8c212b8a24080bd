"""OrderDesk's wire quirks, smoothed on the way in and restored on the way out. Pure functions, no I/O.

OrderDesk is PHP: an empty key/value map is serialised as ``[]``, ids are sometimes strings and
sometimes numbers, and so are amounts (``"price": "10"`` in one order, ``19`` in another; notes §1.3).
Readers get one shape for maps and ids (maps are dicts, order/item/shipment ids are strings,
``folder_id`` and inventory ``id`` are ints) and amounts exactly as OrderDesk sent them; writers send
what OrderDesk itself sends, with every amount of an order as a JSON number, so the same order never
goes out once with ``"10"`` and once with ``10``. :func:`same_amount` tells whether two amounts are
equal regardless of that spelling (used by the diff: ``10`` vs ``"10"`` is no change).

Every function returns a deep copy and changes only the fields named here. The dict is the source
of truth, so unknown fields — top-level or nested — always survive a read-modify-write round trip.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import msgspec

JSON = dict[str, Any]

ORDER_MAP_FIELDS = ("checkout_data", "order_metadata")
ITEM_MAP_FIELDS = ("variation_list", "metadata")
ORDER_ID_FIELDS = ("id", "source_id", "customer_id", "email_count")
SHIPMENT_ID_FIELDS = ("id", "order_id", "store_id")
# Lists that PUT /orders/{id} cannot change (shipments have their own endpoints, history is
# append-only); sending them back would at best be ignored.
ORDER_READ_ONLY_LISTS = ("order_shipments", "order_history")

#: Order fields holding amounts (notes §6.1); OrderDesk may send any of them as a numeric string.
ORDER_AMOUNT_FIELDS = frozenset(
    {
        "shipping_total", "handling_total", "tax_total", "processor_balance", "refund_total",
        "quantity_total", "weight_total", "product_total", "discount_total", "order_total",
    }
)  # fmt: skip
#: Order-item fields holding amounts (notes §6.6).
ITEM_AMOUNT_FIELDS = frozenset({"price", "quantity", "weight"})
_NUMERIC_TEXT = re.compile(r"^\s*-?(\d+(\.\d*)?|\.\d+)\s*$", re.ASCII)

# Store settings that are credentials. Current OrderDesk no longer returns them, older versions
# did; a tool result must never carry them either way.
_SECRET_KEY = re.compile(r"api_?key|passw(or)?d|secret|token|^smtp_", re.IGNORECASE)


# --- helpers -----------------------------------------------------------------------------------


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _copy(d: JSON) -> JSON:
    """A deep copy of JSON data; a msgspec round trip is ~4x faster than ``copy.deepcopy`` here."""
    out: JSON = _decode(_encode(d))
    return out


def _id_str(value: Any) -> Any:
    """``925086`` -> ``"925086"``; strings, ``None`` and anything odd pass through unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _id_int(value: Any) -> Any:
    """``"2510"`` -> ``2510``; blanks, ``None`` and non-numeric values pass through unchanged."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _amount(value: Any) -> Decimal | None:
    """The exact value of a JSON number or numeric string (``"10"``, ``"1.70"``); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMERIC_TEXT.match(value):
        return Decimal(value.strip())
    return None


def same_amount(a: Any, b: Any) -> bool:
    """``a == b``, or both are the same amount spelled differently (``10``, ``10.0``, ``"10"``, ``"10.00"``).

    Only for fields known to hold amounts: a postal code ``"02108"`` is not the number ``2108``.
    """
    if a == b:
        return True
    x, y = _amount(a), _amount(b)
    return x is not None and y is not None and x == y


def _number_out(value: Any) -> Any:
    """A numeric string as a JSON number (``"10"`` -> ``10``, ``"1.70"`` -> ``1.7``); all else unchanged."""
    if not isinstance(value, str):
        return value
    exact = _amount(value)
    if exact is None:
        return value
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def _amounts_out(d: JSON, fields: frozenset[str]) -> None:
    for f in fields:
        if f in d:
            d[f] = _number_out(d[f])


def _maps_in(d: JSON, fields: tuple[str, ...]) -> None:
    for f in fields:
        if d.get(f) == []:
            d[f] = {}


def _maps_out(d: JSON, fields: tuple[str, ...]) -> None:
    for f in fields:
        if d.get(f) == {}:
            d[f] = []


def _ids(d: JSON, fields: tuple[str, ...]) -> None:
    for f in fields:
        if f in d:
            d[f] = _id_str(d[f])


def _each_dict(value: Any) -> list[JSON]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


# --- reading -----------------------------------------------------------------------------------


def _order_item_in(item: JSON) -> None:
    _ids(item, ("id",))
    _maps_in(item, ITEM_MAP_FIELDS)


def _shipment_in(shipment: JSON) -> None:
    _ids(shipment, SHIPMENT_ID_FIELDS)


def normalize_order(d: JSON, *, copy: bool = True) -> JSON:
    """An order as read: ``[]`` maps -> ``{}``, ids -> str, ``folder_id`` -> int; all else untouched.

    ``copy=False`` normalises ``d`` in place: for data the caller owns (just decoded from a response).
    """
    out = _copy(d) if copy else d
    _ids(out, ORDER_ID_FIELDS)
    if "folder_id" in out:
        out["folder_id"] = _id_int(out["folder_id"])
    _maps_in(out, ORDER_MAP_FIELDS)
    for item in _each_dict(out.get("order_items")):
        _order_item_in(item)
    for shipment in _each_dict(out.get("order_shipments")):
        _shipment_in(shipment)
    return out


def normalize_order_item(d: JSON) -> JSON:
    out = _copy(d)
    _order_item_in(out)
    return out


def normalize_shipment(d: JSON) -> JSON:
    out = _copy(d)
    _shipment_in(out)
    return out


def normalize_inventory_item(d: JSON) -> JSON:
    """An inventory item as read: ``id`` -> int (OrderDesk's own type for it), ``[]`` maps -> ``{}``."""
    out = _copy(d)
    if "id" in out:
        out["id"] = _id_int(out["id"])
    _maps_in(out, ITEM_MAP_FIELDS)
    return out


def sanitize_store(d: JSON) -> JSON:
    """The store object with every credential-looking key removed, at any depth."""

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: scrub(v) for k, v in node.items() if not (isinstance(k, str) and _SECRET_KEY.search(k))
            }
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    out: JSON = scrub(d)
    if "id" in out:
        out["id"] = _id_str(out["id"])
    return out


# --- writing -----------------------------------------------------------------------------------


def to_wire_order(d: JSON, *, for_create: bool = False) -> JSON:
    """The body for ``PUT /orders/{id}`` (or ``POST /orders`` with ``for_create=True``).

    Empty maps go out as ``[]`` like OrderDesk sends them; amounts (:data:`ORDER_AMOUNT_FIELDS`,
    :data:`ITEM_AMOUNT_FIELDS`) go out as JSON numbers even when OrderDesk sent them as strings.
    ``order_history`` is always dropped; ``order_shipments`` is dropped for PUT (ignored there) but kept
    for a create, where it is the caller's explicit input.
    """
    out = _copy(d)
    for f in ORDER_READ_ONLY_LISTS:
        if f == "order_shipments" and for_create:
            continue
        out.pop(f, None)
    _maps_out(out, ORDER_MAP_FIELDS)
    _amounts_out(out, ORDER_AMOUNT_FIELDS)
    for item in _each_dict(out.get("order_items")):
        _maps_out(item, ITEM_MAP_FIELDS)
        _amounts_out(item, ITEM_AMOUNT_FIELDS)
    return out


def to_wire_order_item(d: JSON) -> JSON:
    out = _copy(d)
    _maps_out(out, ITEM_MAP_FIELDS)
    _amounts_out(out, ITEM_AMOUNT_FIELDS)
    return out


def to_wire_shipment(d: JSON) -> JSON:
    # Shipments carry no maps; the copy keeps the caller's dict safe from later mutation.
    return _copy(d)


def to_wire_inventory_item(d: JSON) -> JSON:
    out = _copy(d)
    _maps_out(out, ITEM_MAP_FIELDS)
    return out
