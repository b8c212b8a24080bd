"""models.validate: lenient about what OrderDesk sends, precise about where a value is wrong."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from odmcp.errors import ErrorCode, ValidationFailed
from odmcp_orderdesk import models


def docs_order() -> dict[str, Any]:
    """Shaped like the docs' example, including OrderDesk's string-typed numbers and PHP `[]` maps."""
    return {
        "id": "26211",
        "email": "test@orderdesk.me",
        "quantity_total": 1,
        "weight_total": 1,
        "product_total": 10,
        "shipping_total": 11.17,
        "order_total": 21.17,
        "refund_total": 0.00,
        "email_count": "3",
        "folder_id": 1,
        "x_unknown": {"anything": [1, None]},
        "shipping": {"first_name": "Jimmy", "last_name": "Dean", "address3": "", "x_geo": 1},
        "customer": {"first_name": "Bingo", "last_name": "Little"},
        "return_address": {"title": "Acme", "name": "Doug Jones"},
        "checkout_data": {"Gift Message": "Happy Birthday"},
        "order_metadata": [],
        "discount_list": [{"name": "Discount", "code": "MN234DX78", "amount": "1.70"}],
        "order_notes": [{"date_added": "2014-10-09 23:12:05", "username": "CS", "content": "Called"}],
        "order_items": [
            {
                "id": "42286",
                "name": "Crazy Glue",
                "price": "10",
                "quantity": 1,
                "weight": 1,
                "variation_list": {"Size": "Small"},
                "metadata": [],
                "x_item": True,
            },
            {"id": "42287", "name": "Tape", "price": 19, "quantity": "2", "fulfillment_method": ""},
        ],
        "order_shipments": [
            {"id": "369", "tracking_number": "1Z1", "weight": "3.55", "cost": "", "order_items": ""}
        ],
        "order_history": [{"source_name": "API", "note": "My New Note", "date_added": "2015-10-28 23:14:30"}],
    }


def test_docs_shaped_order_passes_and_the_dict_is_untouched() -> None:
    order = docs_order()
    snapshot = msgspec.json.encode(order)
    view = models.validate(order, models.Order)
    assert isinstance(view, models.Order)
    assert view.order_items is not None and view.order_items[1].quantity == 2
    assert msgspec.json.encode(order) == snapshot  # validation never transforms the source dict


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda o: o["order_items"][1].update(quantity="abc"),
            "`$.order_items[1].quantity`: expected int, got str",
        ),
        (
            lambda o: o["order_items"][0].update(quantity=1.5),
            "`$.order_items[0].quantity`: expected int, got float",
        ),
        (
            lambda o: o["order_items"][0].update(price="abc"),
            "`$.order_items[0].price`: expected a number or a numeric",
        ),
        (lambda o: o["shipping"].update(city=5), "`$.shipping.city`: expected str, got int"),
        (lambda o: o.update(checkout_data=["x"]), "`$.checkout_data`: expected an object of key/value pairs"),
        (lambda o: o.update(folder_id="Prepared"), "`$.folder_id`: expected int, got str"),
        (lambda o: o["discount_list"][0].update(amount=True), "`$.discount_list[0].amount`: expected"),
        (lambda o: o.update(order_items={"id": "1"}), "`$.order_items`: expected array, got object"),
        (
            lambda o: o["order_shipments"][0].update(cost="free"),
            "`$.order_shipments[0].cost`: expected a number",
        ),
    ],
)
def test_errors_name_the_json_path(mutate: Any, message: str) -> None:
    order = docs_order()
    mutate(order)
    with pytest.raises(ValidationFailed) as info:
        models.validate(order, models.Order)
    assert info.value.message.startswith(message)
    assert info.value.code is ErrorCode.VALIDATION
    assert info.value.details["field"] == message.split("`")[1]


@pytest.mark.parametrize("price", ["10", "1.70", "", "-2", 19, 5.5, None])
def test_amounts_accept_numbers_and_numeric_strings(price: Any) -> None:
    models.validate({"price": price}, models.OrderItem)


@pytest.mark.parametrize("price", ["abc", "nan", "inf", "1,5", True, [1]])
def test_amounts_refuse_non_numbers(price: Any) -> None:
    with pytest.raises(ValidationFailed, match=r"`\$\.price`"):
        models.validate({"price": price}, models.OrderItem)


def test_root_prefixes_the_path() -> None:
    with pytest.raises(ValidationFailed) as info:
        models.validate({"quantity": "x"}, models.OrderItem, root="$.order_items[3]")
    assert info.value.message == "`$.order_items[3].quantity`: expected int, got str"


def test_non_object_reports_the_root() -> None:
    with pytest.raises(ValidationFailed) as info:
        models.validate([1], models.Order)
    assert info.value.message == "`$`: expected object, got array"


def test_inventory_and_shipment_models_accept_upstream_shapes() -> None:
    captured = {
        "id": 57838910,
        "name": "Bubble Gum",
        "code": "bubblegum",
        "price": 2,
        "cost": 1.4,
        "weight": 0.2,
        "stock": 20,
        "update_source": "Manual",
        "location": "",
        "manufacturer_sku": None,
        "metadata": [],
        "variation_list": [],
        "date_added": "2021-03-30 23:31:47",
    }
    models.validate(captured, models.InventoryItem)
    shipment = {"id": "437", "order_id": "29491", "weight": "3.55", "cost": "", "print_status": "0"}
    models.validate(shipment, models.Shipment)
    models.validate({"order_items": [{"id": "1", "quantity": 1}]}, models.Shipment)
    with pytest.raises(ValidationFailed, match=r"`\$\.stock`: expected int, got str"):
        models.validate({"stock": "many"}, models.InventoryItem)
