"""Summaries and field selection: what an agent needs to choose its next call, and no more.

List tools return one summary per object by default (an order in full is ~2 KB, its summary ~200
bytes); ``fields`` asks for ``"full"`` objects or for chosen top-level fields, and gets take it too
(full by default). A list's summaries are built when the page is loaded and cached next to it
(:func:`with_summaries`), so a cached page costs no summary work; :func:`pick` only selects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from odmcp.api import ValidationFailed, closest
from odmcp_orderdesk.fields import INVENTORY_FIELDS, ORDER_FIELDS, SHIPMENT_FIELDS

#: the cached page's key for the summaries built with it
SUMMARIES = "_summaries"

#: ``summary``, ``full`` or top-level field names (the schema says so; the tool descriptions and
#: output schemas say what a summary holds)
Fields = Annotated[
    Literal["summary", "full"] | list[str],
    Field(description="Or top-level field names."),
]

#: what an order summary holds (order fields, plus folder_name, customer_name, item_count, tracked);
#: order fields such as folder_id or shipping_method are a ``fields`` away
ORDER_SUMMARY = (
    "id",
    "source_id",
    "date_added",
    "folder_name",
    "customer_name",
    "email",
    "item_count",
    "order_total",
    "tracked",
)
INVENTORY_SUMMARY = ("id", "code", "name", "price", "stock")
SHIPMENT_SUMMARY = ("id", "tracking_number", "carrier_code", "shipment_method", "status", "date_shipped")


def _name(address: Any) -> str:
    if not isinstance(address, Mapping):
        return ""
    person = " ".join(str(address.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    return person or str(address.get("company") or "").strip()


def order_summary(order: Mapping[str, Any], folders: Mapping[str, str]) -> dict[str, Any]:
    """``order`` as its summary; ``folders`` maps folder id (text) to name (empty: name unknown, and the
    summary then carries ``folder_id`` instead, so the folder is never lost)."""
    items = order.get("order_items")
    shipments = order.get("order_shipments")
    folder = folders.get(str(order.get("folder_id")))
    return {
        "id": order.get("id"),
        "source_id": order.get("source_id"),
        "date_added": order.get("date_added"),
        "folder_name": folder,
        **({} if folder is not None else {"folder_id": order.get("folder_id")}),
        "customer_name": _name(order.get("customer")) or _name(order.get("shipping")) or None,
        "email": order.get("email"),
        "item_count": len(items) if isinstance(items, list) else 0,
        "order_total": order.get("order_total"),
        "tracked": isinstance(shipments, list)
        and any(isinstance(s, Mapping) and s.get("tracking_number") for s in shipments),
    }


def inventory_summary(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in INVENTORY_SUMMARY}


def shipment_summary(shipment: Mapping[str, Any]) -> dict[str, Any]:
    return {k: shipment.get(k) for k in SHIPMENT_SUMMARY}


def check_fields(fields: Any, what: str, documented: Iterable[str], summary: Iterable[str]) -> None:
    """Refuse (VALIDATION, before any request) a field name neither ``what`` nor its summary has."""
    if isinstance(fields, str):
        return
    if not fields:
        raise ValidationFailed(
            "argument 'fields' is an empty list",
            hint="Name at least one field, or pass 'summary' or 'full'.",
            field="fields",
        )
    known = set(documented) | set(summary)
    if len(fields) > len(known):
        raise ValidationFailed(f"argument 'fields' lists {len(fields)} names", hint="Name each field once.")
    for name in fields:
        if name not in known:
            guess = closest(name, known)
            raise ValidationFailed(
                f"argument 'fields': {what} has no field {name!r}"
                + (f"; did you mean {guess!r}?" if guess else ""),
                hint=f"Use summary fields ({', '.join(summary)}) or fields of the full {what}.",
                field="fields",
            )


def check_order_fields(fields: Any) -> None:
    if isinstance(fields, list) and "order_history" in fields:
        raise ValidationFailed(
            "argument 'fields': order_history is not selected by fields",
            hint="Pass include_history=true (it adds order_history whatever fields selects).",
            field="fields",
        )
    check_fields(fields, "order", ORDER_FIELDS, ORDER_SUMMARY)


def check_inventory_fields(fields: Any) -> None:
    check_fields(fields, "inventory item", INVENTORY_FIELDS, INVENTORY_SUMMARY)


def check_shipment_fields(fields: Any) -> None:
    check_fields(fields, "shipment", SHIPMENT_FIELDS, SHIPMENT_SUMMARY)


def pick(obj: Mapping[str, Any], summary: Mapping[str, Any], fields: Any) -> dict[str, Any]:
    """What ``fields`` asks for of one object: its summary, all of it, or the named fields (taken
    from the object, else from its summary; a field the object lacks is left out)."""
    if fields == "summary":
        return dict(summary)
    if fields == "full":
        return dict(obj)
    out = {}
    for name in fields:
        if name in obj:
            out[name] = obj[name]
        elif name in summary:
            out[name] = summary[name]
    return out


def with_summaries(page: dict[str, Any], key: str, summarize: Any) -> dict[str, Any]:
    """``page`` (as loaded) with the summary of each of ``page[key]`` under :data:`SUMMARIES`."""
    page[SUMMARIES] = [summarize(obj) for obj in page[key]]
    return page


def summaries_of(page: Mapping[str, Any], key: str, summarize: Any) -> list[dict[str, Any]]:
    """The summaries cached with ``page`` (built now for a page cached without them)."""
    cached = page.get(SUMMARIES)
    if isinstance(cached, list) and len(cached) == len(page[key]):
        return cached
    return [summarize(obj) for obj in page[key]]
