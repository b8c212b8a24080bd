"""msgspec Structs that *validate* OrderDesk objects; they never transform them.

msgspec drops every field a Struct does not declare (there is no "keep unknown fields" option), so a
decode→encode through these Structs would silently lose data on a full-replacement PUT. The plain
dict stays the source of truth: :func:`validate` only checks it and reports the first problem with
its JSON path. Nothing returned from here should ever be encoded and sent upstream.

The Structs are deliberately lenient, because they must accept anything OrderDesk itself emits:

* every field is optional (the same Struct checks a create body, a change set and a fetched order);
* unknown fields are ignored (``forbid_unknown_fields`` stays off);
* string fields also accept ``null``;
* money/weight fields accept numbers *and* numeric strings (OrderDesk sends ``"price": "10"``,
  shipment ``"weight": "3.55"``/``"cost": ""``), but not ``"abc"``;
* integer fields (``quantity``, ``stock``, ``folder_id``) are converted with ``strict=False``, so
  ``"2"`` passes while ``"abc"`` and ``1.5`` fail;
* key/value maps accept ``{}`` and also PHP's empty ``[]``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

from odmcp.api import ValidationFailed

#: A numeric string as OrderDesk writes it (``"10"``, ``"1.70"``, ``"-2"``) or blank (``""``,
#: which OrderDesk reads as zero). ``nan``/``inf`` are refused: they are not JSON numbers.
NumericText = Annotated[str, msgspec.Meta(pattern=r"^(-?(\d+(\.\d*)?|\.\d+))?$")]
#: Any numeric value OrderDesk may send or accept for a decimal field.
Amount = int | float | NumericText
#: A key/value map; PHP serialises an empty one as ``[]``, so an *empty* list is accepted too.
KeyValueMap = dict[str, Any] | Annotated[list[Any], msgspec.Meta(max_length=0)]
#: Ids are normalised to strings, but a caller may still hold an int (inventory ids are ints upstream).
AnyId = str | int

_REGEX_HINT = "expected a number or a numeric string"
_MAP_HINT = "expected an object of key/value pairs, got a non-empty array"


class Address(msgspec.Struct, kw_only=True):
    """``shipping`` and ``customer`` (``customer`` has no address3/address4 upstream)."""

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    address4: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None


class ReturnAddress(msgspec.Struct, kw_only=True):
    title: str | None = None
    name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None


class OrderItem(msgspec.Struct, kw_only=True):
    id: AnyId | None = None
    name: str | None = None
    price: Amount | None = None
    quantity: int | None = None
    weight: Amount | None = None
    code: str | None = None
    delivery_type: str | None = None
    category_code: str | None = None
    fulfillment_method: str | None = None
    variation_list: KeyValueMap | None = None
    metadata: KeyValueMap | None = None


class Discount(msgspec.Struct, kw_only=True):
    name: str | None = None
    code: str | None = None
    amount: Amount | None = None


class OrderNote(msgspec.Struct, kw_only=True):
    """An editable note inside the order (not the append-only ``order_history``)."""

    date_added: str | None = None
    username: str | None = None
    content: str | None = None


class Shipment(msgspec.Struct, kw_only=True):
    id: AnyId | None = None
    order_id: AnyId | None = None
    store_id: AnyId | None = None
    tracking_number: str | None = None
    carrier_code: str | None = None
    shipment_method: str | None = None
    weight: Amount | None = None
    cost: Amount | None = None
    status: str | None = None
    tracking_url: str | None = None
    label_format: str | None = None
    label_image: str | None = None
    # "" in the 2018 docs; newer integrations send a list of {id|code, quantity} for partial shipments.
    order_items: str | list[dict[str, Any]] | None = None
    print_status: str | int | None = None
    cart_shipment_id: str | None = None
    label_shipment_id: str | None = None
    date_shipped: str | None = None
    date_added: str | None = None


class OrderHistoryEntry(msgspec.Struct, kw_only=True):
    source_name: str | None = None
    note: str | None = None
    date_added: str | None = None


class Order(msgspec.Struct, kw_only=True):
    id: AnyId | None = None
    email: str | None = None
    shipping_method: str | None = None
    quantity_total: Amount | None = None
    weight_total: Amount | None = None
    product_total: Amount | None = None
    shipping_total: Amount | None = None
    handling_total: Amount | None = None
    tax_total: Amount | None = None
    discount_total: Amount | None = None
    order_total: Amount | None = None
    cc_number_masked: str | None = None
    cc_exp: str | None = None
    processor_response: str | None = None
    payment_type: str | None = None
    payment_status: str | None = None
    processor_balance: Amount | None = None
    refund_total: Amount | None = None
    customer_id: AnyId | None = None
    email_count: AnyId | None = None
    ip_address: str | None = None
    tag_color: str | None = None
    source_name: str | None = None
    source_id: AnyId | None = None
    fulfillment_name: str | None = None
    fulfillment_id: AnyId | None = None
    tag_name: str | None = None
    folder_id: int | None = None
    date_added: str | None = None
    date_updated: str | None = None
    shipping: Address | None = None
    customer: Address | None = None
    return_address: ReturnAddress | None = None
    checkout_data: KeyValueMap | None = None
    order_metadata: KeyValueMap | None = None
    discount_list: list[Discount] | None = None
    order_notes: list[OrderNote] | None = None
    order_items: list[OrderItem] | None = None
    order_shipments: list[Shipment] | None = None
    order_history: list[OrderHistoryEntry] | None = None


class InventoryItem(msgspec.Struct, kw_only=True):
    id: AnyId | None = None
    name: str | None = None
    code: str | None = None
    price: Amount | None = None
    cost: Amount | None = None
    weight: Amount | None = None
    stock: int | None = None
    location: str | None = None
    update_source: str | None = None
    manufacturer_sku: str | None = None
    metadata: KeyValueMap | None = None
    variation_list: KeyValueMap | None = None
    date_added: str | None = None
    date_updated: str | None = None


S = TypeVar("S", bound=msgspec.Struct)

_AT_PATH = re.compile(r"^(?P<what>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_BACKTICKED = re.compile(r"`([^`]*)`")


def describe_error(error: msgspec.ValidationError, root: str = "$") -> tuple[str, str]:
    """Split msgspec's ``Expected `int`, got `str` - at `$.a[1].b``` into a path and a lower-case reason.

    The example gives ``("$.a[1].b", "expected int, got str")``.

    ``root`` replaces the leading ``$`` so a nested object validated on its own still reports its
    position in the whole document (e.g. ``root="$.order_items[2]"``).
    """
    text = str(error)
    match = _AT_PATH.match(text)
    what, path = (match["what"], match["path"]) if match else (text, "$")
    path = root + path[1:]
    if "matching regex" in what:
        what = _REGEX_HINT
    elif "array` of length <= 0" in what:
        what = _MAP_HINT
    else:
        # Every field here also accepts null; saying so in each message is noise.
        what = what.replace(" | null`", "`")
        what = _BACKTICKED.sub(r"\1", what)
        what = what[:1].lower() + what[1:]
    return path, what


def validate(obj: Any, struct: type[S], root: str = "$") -> S:
    """Check ``obj`` against ``struct``; raise :class:`ValidationFailed` naming the JSON path.

    The message reads ``"`$.order_items[1].quantity`: expected int | null, got str"`` and the error's
    ``details["field"]`` carries the bare path. The returned Struct is a typed *view* for reading; it
    lacks every unknown field, so never encode it for upload — send the original dict.
    """
    try:
        return msgspec.convert(obj, struct, strict=False)
    except msgspec.ValidationError as exc:
        path, what = describe_error(exc, root)
        raise ValidationFailed(f"`{path}`: {what}", field=path) from exc
