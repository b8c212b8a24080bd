"""OrderDesk-aware merge of a change set into a fetched order, plus field-level diffs.

``PUT /orders/{id}`` is a full replacement: omitted top-level fields are blanked, nested objects are
replaced wholesale and existing items that are not sent are removed. An update is therefore
GET → :func:`merge_order` → PUT of the *whole* merged dict. The merge works on plain dicts (msgspec
Structs would drop unknown fields) and never mutates its inputs.

Merge rules for :func:`merge_order`:

* Top-level fields: the change value replaces the current one. An explicit ``None`` removes the
  field from the merged order, so the full-replacement PUT **blanks it upstream**.
* Address objects (``shipping``, ``customer``, ``return_address``) and key/value maps
  (``checkout_data``, ``order_metadata``) merge key by key; ``None`` for a key removes that key,
  ``None`` for the whole object removes the object (blanked upstream).
* ``order_items`` merge by item ``id``:

  - ``{"id": "42286", "quantity": 3}`` updates that item key by key (its ``variation_list`` and
    ``metadata`` maps merge key by key as well; ``None`` removes a key);
  - ``{"id": "42286", "_delete": true}`` removes that item — this is **the** way to remove an item
    (see :data:`DELETE_MARKER`); leaving an item out of the change set keeps it;
  - an entry without ``id`` is appended as a new item (OrderDesk assigns its id on upload);
  - an ``id`` that is not in the order raises :class:`ValidationFailed` — also for ``_delete``, so a
    mistyped id is never silently ignored (re-applying a delete after it succeeded therefore fails);
  - items not mentioned are kept unchanged and in their original order (``"order_items": []``
    changes nothing).

  Re-applying the same change set is a no-op unless it adds items (entries without ``id`` are
  appended each time) or deletes them.

* ``order_shipments`` and ``order_history`` are never part of the result: OrderDesk ignores
  shipments in an order PUT and history is append-only. Upload uses the shipment endpoints and
  ``POST /orders/{id}/order-history`` instead.
* ``folder_id`` may be changed; the merged dict carries the requested value and the upload step
  moves the order through ``POST /move-orders`` (which runs folder rules and writes history).

Validation (types, read-only fields, size limits) lives in :mod:`odmcp_orderdesk.validate`; the
merge only refuses what it cannot apply (unknown item ids, malformed item entries) and keys that are
neither documented nor on the fetched object, at the top, in an item, an address or a
``discount_list``/``order_notes`` entry (:func:`odmcp_orderdesk.fields.check_keys`,
:func:`~odmcp_orderdesk.fields.check_nested_keys`: OrderDesk would silently drop them, so the change
would "succeed" and change nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from odmcp.api import ValidationFailed
from odmcp_orderdesk import wire
from odmcp_orderdesk.fields import (
    INVENTORY_FIELDS,
    ITEM_FIELDS,
    ORDER_FIELDS,
    SHIPMENT_FIELDS,
    check_keys,
    check_nested_keys,
)

#: Key in an ``order_items`` change entry that removes the item with that entry's ``id``.
DELETE_MARKER = "_delete"
#: Keys of an item change entry that address the item rather than set one of its fields.
_ITEM_CONTROL = frozenset({"id", DELETE_MARKER})

#: Objects merged key by key rather than replaced.
ADDRESS_FIELDS = frozenset({"shipping", "customer", "return_address"})
MAP_FIELDS = frozenset({"checkout_data", "order_metadata"})
KEYED_ORDER_FIELDS = ADDRESS_FIELDS | MAP_FIELDS
#: Maps inside an order item (and an inventory item) that merge key by key.
ITEM_MAP_FIELDS = frozenset({"variation_list", "metadata"})
#: Fields never sent back in an order PUT (shipments and history have their own endpoints).
NOT_UPLOADED = frozenset({"order_shipments", "order_history"})

#: ``changed_fields`` path for an item that has no id yet (added by this change set).
NEW_ITEM = "+new"

Order = dict[str, Any]


def merge_order(current: Mapping[str, Any], changes: Mapping[str, Any]) -> Order:
    """Return the full order to PUT: a deep copy of ``current`` with ``changes`` applied (see module doc)."""
    check_keys(changes, "order", ORDER_FIELDS, current)
    check_nested_keys(changes, current)
    merged: Order = copy.deepcopy(dict(current))
    for key, value in changes.items():
        if key in NOT_UPLOADED:
            continue
        if value is None:
            merged.pop(key, None)
        elif key in KEYED_ORDER_FIELDS and isinstance(value, Mapping):
            merged[key] = _merge_map(merged.get(key), value)
        elif key == "order_items":
            if not isinstance(value, list):
                raise ValidationFailed(
                    f"`$.order_items`: expected a list of item changes, got {type(value).__name__}",
                    field="$.order_items",
                )
            merged[key] = _merge_items(merged.get(key), value)
        else:
            merged[key] = copy.deepcopy(value)
    for key in NOT_UPLOADED:
        merged.pop(key, None)
    return merged


def merge_inventory_item(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge for the full-replacement ``PUT /inventory-items/{id}``.

    A change value replaces the current one; ``None`` removes the field (blanked upstream);
    ``metadata`` and ``variation_list`` merge key by key. Inputs are not mutated.
    """
    check_keys(changes, "inventory item", INVENTORY_FIELDS, current)
    merged = copy.deepcopy(dict(current))
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif key in ITEM_MAP_FIELDS and isinstance(value, Mapping):
            merged[key] = _merge_map(merged.get(key), value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_map(current: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Key-by-key merge; ``current`` may be missing, ``None`` or PHP's empty ``[]``."""
    merged: dict[str, Any] = copy.deepcopy(dict(current)) if isinstance(current, Mapping) else {}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _item_key(item: Any) -> str | None:
    """An item's id as a string (ids are normalised to str, but a change may carry an int)."""
    if isinstance(item, Mapping) and item.get("id") is not None:
        return str(item["id"])
    return None


def _merge_items(current: Any, changes: list[Any]) -> list[Any]:
    items: list[Any] = copy.deepcopy(list(current)) if isinstance(current, list) else []
    positions = {key: pos for pos, item in enumerate(items) if (key := _item_key(item)) is not None}
    removed: set[str] = set()
    added: list[dict[str, Any]] = []
    for index, entry in enumerate(changes):
        where = f"$.order_items[{index}]"
        if not isinstance(entry, Mapping):
            raise ValidationFailed(f"`{where}`: expected an object, got {type(entry).__name__}", field=where)
        key = _item_key(entry)
        delete = entry.get(DELETE_MARKER) is True
        check_keys(
            entry,
            "order item",
            ITEM_FIELDS,
            items[positions[key]] if key in positions else None,
            path=where,
            allowed=_ITEM_CONTROL,
        )
        if key is None:
            if delete:
                raise ValidationFailed(
                    f"`{where}.{DELETE_MARKER}`: removing an item needs its id",
                    field=f"{where}.{DELETE_MARKER}",
                )
            # ``None`` in a new item means "not set"; the marker (``false`` here) is never uploaded.
            added.append(
                {k: copy.deepcopy(v) for k, v in entry.items() if k not in _ITEM_CONTROL and v is not None}
            )
            continue
        if key not in positions:
            raise ValidationFailed(
                f"`{where}.id`: no item with id {key!r} in this order (it may have been removed already)",
                field=f"{where}.id",
            )
        if delete:
            removed.add(key)
        else:
            items[positions[key]] = _merge_item(items[positions[key]], entry)
    kept = [item for item in items if _item_key(item) not in removed]
    return kept + added


def merge_item(item: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """One item merged with ``changes`` (key by key, maps too); for ``order_items.update``."""
    check_keys(changes, "order item", ITEM_FIELDS, item, path="$.item", allowed=_ITEM_CONTROL)
    return _merge_item(copy.deepcopy(dict(item)), changes)


def merge_shipment(shipment: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The shipment to PUT for ``shipments.update``: the fetched one with ``changes`` on top (not ``id``)."""
    check_keys(changes, "shipment", SHIPMENT_FIELDS, shipment)
    return {**copy.deepcopy(dict(shipment)), **{k: copy.deepcopy(v) for k, v in changes.items() if k != "id"}}


def _merge_item(item: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Key-by-key update of one (already deep-copied) item; its ``id`` is never rewritten."""
    for key, value in changes.items():
        if key in _ITEM_CONTROL:
            continue
        if value is None:
            item.pop(key, None)
        elif key in ITEM_MAP_FIELDS and isinstance(value, Mapping):
            item[key] = _merge_map(item.get(key), value)
        else:
            item[key] = copy.deepcopy(value)
    return item


# --- diffs ------------------------------------------------------------------------------------------


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Sorted, de-duplicated dotted paths that differ between two orders (audit log, dry run).

    Paths: top-level keys (``email``); keys inside addresses and maps (``shipping.city``,
    ``order_metadata.k``); item fields by id (``order_items[42286].quantity``, and
    ``order_items[42286].variation_list.Size``); a whole item that appeared or disappeared
    (``order_items[42286]``); an item without an id yet (``order_items[+new]``).
    ``order_shipments``/``order_history`` are ignored: the merge drops them from the upload, which
    does not change them upstream.
    """
    return sorted({path for path, _, _ in _walk(before, after)})


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Field-level differences ``{"path", "before", "after"}`` sorted by path (dry-run output).

    An absent field is shown as ``None``. Each new item gets its own ``order_items[+new]`` entry.
    An amount spelled differently (``10`` vs ``"10"``, as OrderDesk mixes them) is no difference.
    """
    entries = [{"path": path, "before": old, "after": new} for path, old, new in _walk(before, after)]
    return sorted(entries, key=lambda entry: entry["path"])


def _walk(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    for key in _union_keys(before, after):
        if key in NOT_UPLOADED:
            continue
        old, new = before.get(key), after.get(key)
        if key in before and key in after and _same(key, old, new, wire.ORDER_AMOUNT_FIELDS):
            continue
        if key in KEYED_ORDER_FIELDS and _is_map(old) and _is_map(new):
            yield from _walk_map(key, old, new)
        elif key == "order_items" and isinstance(old, list) and isinstance(new, list):
            yield from _walk_items(old, new)
        else:
            yield key, old, new


def _same(key: str, old: Any, new: Any, amounts: frozenset[str]) -> bool:
    """Equal, or (for an amount field) the same amount spelled as a number and as a string."""
    return old == new or (key in amounts and wire.same_amount(old, new))


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping) or value == []


def _union_keys(before: Any, after: Any) -> list[str]:
    """Keys of both mappings, ``before``'s order first (``[]`` counts as an empty map)."""
    left = list(before) if isinstance(before, Mapping) else []
    seen = set(left)
    return left + [key for key in (after if isinstance(after, Mapping) else []) if key not in seen]


def _walk_map(prefix: str, before: Any, after: Any) -> Iterator[tuple[str, Any, Any]]:
    old_map: Mapping[str, Any] = before if isinstance(before, Mapping) else {}
    new_map: Mapping[str, Any] = after if isinstance(after, Mapping) else {}
    for key in _union_keys(old_map, new_map):
        if key in old_map and key in new_map and old_map[key] == new_map[key]:
            continue
        yield f"{prefix}.{key}", old_map.get(key), new_map.get(key)


def _walk_items(before: list[Any], after: list[Any]) -> Iterator[tuple[str, Any, Any]]:
    old_by_id = {key: item for item in before if (key := _item_key(item)) is not None}
    new_by_id = {key: item for item in after if (key := _item_key(item)) is not None}
    for key in [*old_by_id, *(k for k in new_by_id if k not in old_by_id)]:
        old, new = old_by_id.get(key), new_by_id.get(key)
        prefix = f"order_items[{key}]"
        if old is None or new is None:
            yield prefix, old, new
        elif old != new:
            yield from _walk_item(prefix, old, new)
    # Items without an id cannot be addressed by a change set, so the merge keeps the existing ones
    # in place and appends new ones after them: the surplus in ``after`` is what was added.
    old_anon = [item for item in before if _item_key(item) is None]
    new_anon = [item for item in after if _item_key(item) is None]
    if new_anon[: len(old_anon)] != old_anon:
        yield "order_items", before, after
        return
    for item in new_anon[len(old_anon) :]:
        yield f"order_items[{NEW_ITEM}]", None, item


def _walk_item(
    prefix: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> Iterator[tuple[str, Any, Any]]:
    for key in _union_keys(before, after):
        old, new = before.get(key), after.get(key)
        if key in before and key in after and _same(key, old, new, wire.ITEM_AMOUNT_FIELDS):
            continue
        if key in ITEM_MAP_FIELDS and _is_map(old) and _is_map(new):
            yield from _walk_map(f"{prefix}.{key}", old, new)
        else:
            yield f"{prefix}.{key}", old, new
