"""changed_fields / diff: the paths the audit log and the dry-run output show."""

from __future__ import annotations

from typing import Any

from odmcp_orderdesk.merge import DELETE_MARKER, changed_fields, diff, merge_order


def make_order() -> dict[str, Any]:
    return {
        "id": "925086",
        "email": "myemail@server.com",
        "folder_id": 64,
        "x_unknown": 1,
        "shipping": {"first_name": "Jimmy", "last_name": "Dean", "city": "Nashville", "x_geo": "a"},
        "checkout_data": {"Order Notes": "Please leave by back door"},
        "order_metadata": {},
        "order_items": [
            {
                "id": "1670028",
                "name": "Sub",
                "price": 19,
                "quantity": 1,
                "variation_list": {},
                "metadata": {"i": "u"},
            },
            {"id": "1670029", "name": "Mug", "price": "5", "quantity": 2, "variation_list": {"Color": "Red"}},
        ],
        "order_shipments": [{"id": "1", "tracking_number": "T"}],
    }


def test_no_changes_means_no_paths() -> None:
    order = make_order()
    assert changed_fields(order, merge_order(order, {})) == []
    assert diff(order, merge_order(order, {})) == []


def test_top_level_and_nested_paths_are_sorted() -> None:
    order = make_order()
    after = merge_order(
        order,
        {
            "email": "x@y.z",
            "x_unknown": None,
            "folder_id": 65,
            "shipping": {"city": "Memphis", "company": "Acme"},
            "order_metadata": {"k": "v"},
            "checkout_data": {"Order Notes": None},
        },
    )
    assert changed_fields(order, after) == [
        "checkout_data.Order Notes",
        "email",
        "folder_id",
        "order_metadata.k",
        "shipping.city",
        "shipping.company",
        "x_unknown",
    ]


def test_item_paths() -> None:
    order = make_order()
    after = merge_order(
        order,
        {
            "order_items": [
                {"id": "1670028", "quantity": 4, "variation_list": {"Size": "L"}},
                {"id": "1670029", DELETE_MARKER: True},
                {"name": "New A"},
                {"name": "New B"},
            ]
        },
    )
    assert changed_fields(order, after) == [
        "order_items[+new]",
        "order_items[1670028].quantity",
        "order_items[1670028].variation_list.Size",
        "order_items[1670029]",
    ]


def test_diff_entries_carry_before_and_after() -> None:
    order = make_order()
    after = merge_order(
        order,
        {
            "shipping": {"city": "Memphis"},
            "order_items": [{"id": "1670029", DELETE_MARKER: True}, {"name": "New", "quantity": 1}],
        },
    )
    assert diff(order, after) == [
        {"path": "order_items[+new]", "before": None, "after": {"name": "New", "quantity": 1}},
        {"path": "order_items[1670029]", "before": order["order_items"][1], "after": None},
        {"path": "shipping.city", "before": "Nashville", "after": "Memphis"},
    ]


def test_diff_has_one_entry_per_new_item() -> None:
    order = make_order()
    after = merge_order(order, {"order_items": [{"name": "A"}, {"name": "B"}]})
    assert [entry["after"]["name"] for entry in diff(order, after)] == ["A", "B"]


def test_whole_address_added_or_removed_is_one_path() -> None:
    order = make_order()
    assert changed_fields(order, merge_order(order, {"shipping": None})) == ["shipping"]
    after = merge_order(order, {"return_address": {"name": "Doug"}})
    assert diff(order, after) == [{"path": "return_address", "before": None, "after": {"name": "Doug"}}]


def test_php_empty_list_map_compares_as_an_empty_map() -> None:
    order = make_order()
    order["order_metadata"] = []
    after = merge_order(order, {"order_metadata": {"k": 1}})
    assert diff(order, after) == [{"path": "order_metadata.k", "before": None, "after": 1}]


def test_item_that_got_an_id_upstream_shows_as_added() -> None:
    before = make_order()
    after = merge_order(before, {})
    after["order_items"].append({"id": "1670030", "name": "Server-assigned"})
    assert changed_fields(before, after) == ["order_items[1670030]"]


def test_shipments_and_history_are_not_reported() -> None:
    before = make_order()
    after = dict(before, order_shipments=[], order_history=[{"note": "x"}])
    assert changed_fields(before, after) == []


def test_changed_id_less_existing_items_are_reported_as_the_whole_list() -> None:
    before = {"order_items": [{"name": "legacy"}]}
    after = {"order_items": [{"name": "edited"}]}
    assert changed_fields(before, after) == ["order_items"]


def test_an_amount_spelled_as_a_string_is_no_change() -> None:
    """OrderDesk sends "price": "10" in one order and 19 in another (notes §1.3): 5 vs "5" is equal."""
    order = {**make_order(), "shipping_total": "5.95", "tax_total": 0}
    same = {
        "shipping_total": 5.95,
        "tax_total": "0.00",
        "order_items": [{"id": "1670028", "price": "19.0", "quantity": "1"}, {"id": "1670029", "price": 5.0}],
    }
    assert diff(order, merge_order(order, same)) == []
    changed = {"shipping_total": "6", "order_items": [{"id": "1670029", "price": "5.01", "quantity": "3"}]}
    assert changed_fields(order, merge_order(order, changed)) == [
        "order_items[1670029].price",
        "order_items[1670029].quantity",
        "shipping_total",
    ]


def test_only_amount_fields_compare_as_numbers() -> None:
    order = {**make_order(), "source_id": "0042", "shipping": {"postal_code": "02108"}}
    changes = {
        "source_id": 42,
        "shipping": {"postal_code": 2108},
        "order_items": [{"id": "1670029", "name": 5}],
    }
    assert changed_fields(order, merge_order(order, changes)) == [
        "order_items[1670029].name",
        "shipping.postal_code",
        "source_id",
    ]
    blank = {"order_items": [{"id": "1670028", "price": ""}], "handling_total": None}
    assert changed_fields({**order, "handling_total": 0}, merge_order(order, blank)) == [
        "handling_total",
        "order_items[1670028].price",
    ]
