"""Inventory items (notes §5.13): int ids, unique ``code``, full-replacement PUT, raw-array batch PUT.

Kept apart from orders because nothing links them: OrderDesk does not decrement stock from the API.
"""

from __future__ import annotations

from typing import Any

from . import assumptions as A
from . import model as M
from .errors import ApiError
from .state import SandboxState, StoreState

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


def _build(body: Any, item_id: int, date_added: str, date_updated: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_OBJECT)
    name, code = M.text(body.get("name")).strip(), M.text(body.get("code")).strip()
    if not name or not code:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_INVENTORY_NEEDS_NAME_CODE)
    sku = body.get("manufacturer_sku")
    return {
        "id": item_id,
        "name": name,
        "code": code,
        "price": M.tidy(M.number(body.get("price"), "price")),
        "cost": M.tidy(M.number(body.get("cost"), "cost")),
        "weight": M.tidy(M.number(body.get("weight"), "weight"), 4),
        "stock": M.integer(body.get("stock"), "stock"),
        "update_source": M.text(body.get("update_source")) or "API",
        "location": M.text(body.get("location")),
        "manufacturer_sku": None if sku in (None, "") else M.text(sku),
        "metadata": M.php_map(body.get("metadata"), "metadata"),
        "variation_list": M.php_map(body.get("variation_list"), "variation_list"),
        "date_added": date_added,
        "date_updated": date_updated,
    }


def get(store: StoreState, item_id: Any) -> dict[str, Any]:
    try:
        found = store.inventory.get(int(item_id))
    except (TypeError, ValueError):
        found = None
    if found is None:
        raise ApiError(A.STATUS_NOT_FOUND, A.MSG_INVENTORY_NOT_FOUND)
    return found


def _check_code(store: StoreState, code: str, item_id: int | None) -> None:
    owner = store.inventory_codes.get(code)
    if owner is not None and owner != item_id:
        raise ApiError(A.STATUS_VALIDATION, A.MSG_INVENTORY_DUPLICATE_CODE.format(code=code))


def create(
    state: SandboxState, store: StoreState, body: Any, date_added: str | None = None
) -> dict[str, Any]:
    now = date_added or M.fmt_ts(M.utcnow())
    item = _build(body, 0, now, now)
    _check_code(store, item["code"], None)
    item["id"] = state.next_id("inventory")
    store.inventory[item["id"]] = item
    store.inventory_codes[item["code"]] = item["id"]
    return item


def replace(store: StoreState, item_id: Any, body: Any) -> dict[str, Any]:
    """Full replacement: "Any empty fields will be set to blank on the record" (notes §5.13)."""
    old = get(store, item_id)
    new = _build(body, old["id"], old["date_added"], M.stamp())
    _check_code(store, new["code"], old["id"])
    del store.inventory_codes[old["code"]]
    store.inventory_codes[new["code"]] = new["id"]
    store.inventory[new["id"]] = new
    return new


def delete(store: StoreState, item_id: Any) -> int:
    item = get(store, item_id)
    del store.inventory[item["id"]]
    store.inventory_codes.pop(item["code"], None)
    return int(item["id"])


def batch(state: SandboxState, store: StoreState, body: Any) -> list[dict[str, Any]]:
    """``PUT /batch-inventory-items``: entries with ``id`` (or a known ``code``) are replaced, others
    created. The per-entry result shape is undocumented (open question 3); errors stay per entry."""
    if not isinstance(body, list):
        raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_ARRAY)
    results: list[dict[str, Any]] = []
    for entry in body:
        raw = entry if isinstance(entry, dict) else {}
        target: Any = raw.get("id")
        if target in (None, "") and M.text(raw.get("code")) in store.inventory_codes:
            target = store.inventory_codes[M.text(raw.get("code"))]
        try:
            if target in (None, ""):
                item, message = create(state, store, entry), "Inventory Item Added"
            else:
                item, message = replace(store, target, entry), "Inventory Item Updated"
        except ApiError as exc:
            results.append(
                {"id": raw.get("id"), "code": raw.get("code"), "status": "error", "message": exc.message}
            )
        else:
            results.append({"id": item["id"], "code": item["code"], "status": "success", "message": message})
    return results


def search(store: StoreState, query: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """``GET /inventory-items``: ``code=a,b`` filter, free-text ``search`` (LOW), limit/offset paging."""
    from .search import paging

    limit, offset = paging(query, DEFAULT_LIMIT, MAX_LIMIT)
    items = list(store.inventory.values())
    if query.get("code"):
        wanted = {c.strip() for c in query["code"].split(",") if c.strip()}
        items = [i for i in items if i["code"] in wanted]
    if query.get("search"):
        needle = query["search"].lower()
        items = [i for i in items if needle in i["name"].lower() or needle in i["code"].lower()]
    return len(items), items[offset : offset + limit]
