"""Field-level rules of the OrderDesk data model: coercion, blanking, PHP-style empty maps, totals, dates.

OrderDesk is a PHP app and its JSON shows it: ids are strings, empty maps are ``[]``, numbers come back
as ints when integral, timestamps are ``"YYYY-MM-DD HH:MM:SS"`` UTC (notes §1.3). Normalising every
write through these helpers means the stored dicts are already in wire shape and can be encoded as-is.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import msgspec

from . import assumptions as A
from .errors import ApiError

TS_FORMAT = "%Y-%m-%d %H:%M:%S"

SHIPPING_FIELDS = (
    "first_name", "last_name", "company", "address1", "address2", "address3", "address4",
    "city", "state", "postal_code", "country", "phone",
)  # fmt: skip
#: notes §6.2: ``address3``/``address4`` are not available on ``customer``.
CUSTOMER_FIELDS = tuple(f for f in SHIPPING_FIELDS if f not in ("address3", "address4"))
RETURN_FIELDS = (
    "title", "name", "company", "address1", "address2", "city", "state", "postal_code", "country", "phone",
)  # fmt: skip

#: Writable top-level string fields of an order (notes §6.1), blanked to "" when omitted on PUT.
ORDER_STR_FIELDS = (
    "email", "shipping_method", "cc_exp", "processor_response", "payment_type", "payment_status",
    "customer_id", "ip_address", "tag_color", "source_name", "source_id", "fulfillment_name",
    "fulfillment_id", "tag_name",
)  # fmt: skip
#: Writable top-level numeric fields, blanked to 0 when omitted on PUT.
ORDER_NUM_FIELDS = ("shipping_total", "handling_total", "tax_total", "processor_balance", "refund_total")

CHECKOUT_DATA_MAX = 3500
ORDER_METADATA_MAX = 2000


# --- time ---------------------------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None)


def fmt_ts(dt: datetime) -> str:
    return dt.strftime(TS_FORMAT)


def parse_ts(text: str) -> datetime:
    """Parse a stored ``YYYY-MM-DD HH:MM:SS`` timestamp (naive UTC)."""
    return datetime.strptime(text, TS_FORMAT)


def stamp() -> str:
    """The ``date_updated`` of a write: the wall-clock second, as OrderDesk stamps it (notes §1.3).

    One-second resolution means two writes in the same second carry the same value, so a client
    can't rely on ``date_updated`` alone to notice a change (compare content instead).
    """
    return fmt_ts(utcnow())


def parse_query_date(field: str, value: str, local_tz: tzinfo | None = None) -> datetime:
    """Accept ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS`` and ISO-8601 with ``T``/``Z``/offset (notes §5.3).

    Returns naive UTC. A bare date means midnight, as PHP's ``strtotime`` reads it. A value without an
    offset is UTC, or local time in ``local_tz`` (the ``*_local`` filters: the store's time zone).
    """
    text = value.strip()
    try:
        if len(text) == 10:
            dt = datetime.strptime(text, "%Y-%m-%d")
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_BAD_DATE.format(field=field)) from exc
    if dt.tzinfo is None and local_tz is not None:
        dt = dt.replace(tzinfo=local_tz)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.replace(microsecond=0)


# --- scalars ------------------------------------------------------------------------------------------


def number(value: Any, field: str) -> float:
    """Coerce a JSON number or numeric string (``"10"``, ``"1.70"``) to float; blank means 0."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise ApiError(A.STATUS_VALIDATION, A.MSG_BAD_NUMBER.format(field=field))
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ApiError(A.STATUS_VALIDATION, A.MSG_BAD_NUMBER.format(field=field))


def tidy(value: float, places: int = 2) -> int | float:
    """Round, and emit integral values as ints (``19`` not ``19.0``), like the docs' examples."""
    rounded = round(value, places)
    return int(rounded) if rounded == int(rounded) else rounded


def text(value: Any) -> str:
    """Coerce a scalar to the string OrderDesk would store; ``None`` becomes ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def integer(value: Any, field: str, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(number(value, field))


# --- structures ---------------------------------------------------------------------------------------


def php_map(value: Any, field: str) -> dict[str, Any] | list[Any]:
    """A key->value map that serialises as ``[]`` when empty (notes §1.3); accepts ``{}`` or ``[]``."""
    if value is None or value == "" or value == [] or value == {}:
        return []
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    raise ApiError(A.STATUS_VALIDATION, f"{field} must be an object")


def address(value: Any, fields: tuple[str, ...], field: str) -> dict[str, str]:
    """An address with exactly ``fields``; unknown keys dropped, missing keys blank."""
    if value is None or value == [] or value == "":
        value = {}
    if not isinstance(value, dict):
        raise ApiError(A.STATUS_VALIDATION, f"{field} must be an object")
    return {f: text(value.get(f)) for f in fields}


def has_name(addr: dict[str, str]) -> bool:
    """notes §5.5: a valid order needs a first+last name or a company."""
    return bool((addr.get("first_name") and addr.get("last_name")) or addr.get("company"))


def is_blank_address(value: Any) -> bool:
    return not isinstance(value, dict) or not any(text(v).strip() for v in value.values())


def order_item(value: Any, item_id: str) -> dict[str, Any]:
    """One order item in wire shape (notes §6.6); ``item_id`` is assigned by the caller."""
    if not isinstance(value, dict):
        raise ApiError(A.STATUS_VALIDATION, "order_items entries must be objects")
    return {
        "id": item_id,
        "name": text(value.get("name")),
        "price": tidy(number(value.get("price"), "price")),
        "quantity": integer(value.get("quantity"), "quantity", default=1),
        "weight": tidy(number(value.get("weight"), "weight"), 4),
        "code": text(value.get("code")),
        "delivery_type": text(value.get("delivery_type")) or "ship",
        "category_code": text(value.get("category_code")),
        "fulfillment_method": text(value.get("fulfillment_method")),
        "variation_list": php_map(value.get("variation_list"), "variation_list"),
        "metadata": php_map(value.get("metadata"), "metadata"),
    }


def discount_list(value: Any) -> list[dict[str, str]]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ApiError(A.STATUS_VALIDATION, "discount_list must be an array")
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ApiError(A.STATUS_VALIDATION, "discount_list entries must be objects")
        amount = abs(number(entry.get("amount"), "amount"))
        out.append(
            {"name": text(entry.get("name")), "code": text(entry.get("code")), "amount": f"{amount:.2f}"}
        )
    return out


def order_notes(value: Any) -> list[dict[str, str]]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ApiError(A.STATUS_VALIDATION, "order_notes must be an array")
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ApiError(A.STATUS_VALIDATION, "order_notes entries must be objects")
        out.append(
            {
                "date_added": text(entry.get("date_added")) or fmt_ts(utcnow()),
                "username": text(entry.get("username")),
                "content": text(entry.get("content")),
            }
        )
    return out


_ENCODER = msgspec.json.Encoder()


def encoded_len(value: Any) -> int:
    return len(_ENCODER.encode(value))


def order_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The writable top-level fields of ``body``, omitted ones blanked (the PUT rule, notes §5.6).

    ``order_items`` / ``order_shipments`` / ids / totals / dates / folder are handled by the caller.
    """
    out: dict[str, Any] = {f: text(body.get(f)) for f in ORDER_STR_FIELDS}
    for f in ORDER_NUM_FIELDS:
        out[f] = tidy(number(body.get(f), f))
    cc_number = text(body.get("cc_number"))
    out["cc_number_masked"] = "x" * 12 + cc_number[-4:] if cc_number else text(body.get("cc_number_masked"))
    out["shipping"] = address(body.get("shipping"), SHIPPING_FIELDS, "shipping")
    out["customer"] = address(body.get("customer"), CUSTOMER_FIELDS, "customer")
    out["return_address"] = address(body.get("return_address"), RETURN_FIELDS, "return_address")
    out["checkout_data"] = php_map(body.get("checkout_data"), "checkout_data")
    out["order_metadata"] = php_map(body.get("order_metadata"), "order_metadata")
    if encoded_len(out["checkout_data"]) > CHECKOUT_DATA_MAX:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_CHECKOUT_DATA_TOO_LONG)
    if encoded_len(out["order_metadata"]) > ORDER_METADATA_MAX:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_METADATA_TOO_LONG)
    out["discount_list"] = discount_list(body.get("discount_list"))
    out["order_notes"] = order_notes(body.get("order_notes"))
    return out


def compute_totals(order: dict[str, Any]) -> None:
    """Recompute the read-only totals in place (notes §10): never trust a client's values."""
    items = order["order_items"]
    pairs = [(i, integer(i["quantity"], "quantity")) for i in items]  # "2" or 2 (notes §1.3)
    product = sum(number(i["price"], "price") * q for i, q in pairs)
    discount = sum(float(d["amount"]) for d in order["discount_list"])
    order["quantity_total"] = sum(q for _, q in pairs)
    order["weight_total"] = tidy(sum(float(i["weight"]) * q for i, q in pairs), 4)
    order["product_total"] = tidy(product)
    order["discount_total"] = tidy(discount)
    order["order_total"] = tidy(
        product
        + float(order["shipping_total"])
        + float(order["handling_total"])
        + float(order["tax_total"])
        - discount
    )


def item_numbers(order: dict[str, Any], as_strings: bool) -> None:
    """Store the items' ``price`` and ``quantity`` as JSON strings (``"10"``, ``"2"``) or numbers.

    Real orders mix both (notes §1.3: ``"price": "10"`` in one documented order, ``19`` in another);
    the sandbox keeps one form per order (see ``SandboxConfig.string_numbers``). In place.
    """
    for item in order["order_items"]:
        price = tidy(number(item["price"], "price"))
        quantity = integer(item["quantity"], "quantity", default=1)
        item["price"], item["quantity"] = (text(price), str(quantity)) if as_strings else (price, quantity)


#: The key order of an order object in the docs' examples (notes §5.4), used to lay out new orders.
ORDER_KEY_ORDER = (
    "id", "email", "shipping_method", "quantity_total", "weight_total", "product_total",
    "shipping_total", "handling_total", "tax_total", "discount_total", "order_total",
    "cc_number_masked", "cc_exp", "processor_response", "payment_type", "payment_status",
    "processor_balance", "refund_total", "customer_id", "email_count", "ip_address", "tag_color",
    "source_name", "source_id", "fulfillment_name", "fulfillment_id", "tag_name", "folder_id",
    "date_added", "date_updated", "shipping", "customer", "return_address", "checkout_data",
    "order_metadata", "discount_list", "order_notes", "order_items", "order_shipments",
)  # fmt: skip


def layout(order: dict[str, Any]) -> dict[str, Any]:
    """Return ``order`` with its keys in documented order (cosmetic, but eases diffing captures)."""
    return {k: order[k] for k in ORDER_KEY_ORDER if k in order}
