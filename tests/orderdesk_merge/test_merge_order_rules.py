"""Unit tests for merge_order / merge_inventory_item: one test per rule of the merge."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from odmcp.errors import ValidationFailed
from odmcp_orderdesk.merge import DELETE_MARKER, merge_inventory_item, merge_order


def make_order() -> dict[str, Any]:
    """The docs' full order example, normalised, with unknown fields at every level."""
    return {
        "id": "26211",
        "email": "test@orderdesk.me",
        "shipping_method": "FedEx Home Delivery",
        "quantity_total": 3,
        "product_total": 29,
        "order_total": 40.17,
        "payment_status": "Approved",
        "source_name": "Order Desk",
        "source_id": "412218073",
        "folder_id": 1,
        "date_added": "2014-10-08 12:10:00",
        "date_updated": "2014-10-09 23:13:47",
        "x_unknown_top": {"nested": [1, 2, {"deep": True}]},
        "shipping": {
            "first_name": "Jimmy",
            "last_name": "Dean",
            "address1": "800 Emmet St",
            "city": "Nashville",
            "state": "TN",
            "postal_code": "55555",
            "country": "US",
            "x_geo": {"lat": 36.16, "lng": -86.78},
        },
        "customer": {"first_name": "Bingo", "last_name": "Little", "city": "Knoxville", "x_loyalty": "gold"},
        "return_address": {"title": "Acme", "name": "Doug Jones", "company": "Acme Manufacturing"},
        "checkout_data": {"Gift Message": "Happy Birthday"},
        "order_metadata": {"fraud_protection_score": 0},
        "discount_list": [{"name": "Discount", "code": "MN234DX78", "amount": "1.70"}],
        "order_notes": [{"date_added": "2014-10-09 23:12:05", "username": "CS", "content": "Called"}],
        "order_items": [
            {
                "id": "42286",
                "name": "Crazy Glue",
                "price": "10",
                "quantity": 1,
                "code": "crzyg-554",
                "fulfillment_method": "",
                "variation_list": {"Size": "Small", "Color": "Black"},
                "metadata": {"image": "image_url_here"},
                "x_item_extra": {"keep": "me"},
            },
            {
                "id": "42287",
                "name": "Tape",
                "price": 19,
                "quantity": 2,
                "code": "tape-1",
                "variation_list": {},
                "metadata": {},
            },
        ],
        "order_shipments": [{"id": "369", "order_id": "26211", "tracking_number": "1Z132456789"}],
        "order_history": [{"source_name": "API", "note": "hi", "date_added": "2015-10-28 23:14:30"}],
    }


def without_uploads(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if k not in ("order_shipments", "order_history")}


def test_empty_changes_only_drop_shipments_and_history() -> None:
    order = make_order()
    assert merge_order(order, {}) == without_uploads(order)


def test_top_level_value_replaces_and_unknown_fields_survive() -> None:
    merged = merge_order(make_order(), {"email": "new@example.com", "x_unknown_top": [1]})
    assert merged["email"] == "new@example.com"
    assert merged["x_unknown_top"] == [1]  # undocumented, but on the fetched order: settable
    merged = merge_order(make_order(), {"email": "new@example.com"})
    assert merged["x_unknown_top"] == {"nested": [1, 2, {"deep": True}]}
    assert merged["shipping"]["x_geo"] == {"lat": 36.16, "lng": -86.78}
    assert merged["order_items"][0]["x_item_extra"] == {"keep": "me"}


def test_none_removes_top_level_field() -> None:
    merged = merge_order(make_order(), {"shipping_method": None, "tag_color": None})
    assert "shipping_method" not in merged
    assert "not_there" not in merged


def test_list_fields_are_replaced_wholesale() -> None:
    notes = [{"username": "bot", "content": "new"}]
    merged = merge_order(make_order(), {"order_notes": notes, "discount_list": []})
    assert merged["order_notes"] == notes
    assert merged["discount_list"] == []


@pytest.mark.parametrize("field", ["shipping", "customer", "return_address"])
def test_address_merges_key_by_key(field: str) -> None:
    order = make_order()
    merged = merge_order(order, {field: {"city": "Memphis", "company": None, "phone": "555"}})
    expected = {k: v for k, v in order[field].items() if k != "company"}
    expected.update(city="Memphis", phone="555")
    assert merged[field] == expected


@pytest.mark.parametrize("field", ["shipping", "customer", "return_address"])
def test_an_undocumented_address_key_is_refused_unless_the_order_has_it(field: str) -> None:
    with pytest.raises(ValidationFailed, match=rf"unknown field '{field}.x_added'") as refused:
        merge_order(make_order(), {field: {"city": "Memphis", "x_added": "y"}})
    assert refused.value.details == {"field": f"$.{field}.x_added"}
    order = make_order()
    order[field]["x_added"] = "was"
    assert merge_order(order, {field: {"x_added": "y"}})[field]["x_added"] == "y"


@pytest.mark.parametrize(("field", "documented"), [("discount_list", "name"), ("order_notes", "content")])
def test_a_list_entry_takes_documented_keys_and_those_the_fetched_entries_carry(
    field: str, documented: str
) -> None:
    with pytest.raises(ValidationFailed, match=rf"unknown field '{field}\[1\].x_extra'"):
        merge_order(make_order(), {field: [{documented: "a"}, {"x_extra": 1}]})
    order = make_order()
    order[field] = [{"x_extra": 0}]
    assert merge_order(order, {field: [{"x_extra": 1}]})[field] == [{"x_extra": 1}]


def test_shipping_city_change_keeps_the_rest_of_the_address() -> None:
    merged = merge_order(make_order(), {"shipping": {"city": "Memphis"}})
    assert merged["shipping"] == {**make_order()["shipping"], "city": "Memphis"}


def test_none_for_a_whole_address_removes_it() -> None:
    merged = merge_order(make_order(), {"return_address": None})
    assert "return_address" not in merged


@pytest.mark.parametrize("field", ["checkout_data", "order_metadata"])
def test_maps_merge_key_by_key(field: str) -> None:
    order = make_order()
    (existing_key,) = order[field]
    merged = merge_order(order, {field: {"New Key": "v", existing_key: None}})
    assert merged[field] == {"New Key": "v"}
    merged = merge_order(order, {field: {"Other": 1}})
    assert merged[field] == {**order[field], "Other": 1}


def test_map_merge_accepts_php_empty_list_and_missing_map() -> None:
    order = make_order()
    order["checkout_data"] = []
    del order["order_metadata"]
    merged = merge_order(order, {"checkout_data": {"a": "1"}, "order_metadata": {"b": 2}})
    assert merged["checkout_data"] == {"a": "1"}
    assert merged["order_metadata"] == {"b": 2}


def test_item_update_is_key_by_key_and_keeps_unknown_fields() -> None:
    order = make_order()
    merged = merge_order(order, {"order_items": [{"id": "42286", "quantity": 3, "code": None}]})
    item = merged["order_items"][0]
    expected = {k: v for k, v in order["order_items"][0].items() if k != "code"}
    expected["quantity"] = 3
    assert item == expected
    assert merged["order_items"][1] == order["order_items"][1]


def test_item_maps_merge_key_by_key() -> None:
    change = {"id": "42286", "variation_list": {"Size": "Large", "Color": None}, "metadata": {"gift": "y"}}
    item = merge_order(make_order(), {"order_items": [change]})["order_items"][0]
    assert item["variation_list"] == {"Size": "Large"}
    assert item["metadata"] == {"image": "image_url_here", "gift": "y"}


def test_item_id_may_be_an_int_in_the_change() -> None:
    merged = merge_order(make_order(), {"order_items": [{"id": 42287, "quantity": 5}]})
    assert merged["order_items"][1]["quantity"] == 5
    assert merged["order_items"][1]["id"] == "42287"


def test_delete_marker_removes_only_that_item() -> None:
    order = make_order()
    merged = merge_order(order, {"order_items": [{"id": "42286", DELETE_MARKER: True}]})
    assert merged["order_items"] == [order["order_items"][1]]


def test_delete_marker_false_is_an_ordinary_update_and_is_not_uploaded() -> None:
    merged = merge_order(
        make_order(), {"order_items": [{"id": "42286", DELETE_MARKER: False, "quantity": 4}]}
    )
    assert merged["order_items"][0]["quantity"] == 4
    assert DELETE_MARKER not in merged["order_items"][0]


def test_delete_without_id_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"\$\.order_items\[0\]\._delete"):
        merge_order(make_order(), {"order_items": [{DELETE_MARKER: True}]})


def test_entry_without_id_is_appended() -> None:
    order = make_order()
    new = {
        "name": "Widget",
        "code": "W-1",
        "price": 12.99,
        "quantity": 2,
        "category_code": "X",
        "weight": None,
    }
    merged = merge_order(order, {"order_items": [new, {"id": "42286", "quantity": 9}]})
    assert [item.get("id") for item in merged["order_items"]] == ["42286", "42287", None]
    assert merged["order_items"][2] == {
        "name": "Widget",
        "code": "W-1",
        "price": 12.99,
        "quantity": 2,
        "category_code": "X",
    }
    assert merged["order_items"][0]["quantity"] == 9


def test_unknown_item_id_is_refused_with_its_path() -> None:
    changes = {"order_items": [{"id": "42286"}, {"name": "x"}, {"id": "999", "quantity": 1}]}
    with pytest.raises(ValidationFailed, match=r"`\$\.order_items\[2\]\.id`: no item with id '999'") as info:
        merge_order(make_order(), changes)
    assert info.value.details == {"field": "$.order_items[2].id"}


def test_items_not_mentioned_are_kept_in_order() -> None:
    order = make_order()
    order["order_items"].append({"id": "42288", "name": "Third", "quantity": 1})
    merged = merge_order(order, {"order_items": [{"id": "42287", "quantity": 7}]})
    assert [item["id"] for item in merged["order_items"]] == ["42286", "42287", "42288"]
    assert merged["order_items"][0] == order["order_items"][0]
    assert merged["order_items"][2] == order["order_items"][2]


def test_empty_item_list_changes_nothing() -> None:
    order = make_order()
    assert merge_order(order, {"order_items": []})["order_items"] == order["order_items"]


def test_non_list_items_and_non_object_entries_are_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"`\$\.order_items`"):
        merge_order(make_order(), {"order_items": {"id": "42286"}})
    with pytest.raises(ValidationFailed, match=r"`\$\.order_items\[0\]`: expected an object"):
        merge_order(make_order(), {"order_items": ["42286"]})


def test_shipments_and_history_are_never_in_the_result_even_if_changed() -> None:
    merged = merge_order(make_order(), {"order_shipments": [{"tracking_number": "x"}], "order_history": []})
    assert "order_shipments" not in merged
    assert "order_history" not in merged


def test_folder_id_is_carried() -> None:
    assert merge_order(make_order(), {"folder_id": 9384})["folder_id"] == 9384


def test_inputs_are_not_mutated_and_result_shares_nothing() -> None:
    order, changes = (
        make_order(),
        {
            "shipping": {"city": "Memphis"},
            "order_items": [
                {"id": "42286", "variation_list": {"Size": "L"}},
                {"name": "New", "metadata": {"a": 1}},
            ],
            "discount_list": [{"name": "d", "amount": 1}],
        },
    )
    order_before, changes_before = copy.deepcopy(order), copy.deepcopy(changes)
    merged = merge_order(order, changes)
    assert order == order_before
    assert changes == changes_before
    merged["x_unknown_top"]["nested"].append(3)
    merged["order_items"][1]["variation_list"]["Size"] = "XL"
    merged["order_items"][2]["metadata"]["a"] = 2
    merged["discount_list"].append(3)
    assert order == order_before
    assert changes == changes_before


def test_inventory_merge_is_shallow_with_map_merge() -> None:
    current = {
        "id": 2510,
        "name": "Three Wolf T-Shirt",
        "code": "3wolf-11",
        "price": 10,
        "stock": 48,
        "location": "A1",
        "metadata": {"supplier": "acme", "bin": "7"},
        "variation_list": {},
        "x_unknown": [1],
    }
    before = copy.deepcopy(current)
    changes = {
        "stock": 50,
        "location": None,
        "metadata": {"bin": None, "aisle": "3"},
        "variation_list": {"Size": "L"},
    }
    merged = merge_inventory_item(current, changes)
    assert merged == {
        "id": 2510,
        "name": "Three Wolf T-Shirt",
        "code": "3wolf-11",
        "price": 10,
        "stock": 50,
        "metadata": {"supplier": "acme", "aisle": "3"},
        "variation_list": {"Size": "L"},
        "x_unknown": [1],
    }
    assert current == before
    merged["x_unknown"].append(2)
    assert current == before


def test_inventory_merge_replaces_empty_php_metadata() -> None:
    merged = merge_inventory_item({"id": 1, "metadata": []}, {"metadata": {"a": "b"}})
    assert merged["metadata"] == {"a": "b"}


def test_deleting_an_item_twice_is_refused() -> None:
    changes = {"order_items": [{"id": "42286", DELETE_MARKER: True}]}
    once = merge_order(make_order(), changes)
    with pytest.raises(ValidationFailed, match=r"no item with id '42286'"):
        merge_order(once, changes)
