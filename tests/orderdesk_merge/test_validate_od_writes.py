"""validate_note / validate_inventory_item / validate_shipment."""

from __future__ import annotations

from typing import Any

import pytest

from odmcp.errors import ValidationFailed
from odmcp_orderdesk.merge import merge_inventory_item
from odmcp_orderdesk.validate import (
    NOTE_MAX_CHARS,
    validate_inventory_item,
    validate_note,
    validate_shipment,
)


def message_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        call(*args, **kwargs)
    assert info.value.details["field"] in info.value.message
    return info.value.message


def test_note_ok_at_the_limit() -> None:
    assert validate_note("Customer called") == "Customer called"
    assert validate_note("n" * NOTE_MAX_CHARS) == "n" * NOTE_MAX_CHARS


@pytest.mark.parametrize(
    ("note", "start"),
    [
        ("", "`$.note`: must not be empty"),
        ("  \n", "`$.note`: must not be empty"),
        (None, "`$.note`: expected a string, got null"),
        (5, "`$.note`: expected a string, got int"),
        ("n" * (NOTE_MAX_CHARS + 1), "`$.note`: is 1801 characters; OrderDesk allows at most 1800"),
    ],
)
def test_note_refusals(note: Any, start: str) -> None:
    assert message_of(validate_note, note).startswith(start)


# --- inventory --------------------------------------------------------------------------------------


def test_inventory_create_ok() -> None:
    body = {"name": "Three Wolves T-Shirt", "code": "3wolf-XX", "price": 11.00, "stock": 52, "location": "A1"}
    assert validate_inventory_item(body, creating=True) is body


@pytest.mark.parametrize(
    ("body", "start"),
    [
        ({"code": "c"}, "`$.name`: is required"),
        ({"name": "n", "code": " "}, "`$.code`: is required"),
        ({"id": 5, "name": "n", "code": "c"}, "`$.id`: is read-only"),
        ({"name": "n", "code": "c", "date_added": "2021-01-01 00:00:00"}, "`$.date_added`: is read-only"),
        ({"name": "n", "code": "c", "price": -1}, "`$.price`: must be a number of at least 0"),
        ({"name": "n", "code": "c", "cost": "x"}, "`$.cost`: expected a number"),
        ({"name": "n", "code": "c", "stock": "lots"}, "`$.stock`: expected int, got str"),
        ({"name": "n", "code": "c", "metadata": "x"}, "`$.metadata`: expected"),
        ([], "`$`: expected the inventory item as an object"),
    ],
)
def test_inventory_create_refusals(body: Any, start: str) -> None:
    assert message_of(validate_inventory_item, body, creating=True).startswith(start)


def test_inventory_update_changes_and_merged_record() -> None:
    current = {"id": 2510, "name": "Shirt", "code": "3wolf-11", "price": 10, "stock": 48, "metadata": []}
    changes = {"stock": 50, "metadata": {"bin": "7"}}
    assert validate_inventory_item(changes, creating=False) is changes
    validate_inventory_item(merge_inventory_item(current, changes), creating=False)


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"name": None}, "`$.name`: is required and must not be blank"),
        ({"code": ""}, "`$.code`: is required and must not be blank"),
        ({"id": "../x"}, "`$.id`: must be digits only"),
        ({"price": "-3"}, "`$.price`: must be a number of at least 0"),
        ({"variation_list": ["x"]}, "`$.variation_list`: expected an object of key/value pairs"),
    ],
)
def test_inventory_update_refusals(changes: Any, start: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_inventory_item(changes, creating=False)
    assert info.value.message.startswith(start)


# --- shipments --------------------------------------------------------------------------------------


def test_shipment_ok() -> None:
    body = {
        "tracking_number": "1Z2398479234",
        "carrier_code": "UPS",
        "shipment_method": "Ground",
        "weight": "3.55",
    }
    assert validate_shipment(body) is body
    validate_shipment({"tracking_number": "n/a", "cost": "", "order_items": [{"id": "1", "quantity": 1}]})
    validate_shipment({"carrier_code": "USPS"}, creating=False)


@pytest.mark.parametrize(
    ("body", "start"),
    [
        ({"carrier_code": "UPS"}, '`$.tracking_number`: is required; use "n/a"'),
        ({"tracking_number": ""}, "`$.tracking_number`: is required"),
        ({"tracking_number": 123}, "`$.tracking_number`: expected str, got int"),
        ({"tracking_number": "T", "weight": "heavy"}, "`$.weight`: expected a number"),
        ({"tracking_number": "T", "cost": -2}, "`$.cost`: must be a number of at least 0"),
        ("1Z", "`$`: expected the shipment as an object"),
    ],
)
def test_shipment_refusals(body: Any, start: str) -> None:
    assert message_of(validate_shipment, body).startswith(start)


def test_shipment_update_may_not_blank_the_tracking_number() -> None:
    assert message_of(validate_shipment, {"tracking_number": " "}, creating=False).startswith(
        "`$.tracking_number`"
    )
