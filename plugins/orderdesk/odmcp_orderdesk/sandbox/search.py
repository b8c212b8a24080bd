"""``GET /orders`` filtering, sorting and paging (notes §5.3).

Filters AND together. Address/name filters match case-insensitively as substrings (the docs only say
"search those fields"); ids, source and email match exactly (email ignoring case). Dates are compared
against the stored UTC timestamps, inclusive at both ends; ``search_*_date_local`` values are read in the
store's time zone (``settings.timezone``) and converted to UTC first (notes §5.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from . import assumptions as A
from . import model as M
from .errors import ApiError
from .state import Order, StoreState

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

ADDRESS_FILTERS = {
    f"{kind}_{f}": (kind, f)
    for kind in ("customer", "shipping")
    for f in ("first_name", "last_name", "company", "address1", "phone")
}
EXACT_FILTERS = ("source_id", "source_name", "customer_id")
#: filter -> (order field, is the start bound, value is in the store's local time zone)
DATE_FILTERS = {
    "search_start_date": ("date_added", True, False),
    "search_end_date": ("date_added", False, False),
    "search_start_date_local": ("date_added", True, True),
    "search_end_date_local": ("date_added", False, True),
    "modified_start_date": ("date_updated", True, False),
    "modified_end_date": ("date_updated", False, False),
}
NUMERIC_SORT = {"id", "folder_id", "email_count", "source_id", "customer_id", *M.ORDER_NUM_FIELDS}
NUMERIC_SORT |= {"quantity_total", "weight_total", "product_total", "discount_total", "order_total"}
#: The docs' examples sort by ``date_modified``, which is not an order field.
SORT_ALIASES = {"date_modified": "date_updated", "modified": "date_updated"}


def _int(query: dict[str, str], key: str, default: int) -> int:
    raw = query.get(key, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_BAD_NUMBER.format(field=key)) from exc


def paging(query: dict[str, str], default_limit: int, max_limit: int) -> tuple[int, int]:
    """Validated ``(limit, offset)``; ``limit`` over the max is an error (assumption, notes §5.3)."""
    limit = _int(query, "limit", default_limit)
    offset = _int(query, "offset", 0)
    if limit > max_limit:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_LIMIT_TOO_HIGH)
    if limit < 1 or offset < 0:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_BAD_NUMBER.format(field="limit" if limit < 1 else "offset"))
    return limit, offset


def _predicates(store: StoreState, query: dict[str, str]) -> list[Callable[[Order], bool]]:
    preds: list[Callable[[Order], bool]] = []
    if query.get("folder_id"):
        try:
            folders = {int(f) for f in query["folder_id"].split(",") if f.strip()}
        except ValueError as exc:
            raise ApiError(A.STATUS_VALIDATION, A.MSG_BAD_NUMBER.format(field="folder_id")) from exc
        preds.append(lambda o: o["folder_id"] in folders)
    if query.get("folder_name"):
        named = {fid for fid, name in store.folders.items() if name == query["folder_name"]}
        preds.append(lambda o: o["folder_id"] in named)
    for key in EXACT_FILTERS:
        if query.get(key):
            preds.append(lambda o, k=key, v=query[key]: o[k] == v)  # type: ignore[misc]
    if query.get("email"):
        email = query["email"].lower()
        preds.append(lambda o: o["email"].lower() == email)
    for key, (kind, field) in ADDRESS_FILTERS.items():
        if query.get(key):
            needle = query[key].lower()
            preds.append(lambda o, k=kind, f=field, n=needle: n in o[k].get(f, "").lower())  # type: ignore[misc]
    for key, (field, is_start, local) in DATE_FILTERS.items():
        if query.get(key):
            bound = M.fmt_ts(M.parse_query_date(key, query[key], ZoneInfo(store.timezone) if local else None))
            if is_start:
                preds.append(lambda o, f=field, b=bound: o[f] >= b)  # type: ignore[misc]
            else:
                preds.append(lambda o, f=field, b=bound: o[f] <= b)  # type: ignore[misc]
    return preds


def _sort_key(field: str) -> Callable[[Order], Any]:
    if "_" in field and field.split("_", 1)[0] in ("shipping", "customer") and field not in M.ORDER_KEY_ORDER:
        kind, sub = field.split("_", 1)
        return lambda o: (o[kind].get(sub, "").lower(), int(o["id"]))
    if field in NUMERIC_SORT:

        def numeric(o: Order) -> Any:
            try:
                return (float(o.get(field) or 0), int(o["id"]))
            except ValueError:
                return (0.0, int(o["id"]))

        return numeric
    if field not in M.ORDER_KEY_ORDER:
        field = "date_added"
    return lambda o: (str(o.get(field, "")), int(o["id"]))


def list_orders(store: StoreState, query: dict[str, str]) -> tuple[int, list[Order], int, int]:
    """Return ``(total_records, page, limit, offset)`` for a ``GET /orders`` query."""
    limit, offset = paging(query, DEFAULT_LIMIT, MAX_LIMIT)
    preds = _predicates(store, query)
    matches = [o for o in store.orders.values() if all(p(o) for p in preds)]
    order_by = query.get("order_by") or "date_added"
    descending = (query.get("order") or "DESC").upper() != "ASC"
    matches.sort(key=_sort_key(SORT_ALIASES.get(order_by, order_by)), reverse=descending)
    return len(matches), matches[offset : offset + limit], limit, offset
