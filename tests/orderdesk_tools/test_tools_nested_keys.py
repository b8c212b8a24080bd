"""A misspelt key inside an address or a list entry is refused, never written as "Updated.".

OrderDesk drops a key it doesn't know at any depth, so ``shipping.fist_name`` would "succeed" and
change nothing. Every case goes through the SDK Client and asserts the one-line error, the sandbox's
request log (no write) and the order upstream. The maps OrderDesk leaves open stay open.
"""

from __future__ import annotations

from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.refs import Ref
from odmcp.testing import connect

ORDER = "200001"
WRITES = ("POST", "PUT", "DELETE")
NEW_ORDER: dict[str, Any] = {"order_items": [{"name": "Widget"}], "shipping": {"company": "Acme"}}


def refused(result: Any) -> str:
    """The one-line text of a VALIDATION result."""
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and error_of(result)["code"] == "VALIDATION", text
    return str(text)


def writes(sandbox: Any) -> list[Any]:
    return [r for r in sandbox.requests() if r.method in WRITES]


@pytest.mark.parametrize(
    ("changes", "field", "meant"),
    [
        ({"shipping": {"fist_name": "Jo"}}, "shipping.fist_name", "shipping.first_name"),
        ({"customer": {"postcode": "55555"}}, "customer.postcode", "customer.postal_code"),
        ({"return_address": {"adress1": "1 Main"}}, "return_address.adress1", "return_address.address1"),
        (
            {"discount_list": [{"nmae": "Promo", "amount": 1}]},
            "discount_list[0].nmae",
            "discount_list[0].name",
        ),
        (
            {"order_notes": [{"content": "ok"}, {"contnet": "Called"}]},
            "order_notes[1].contnet",
            "order_notes[1].content",
        ),
    ],
)
async def test_a_misspelt_nested_key_in_an_update_is_refused_and_nothing_is_written(
    gateway_factory: Any, orderdesk_sandbox: Any, changes: dict[str, Any], field: str, meant: str
) -> None:
    before = orderdesk_sandbox.order(ORDER)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_update", {"order_id": ORDER, "changes": changes})
        preview = await c.call_tool("orders_update", {"order_id": ORDER, "changes": changes, "dry_run": True})
        after = await c.call_tool("orders_get", {"order_id": ORDER})
    text = refused(result)
    assert text.startswith(f"VALIDATION: unknown field '{field}'; did you mean '{meant}'? — "), text
    assert "nothing was written" in text
    assert error_of(result)["details"] == {"field": f"$.{field}"}
    assert refused(preview) == text
    assert writes(orderdesk_sandbox) == []
    assert orderdesk_sandbox.order(ORDER) == before
    read = after.structured_content["order"]  # the next read shows the order as it was
    assert read["date_updated"] == before["date_updated"]
    assert {k: read[k] for k in changes} == {k: before[k] for k in changes}


async def test_zip_on_create_is_refused_before_any_request(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    order = {**NEW_ORDER, "shipping": {"company": "Acme", "zip": "95131"}}
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_create", {"order": order})
    text = refused(result)
    assert text.startswith(
        "VALIDATION: unknown field 'shipping.zip'; did you mean 'shipping.postal_code'? — shipping takes only: "
    ), text
    assert orderdesk_sandbox.requests() == []


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (
            {**NEW_ORDER, "customer": {"first_name": "Jo", "last_name": "Doe", "adress2": "x"}},
            "unknown field 'customer.adress2'; did you mean 'customer.address2'?",
        ),
        (
            {**NEW_ORDER, "discount_list": [{"name": "Promo", "amout": 2}]},
            "unknown field 'discount_list[0].amout'",
        ),
        ({**NEW_ORDER, "order_notes": [{"contnet": "hi"}]}, "unknown field 'order_notes[0].contnet'"),
        # not a typo but the wrong place: OrderDesk's customer address has no address3
        (
            {**NEW_ORDER, "customer": {"company": "Acme", "address3": "x"}},
            "unknown field 'customer.address3' — ",
        ),
    ],
)
async def test_create_refuses_undocumented_nested_keys(
    gateway_factory: Any, orderdesk_sandbox: Any, order: dict[str, Any], expected: str
) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_create", {"order": order})
    assert expected in refused(result)
    assert orderdesk_sandbox.requests() == []


async def test_the_open_maps_take_any_key(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    item_id = orderdesk_sandbox.order(ORDER)["order_items"][0]["id"]
    changes = {
        "checkout_data": {"Gift Mesage": "Happy Birthday"},
        "order_metadata": {"frad_score": 3},
        "order_items": [{"id": item_id, "metadata": {"imgae": "u"}, "variation_list": {"Sise": "L"}}],
        "shipping": {"first_name": "Jo"},
        "discount_list": [{"name": "Promo", "code": "P1", "amount": "1.50"}],
        "order_notes": [{"username": "cs", "content": "Called"}],
    }
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_update", {"order_id": ORDER, "changes": changes})
    assert not result.is_error, result.content[0].text
    upstream = orderdesk_sandbox.order(ORDER)
    assert upstream["checkout_data"]["Gift Mesage"] == "Happy Birthday"
    assert upstream["order_metadata"]["frad_score"] == 3
    item = next(i for i in upstream["order_items"] if i["id"] == item_id)
    assert item["metadata"]["imgae"] == "u" and item["variation_list"]["Sise"] == "L"
    assert upstream["shipping"]["first_name"] == "Jo"
    assert [(d["name"], d["amount"]) for d in upstream["discount_list"]] == [("Promo", "1.50")]
    assert [n["content"] for n in upstream["order_notes"]] == ["Called"]


async def test_a_nested_key_the_fetched_order_carries_is_accepted(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """A key a newer API version added shows on the fetched order: changing it is allowed."""
    gw = gateway_factory()
    orderdesk_sandbox.state.store(orderdesk_sandbox.store_id).orders[ORDER]["shipping"]["x_geo"] = "a"
    await gw.workflow.invalidate(Ref("demo", "order", ORDER), lists=False)
    async with connect(gw) as c:
        result = await c.call_tool(
            "orders_update", {"order_id": ORDER, "changes": {"shipping": {"x_geo": "b"}}}
        )
    assert not result.is_error, result.content[0].text
    assert result.structured_content["changed_fields"] == ["shipping.x_geo"]
    assert writes(orderdesk_sandbox)[0].json["shipping"]["x_geo"] == "b"
