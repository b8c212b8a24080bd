"""validate_new_order / validate_order_changes / validate_full_order / check_size."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from odmcp.errors import ValidationFailed
from odmcp_orderdesk.merge import DELETE_MARKER, merge_order
from odmcp_orderdesk.validate import (
    CHECKOUT_DATA_MAX_CHARS,
    NOTE_MAX_CHARS,
    ORDER_METADATA_MAX_CHARS,
    READ_ONLY_ORDER_FIELDS,
    check_size,
    json_size,
    validate_full_order,
    validate_new_order,
    validate_order_changes,
)


def new_order() -> dict[str, Any]:
    """The minimal create body from the notes (§5.5)."""
    return {
        "source_id": "A-1001",
        "source_name": "Order Desk",
        "email": "jane@example.com",
        "shipping_method": "Ground",
        "shipping": {
            "first_name": "Jane",
            "last_name": "Doe",
            "address1": "1 Main St",
            "city": "San Jose",
            "state": "CA",
            "postal_code": "95131",
            "country": "US",
        },
        "order_items": [
            {"name": "Widget", "code": "W-1", "price": 12.99, "quantity": 2, "category_code": "gift"}
        ],
    }


def fetched_order() -> dict[str, Any]:
    return {
        "id": "925086",
        "email": "myemail@server.com",
        "order_total": 19,
        "folder_id": 64,
        "shipping": {"first_name": "Jimmy", "last_name": "Dean", "city": "Nashville"},
        "checkout_data": {"Order Notes": "Please leave by back door"},
        "order_metadata": {"fraud_protection_score": 0},
        "order_notes": [],
        "order_items": [
            {"id": "1670028", "name": "Sub", "price": 19, "quantity": 1, "metadata": {"image": "u"}}
        ],
        "order_shipments": [],
    }


def message_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        call(*args, **kwargs)
    assert info.value.details["field"] in info.value.message  # the message always names the path
    return info.value.message


# --- create -----------------------------------------------------------------------------------------


def test_valid_create_body_is_returned_unchanged() -> None:
    body = new_order()
    before = copy.deepcopy(body)
    assert validate_new_order(body) is body
    assert body == before


def test_create_with_customer_company_only_and_string_price() -> None:
    body = new_order()
    del body["shipping"]
    body["customer"] = {"company": "Acme Manufacturing"}
    body["order_items"] = [{"code": "W-1", "price": "10"}]
    validate_new_order(body)


def test_create_read_only_fields_are_not_required() -> None:
    body = new_order()
    for field in ("id", "order_total", "date_added", "folder_id"):
        assert field not in body
    validate_new_order(body)


@pytest.mark.parametrize("body", [[], "order", None, 1])
def test_create_body_must_be_an_object(body: Any) -> None:
    assert message_of(validate_new_order, body).startswith("`$`: expected the order as an object")


@pytest.mark.parametrize("items", [None, [], "Widget"])
def test_create_needs_items(items: Any) -> None:
    body = new_order()
    body["order_items"] = items
    assert message_of(validate_new_order, body).startswith("`$.order_items`")


def test_create_missing_items_key() -> None:
    body = new_order()
    del body["order_items"]
    assert "at least one item" in message_of(validate_new_order, body)


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"price": 1}, "`$.order_items[1]`: a new item needs a name or a code"),
        ({"name": " ", "code": ""}, "`$.order_items[1]`: a new item needs a name or a code"),
        ({"name": "x", "quantity": 0}, "`$.order_items[1].quantity`: must be a whole number of at least 1"),
        ({"name": "x", "quantity": "abc"}, "`$.order_items[1].quantity`: expected int, got str"),
        ({"name": "x", "quantity": 2.5}, "`$.order_items[1].quantity`: expected int, got float"),
        ({"name": "x", "price": -1}, "`$.order_items[1].price`: must be a number of at least 0"),
        ({"name": "x", "price": "-0.5"}, "`$.order_items[1].price`: must be a number of at least 0"),
        ({"name": "x", "price": "abc"}, "`$.order_items[1].price`: expected a number"),
        ("Widget", "`$.order_items[1]`: expected object, got str"),
    ],
)
def test_create_item_rules_name_the_item(item: Any, path: str) -> None:
    body = new_order()
    body["order_items"].append(item)
    assert message_of(validate_new_order, body).startswith(path)


def test_create_accepts_integer_like_quantity_strings() -> None:
    body = new_order()
    body["order_items"][0]["quantity"] = "3"
    validate_new_order(body)


@pytest.mark.parametrize(
    "shipping",
    [{"first_name": "Jane"}, {"last_name": "Doe", "company": ""}, {}, None],
)
def test_create_needs_a_name_or_company(shipping: Any) -> None:
    body = new_order()
    body["shipping"] = shipping
    assert "first and last name or a company" in message_of(validate_new_order, body)


def test_create_folder_id_must_be_int() -> None:
    body = new_order()
    body["folder_id"] = 21655
    validate_new_order(body)
    body["folder_id"] = "21655"
    assert message_of(validate_new_order, body).startswith("`$.folder_id`: expected an integer folder id")
    body["folder_id"] = True
    assert message_of(validate_new_order, body).startswith("`$.folder_id`")


@pytest.mark.parametrize(
    ("field", "limit"),
    [("checkout_data", CHECKOUT_DATA_MAX_CHARS), ("order_metadata", ORDER_METADATA_MAX_CHARS)],
)
def test_create_map_size_limits(field: str, limit: int) -> None:
    body = new_order()
    body[field] = {"k": "x" * (limit - len('{"k":""}'))}
    assert json_size(body[field]) == limit
    validate_new_order(body)
    body[field]["k"] += "x"
    assert message_of(validate_new_order, body).startswith(f"`$.{field}`: is {limit + 1} characters as JSON")


def test_create_note_content_limit() -> None:
    body = new_order()
    body["order_notes"] = [{"content": "ok"}, {"username": "CS", "content": "n" * NOTE_MAX_CHARS}]
    validate_new_order(body)
    body["order_notes"][1]["content"] += "n"
    assert message_of(validate_new_order, body).startswith("`$.order_notes[1].content`: is 1801 characters")


def test_json_size_counts_like_php_json_encode() -> None:
    assert json_size({"a": "b"}) == len('{"a":"b"}')
    assert json_size({"url": "http://x/y"}) == len('{"url":"http:\\/\\/x\\/y"}')
    assert json_size({"é": 1}) == len('{"\\u00e9":1}')


def test_check_size_measures_strings_by_length() -> None:
    check_size("note", "x" * 10, 10)
    with pytest.raises(ValidationFailed, match="`note`: is 11 characters; OrderDesk allows at most 10"):
        check_size("note", "x" * 11, 10)
    with pytest.raises(ValidationFailed, match=r"`\$\.meta`: is 9 characters as JSON"):
        check_size("$.meta", {"a": "b"}, 8)


# --- changes ----------------------------------------------------------------------------------------


def test_valid_changes_pass_and_are_not_mutated() -> None:
    changes = {
        "email": "new@example.com",
        "shipping": {"city": "Memphis", "company": None},
        "return_address": None,
        "checkout_data": {"Gift": "yes"},
        "folder_id": 21655,
        "x_unknown": [1],
        "order_items": [
            {"id": 1670028, "quantity": 2, "metadata": {"image": None}},
            {"id": "1670029", DELETE_MARKER: True},
            {"name": "New", "price": "3.50"},
        ],
    }
    before = copy.deepcopy(changes)
    checked = validate_order_changes(changes)
    assert changes == before
    assert checked["order_items"][0]["id"] == "1670028"  # canonical string id for the merge
    assert {k: v for k, v in checked.items() if k != "order_items"} == {
        k: v for k, v in changes.items() if k != "order_items"
    }


@pytest.mark.parametrize("field", sorted(READ_ONLY_ORDER_FIELDS))
def test_read_only_fields_are_refused_with_what_to_do_instead(field: str) -> None:
    message = message_of(validate_order_changes, {field: 1})
    assert message.startswith(f"`$.{field}`: is read-only: ")
    assert message.endswith(READ_ONLY_ORDER_FIELDS[field])


def test_read_only_messages_point_elsewhere() -> None:
    assert "order_items" in READ_ONLY_ORDER_FIELDS["order_total"]
    assert "shipment tools" in READ_ONLY_ORDER_FIELDS["order_shipments"]
    assert "orders.add_note" in READ_ONLY_ORDER_FIELDS["order_history"]


@pytest.mark.parametrize("changes", [[], "x", None])
def test_changes_must_be_an_object(changes: Any) -> None:
    assert message_of(validate_order_changes, changes).startswith("`$`: expected the changes as an object")


def test_empty_changes_are_refused() -> None:
    assert "no changes given" in message_of(validate_order_changes, {})


@pytest.mark.parametrize(
    "field", ["shipping", "customer", "return_address", "checkout_data", "order_metadata"]
)
@pytest.mark.parametrize("value", ["Memphis", [], ["a"], 3])
def test_nested_objects_must_be_dicts_or_null(field: str, value: Any) -> None:
    message = message_of(validate_order_changes, {field: value})
    assert message.startswith(f"`$.{field}`: expected an object (or null to remove it)")


def test_folder_id_cannot_be_removed_or_a_string() -> None:
    assert message_of(validate_order_changes, {"folder_id": None}).startswith("`$.folder_id`")
    assert message_of(validate_order_changes, {"folder_id": "64"}).startswith("`$.folder_id`")


@pytest.mark.parametrize(
    ("items", "start"),
    [
        ({"id": "1"}, "`$.order_items`: expected a list of item changes"),
        (None, "`$.order_items`: expected a list of item changes, got null"),
        (["1670028"], "`$.order_items[0]`: expected an object, got str"),
        ([{"id": "../store"}], "`$.order_items[0].id`: must be digits only"),
        ([{"id": True}], "`$.order_items[0].id`: must be a numeric id string"),
        ([{"id": "1"}, {"id": 1}], "`$.order_items[1].id`: item 1 is named twice"),
        ([{DELETE_MARKER: True}], "`$.order_items[0].id`: removing an item needs its id"),
        ([{"id": "1", DELETE_MARKER: "yes"}], "`$.order_items[0]._delete`: expected true or false"),
        ([{"id": "1", "quantity": 0}], "`$.order_items[0].quantity`: must be a whole number of at least 1"),
        ([{"id": "1", "quantity": "x"}], "`$.order_items[0].quantity`: must be a whole number"),
        ([{"id": "1", "variation_list": []}], "`$.order_items[0].variation_list`: expected an object"),
        ([{"id": "1", "metadata": "x"}], "`$.order_items[0].metadata`: expected an object"),
        ([{"price": 1}], "`$.order_items[0]`: a new item needs a name or a code"),
        ([{"id": "1", "name": 5}], "`$.order_items[0].name`: expected str, got int"),
    ],
)
def test_item_changes_are_checked(items: Any, start: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_order_changes({"order_items": items})
    assert info.value.message.startswith(start)


def test_quantity_zero_message_explains_how_to_remove() -> None:
    message = message_of(validate_order_changes, {"order_items": [{"id": "1", "quantity": 0}]})
    assert f'"{DELETE_MARKER}": true' in message


def test_change_types_are_checked_with_paths() -> None:
    message = message_of(validate_order_changes, {"shipping": {"postal_code": 95131}})
    assert message == "`$.shipping.postal_code`: expected str, got int"
    message = message_of(validate_order_changes, {"order_notes": [{"content": 5}]})
    assert message.startswith("`$.order_notes[0].content`")


def test_change_note_size_is_checked() -> None:
    message = message_of(validate_order_changes, {"order_notes": [{"content": "x" * 1801}]})
    assert message.startswith("`$.order_notes[0].content`: is 1801 characters")


# --- full order -------------------------------------------------------------------------------------


def test_full_order_passes_after_merge() -> None:
    merged = merge_order(fetched_order(), validate_order_changes({"shipping": {"city": "Memphis"}}))
    validate_full_order(merged)


def test_full_order_catches_map_growth_from_key_by_key_merge() -> None:
    order = fetched_order()
    order["checkout_data"] = {f"k{i}": "x" * 300 for i in range(11)}
    validate_full_order(order)
    merged = merge_order(order, {"checkout_data": {"k11": "x" * 300}})
    assert message_of(validate_full_order, merged).startswith("`$.checkout_data`: is ")


def test_full_order_types_and_folder() -> None:
    order = fetched_order()
    order["order_items"][0]["quantity"] = "lots"
    assert message_of(validate_full_order, order) == "`$.order_items[0].quantity`: expected int, got str"
    order = fetched_order()
    order["folder_id"] = "64"
    assert message_of(validate_full_order, order).startswith("`$.folder_id`")
    assert message_of(validate_full_order, ["x"]).startswith("`$`")


def test_full_order_must_keep_an_item() -> None:
    merged = merge_order(fetched_order(), {"order_items": [{"id": "1670028", DELETE_MARKER: True}]})
    assert "no items left" in message_of(validate_full_order, merged)
