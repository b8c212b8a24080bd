"""Hypothesis properties of merge_order: nothing the caller did not name changes, nothing is lost."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from odmcp_orderdesk.fields import ADDRESS_KEYS, ITEM_FIELDS, ORDER_FIELDS
from odmcp_orderdesk.merge import (
    DELETE_MARKER,
    ITEM_MAP_FIELDS,
    KEYED_ORDER_FIELDS,
    NOT_UPLOADED,
    changed_fields,
    merge_order,
)

SETTINGS = settings(max_examples=60, deadline=None)  # ~60% of the former time; the suite stays near 5 min

keys = st.text(alphabet="abcxyz_ ", min_size=1, max_size=4)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=6),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
maps = st.dictionaries(keys, values, max_size=4)
#: top-level names that are neither keyed objects nor items (known OrderDesk fields and unknown ones)
plain_fields = st.sampled_from(["email", "shipping_method", "folder_id", "tag_name", "x_extra", "x_other"])


@st.composite
def items(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(st.integers(1, 10**6), unique=True, max_size=5))
    out = []
    for item_id in ids:
        item: dict[str, Any] = {"id": str(item_id), "name": draw(st.text(max_size=5)), "quantity": 1}
        item.update(draw(st.dictionaries(st.sampled_from(["price", "code", "x_item"]), values, max_size=2)))
        for field in ITEM_MAP_FIELDS:
            if draw(st.booleans()):
                item[field] = draw(maps)
        out.append(item)
    return out


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    order: dict[str, Any] = {"id": "26211"}
    order.update(draw(st.dictionaries(plain_fields, values, max_size=4)))
    for field in sorted(KEYED_ORDER_FIELDS):
        if draw(st.booleans()):
            order[field] = draw(maps)
    order["order_items"] = draw(items())
    for field in sorted(NOT_UPLOADED):
        if draw(st.booleans()):
            order[field] = draw(st.lists(maps, max_size=2))
    return order


def _key_changes(draw: st.DrawFn, current: Any, documented: frozenset[str] | None = None) -> dict[str, Any]:
    """Changes to a map: existing keys and new ones, values possibly None (= remove the key).

    ``documented``: the map takes only these keys and those it already has (an address).
    """
    names = list(current) if isinstance(current, dict) else []
    new = keys if documented is None else st.sampled_from(sorted(documented))
    candidates = st.sampled_from(names) | new if names else new
    return draw(st.dictionaries(candidates, st.none() | values, max_size=3))


@st.composite
def changes_for(
    draw: st.DrawFn, order: dict[str, Any], *, new_items: bool = True, deletes: bool = True
) -> dict[str, Any]:
    # a change names documented fields or fields the order already has (anything else is refused)
    settable = st.sampled_from(
        [
            f
            for f in ("email", "shipping_method", "folder_id", "tag_name", "x_extra", "x_other")
            if f in ORDER_FIELDS or f in order
        ]
    )
    changes: dict[str, Any] = draw(st.dictionaries(settable, st.none() | values, max_size=3))
    for field in sorted(KEYED_ORDER_FIELDS):
        choice = draw(st.sampled_from(["skip", "skip", "merge", "remove"]))
        if choice == "merge":
            changes[field] = _key_changes(draw, order.get(field), ADDRESS_KEYS.get(field))
        elif choice == "remove":
            changes[field] = None
    if draw(st.booleans()):
        entries: list[dict[str, Any]] = []
        for item in order["order_items"]:
            action = draw(st.sampled_from(["keep", "update", "delete"] if deletes else ["keep", "update"]))
            if action == "delete":
                entries.append({"id": item["id"], DELETE_MARKER: True})
            elif action == "update":
                entry: dict[str, Any] = {"id": item["id"]}
                named = [k for k in ("quantity", "price", "x_item") if k in ITEM_FIELDS or k in item]
                entry.update(draw(st.dictionaries(st.sampled_from(named), values)))
                for field in ITEM_MAP_FIELDS:
                    if draw(st.booleans()):
                        entry[field] = _key_changes(draw, item.get(field))
                entries.append(entry)
        if new_items:
            entries += draw(
                st.lists(st.fixed_dictionaries({"name": st.text(max_size=4)}, optional={"code": values}))
            )
        changes["order_items"] = draw(st.permutations(entries))
    return changes


def _ids(order: dict[str, Any]) -> list[str]:
    return [item["id"] for item in order.get("order_items", []) if "id" in item]


@SETTINGS
@given(orders())
def test_merging_nothing_changes_nothing(order: dict[str, Any]) -> None:
    merged = merge_order(order, {})
    assert merged == {k: v for k, v in order.items() if k not in NOT_UPLOADED}
    assert changed_fields(order, merged) == []


@SETTINGS
@given(st.data())
def test_fields_not_named_are_preserved_exactly(data: st.DataObject) -> None:
    order = data.draw(orders())
    changes = data.draw(changes_for(order))
    merged = merge_order(order, changes)
    for key, value in order.items():
        if key in NOT_UPLOADED:
            assert key not in merged
        elif key not in changes:
            assert merged[key] == value
        elif key in KEYED_ORDER_FIELDS and isinstance(changes[key], dict):
            for sub, sub_value in value.items():
                if sub not in changes[key]:
                    assert merged[key][sub] == sub_value
    entries = {entry.get("id"): entry for entry in changes.get("order_items", [])}
    merged_items = {item["id"]: item for item in merged["order_items"] if "id" in item}
    for item in order["order_items"]:
        entry = entries.get(item["id"])
        if entry is None:
            assert merged_items[item["id"]] == item
        elif not entry.get(DELETE_MARKER):
            for key, value in item.items():
                if key not in entry:
                    assert merged_items[item["id"]][key] == value
                elif key in ITEM_MAP_FIELDS:
                    for sub, sub_value in value.items():
                        if sub not in entry[key]:
                            assert merged_items[item["id"]][key][sub] == sub_value


@SETTINGS
@given(st.data())
def test_changed_fields_only_name_what_the_changes_name(data: st.DataObject) -> None:
    order = data.draw(orders())
    changes = data.draw(changes_for(order))
    for path in changed_fields(order, merge_order(order, changes)):
        assert path.split(".")[0].split("[")[0] in changes


@SETTINGS
@given(st.data())
def test_merge_is_idempotent_when_every_item_entry_has_an_id(data: st.DataObject) -> None:
    order = data.draw(orders())
    changes = data.draw(changes_for(order, new_items=False, deletes=False))
    # Removing an undocumented field makes it unknown, so a repeat is refused rather than re-applied.
    changes = {k: v for k, v in changes.items() if v is not None or k in ORDER_FIELDS}
    for field, documented in ADDRESS_KEYS.items():
        if isinstance(changes.get(field), dict):
            changes[field] = {k: v for k, v in changes[field].items() if v is not None or k in documented}
    changes["order_items"] = [
        {k: v for k, v in entry.items() if v is not None or k in ITEM_FIELDS}
        for entry in changes.get("order_items", [])
    ]
    once = merge_order(order, changes)
    assert merge_order(once, changes) == once


@SETTINGS
@given(st.data())
def test_no_item_is_dropped_unless_asked_and_order_is_kept(data: st.DataObject) -> None:
    order = data.draw(orders())
    changes = data.draw(changes_for(order))
    entries = changes.get("order_items", [])
    deleted = {entry["id"] for entry in entries if entry.get(DELETE_MARKER)}
    added = [entry for entry in entries if "id" not in entry]
    merged = merge_order(order, changes)
    assert _ids(merged) == [item_id for item_id in _ids(order) if item_id not in deleted]
    assert len(merged["order_items"]) == len(order["order_items"]) - len(deleted) + len(added)


@SETTINGS
@given(st.data())
def test_inputs_are_never_mutated(data: st.DataObject) -> None:
    order = data.draw(orders())
    changes = data.draw(changes_for(order))
    order_copy, changes_copy = copy.deepcopy(order), copy.deepcopy(changes)
    merged = merge_order(order, changes)
    assert order == order_copy
    assert changes == changes_copy
    _scribble(merged)
    assert order == order_copy
    assert changes == changes_copy


def _scribble(value: Any) -> None:
    """Mutate every container in the result: none of them may be shared with an input."""
    if isinstance(value, dict):
        for inner in list(value.values()):
            _scribble(inner)
        value["__scribbled__"] = True
    elif isinstance(value, list):
        for inner in value:
            _scribble(inner)
        value.append("__scribbled__")
