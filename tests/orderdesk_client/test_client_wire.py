"""wire.py: OrderDesk's PHP-isms are smoothed on read and restored on write (amounts go out as numbers)."""

from __future__ import annotations

import copy
from typing import Any

from odmcp_orderdesk.wire import (
    normalize_inventory_item,
    normalize_order,
    normalize_order_item,
    normalize_shipment,
    same_amount,
    sanitize_store,
    to_wire_inventory_item,
    to_wire_order,
    to_wire_order_item,
)


def raw_order() -> dict[str, Any]:
    return {
        "id": 925086,
        "source_id": 648714418,
        "customer_id": "8173875",
        "email_count": 3,
        "folder_id": "64",
        "checkout_data": [],
        "order_metadata": [],
        "discount_list": [],
        "order_notes": [],
        "price_level": "gold",  # unknown to us: must survive
        "shipping": {"first_name": "Jimmy", "last_name": "Dean", "delivery_window": "am"},
        "order_items": [
            {
                "id": 1670028,
                "name": "Widget",
                "price": "10",
                "variation_list": [],
                "metadata": [],
                "fulfillment_method": "",
                "category_code": "DEFAULT",
            },
            {"id": "1670029", "name": "Gadget", "variation_list": {"Size": "L"}, "metadata": {"image": "x"}},
        ],
        "order_shipments": [{"id": 437, "order_id": 925086, "store_id": 11, "tracking_number": "1Z"}],
        "order_history": [{"note": "n", "source_name": "API", "date_added": "2015-10-28 23:14:30"}],
    }


def test_read_turns_empty_arrays_into_maps_and_ids_into_strings() -> None:
    order = normalize_order(raw_order())
    assert order["checkout_data"] == {} and order["order_metadata"] == {}
    assert (order["id"], order["source_id"], order["email_count"]) == ("925086", "648714418", "3")
    assert order["folder_id"] == 64
    first, second = order["order_items"]
    assert first["id"] == "1670028" and first["variation_list"] == {} and first["metadata"] == {}
    assert second["variation_list"] == {"Size": "L"}
    assert order["order_shipments"][0] == {
        "id": "437",
        "order_id": "925086",
        "store_id": "11",
        "tracking_number": "1Z",
    }


def test_read_keeps_every_other_field_untouched() -> None:
    order = normalize_order(raw_order())
    assert order["price_level"] == "gold"
    assert order["shipping"]["delivery_window"] == "am"
    assert order["order_items"][0]["price"] == "10"  # numeric strings are not reinterpreted
    assert order["order_items"][0]["category_code"] == "DEFAULT"
    assert order["discount_list"] == [] and order["order_notes"] == []  # real lists stay lists
    assert set(order) == set(raw_order())


def test_read_does_not_mutate_its_input() -> None:
    raw = raw_order()
    before = copy.deepcopy(raw)
    normalize_order(raw)
    assert raw == before


def test_write_sends_empty_maps_as_arrays_and_drops_shipments_and_history() -> None:
    order = normalize_order(raw_order())
    wire = to_wire_order(order)
    assert wire["checkout_data"] == [] and wire["order_metadata"] == []
    assert wire["order_items"][0]["variation_list"] == [] and wire["order_items"][0]["metadata"] == []
    assert wire["order_items"][1]["variation_list"] == {"Size": "L"}
    assert "order_shipments" not in wire and "order_history" not in wire
    assert wire["price_level"] == "gold" and wire["shipping"]["delivery_window"] == "am"
    assert order["checkout_data"] == {} and "order_shipments" in order  # the input is untouched


def test_create_body_keeps_shipments_but_not_history() -> None:
    wire = to_wire_order(
        {"order_shipments": [{"tracking_number": "1Z"}], "order_history": []}, for_create=True
    )
    assert wire == {"order_shipments": [{"tracking_number": "1Z"}]}


def test_maps_with_content_and_odd_values_pass_through_both_ways() -> None:
    odd = {"checkout_data": ["not", "a", "map"], "order_metadata": None, "folder_id": "", "id": None}
    assert normalize_order(odd) == odd
    assert to_wire_order(odd) == odd


def test_item_and_shipment_helpers() -> None:
    assert normalize_order_item({"id": 5, "metadata": [], "extra": 1}) == {
        "id": "5",
        "metadata": {},
        "extra": 1,
    }
    assert to_wire_order_item({"id": "5", "variation_list": {}}) == {"id": "5", "variation_list": []}
    assert normalize_shipment({"id": 1, "order_id": 2, "weight": "3.55"}) == {
        "id": "1",
        "order_id": "2",
        "weight": "3.55",
    }


def test_inventory_item_id_is_an_int_and_maps_round_trip() -> None:
    item = normalize_inventory_item(
        {"id": "2510", "code": "3wolf-11", "metadata": [], "manufacturer_sku": None}
    )
    assert item == {"id": 2510, "code": "3wolf-11", "metadata": {}, "manufacturer_sku": None}
    assert to_wire_inventory_item(item)["metadata"] == []
    assert normalize_inventory_item({"id": 7})["id"] == 7


def test_store_loses_every_credential_but_keeps_folders() -> None:
    store: dict[str, Any] = {
        "id": 11,
        "name": "Test Store",
        "settings": {
            "timezone": "America/Los_Angeles",
            "api_key": "yourapikey",
            "smtp_host": "mail",
            "smtp_password": "pw",
            "mail_password": "pw2",
            "shipstation_api_key": "k",
        },
        "folders": {"21654": "New", "21655": "Prepared"},
    }
    clean = sanitize_store(store)
    assert clean["id"] == "11"
    assert clean["settings"] == {"timezone": "America/Los_Angeles"}
    assert clean["folders"] == {"21654": "New", "21655": "Prepared"}
    assert store["settings"]["api_key"] == "yourapikey"  # input untouched


def test_write_sends_every_amount_as_a_number() -> None:
    """Read as sent ("10" stays "10"); written as numbers, so a PUT never flips between the two."""
    order = {
        **normalize_order(raw_order()),
        "shipping_total": "5.95",
        "order_total": "21.17",
        "tax_total": "",  # blank stays blank (OrderDesk reads it as 0)
        "customer_id": "8173875",  # not an amount: an id that looks like a number
        "shipping": {"postal_code": "02108"},
    }
    order["order_items"][0].update(quantity="2", weight="0.40", code="0042")
    wire = to_wire_order(order)
    assert (wire["shipping_total"], wire["order_total"], wire["tax_total"]) == (5.95, 21.17, "")
    first = wire["order_items"][0]
    assert (first["price"], first["quantity"], first["weight"], first["code"]) == (10, 2, 0.4, "0042")
    assert wire["customer_id"] == "8173875" and wire["shipping"]["postal_code"] == "02108"
    assert order["order_items"][0]["price"] == "10"  # the input is untouched
    assert to_wire_order_item({"price": "12.99", "quantity": "3", "name": "7"}) == {
        "price": 12.99,
        "quantity": 3,
        "name": "7",
    }
    assert to_wire_order_item({"price": "ten", "quantity": "1e3"}) == {"price": "ten", "quantity": "1e3"}


def test_same_amount() -> None:
    assert same_amount(10, "10") and same_amount("10.00", 10.0) and same_amount(" 1.70", 1.7)
    assert same_amount(19.99, "19.99") and same_amount("abc", "abc") and same_amount(None, None)
    assert not same_amount(10, "10.01") and not same_amount("", 0) and not same_amount(True, "1")
    assert not same_amount("1e1", 10) and not same_amount(float("nan"), "nan") and not same_amount("٣", 3)
