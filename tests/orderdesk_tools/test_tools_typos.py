"""A typo never writes: undeclared arguments and undocumented fields are refused before any upstream write.

Every case goes through the SDK Client and asserts the code, the message and the sandbox's request log.
"""

from __future__ import annotations

from typing import Any

import pytest

from odmcp.middleware import error_of
from odmcp.refs import Ref
from odmcp.testing import connect

ORDER = "200001"
WITH_SHIPMENT = "200002"
INVENTORY = "2501"
WRITES = ("POST", "PUT", "DELETE")


def refused(result: Any) -> tuple[str, str]:
    """The code and the one-line text of an error result."""
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and "https://" not in text, text
    return str(error_of(result)["code"]), text


def writes(sandbox: Any) -> list[Any]:
    return [r for r in sandbox.requests() if r.method in WRITES]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_published_input_schemas_refuse_undeclared_arguments(gateway_factory: Any, mode: str) -> None:
    async with connect(gateway_factory(), mode=mode) as c:
        tools = (await c.list_tools()).tools
    assert len(tools) >= 20
    assert {t.name: t.input_schema.get("additionalProperties") for t in tools} == {
        t.name: False for t in tools
    }


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_misspelt_dry_run_is_refused_and_nothing_is_sent(
    gateway_factory: Any, orderdesk_sandbox: Any, mode: str
) -> None:
    before = orderdesk_sandbox.order(ORDER)
    async with connect(gateway_factory(), mode=mode) as c:
        result = await c.call_tool(
            "orders_update", {"order_id": ORDER, "changes": {"email": "x@example.com"}, "dryRun": True}
        )
    code, text = refused(result)
    assert code == "VALIDATION"
    assert text.startswith("VALIDATION: unknown argument 'dryRun'; did you mean 'dry_run'? — ")
    assert error_of(result)["details"] == {"field": "dryRun"}
    assert orderdesk_sandbox.requests() == []  # not even the GET
    assert orderdesk_sandbox.order(ORDER) == before


async def test_misspelt_list_filter_is_refused_instead_of_listing_everything(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_list", {"folder": 21655})
    code, text = refused(result)
    assert code == "VALIDATION" and "unknown argument 'folder'; did you mean 'folder_id'?" in text
    assert "folder_name" in text  # the hint lists what the tool takes
    assert orderdesk_sandbox.requests() == []


async def test_every_tool_refuses_an_undeclared_argument(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        results = {name: await c.call_tool(name, {"bogus_arg": 1}) for name in names}
    for name, result in results.items():
        code, text = refused(result)
        assert code == "VALIDATION" and "unknown argument 'bogus_arg'" in text, (name, text)
    assert orderdesk_sandbox.requests() == []


async def test_a_wrong_argument_type_is_one_validation_line_naming_the_argument(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    async with connect(gateway_factory()) as c:
        bad_limit = await c.call_tool("orders_list", {"limit": "two"})
        missing = await c.call_tool("orders_update", {"order_id": ORDER})
        bad_flag = await c.call_tool("orders_update", {"order_id": ORDER, "changes": {}, "dry_run": "maybe"})
    code, text = refused(bad_limit)
    assert code == "VALIDATION"
    assert text.startswith("VALIDATION: argument 'limit' should be an integer, got \"two\" — ")
    assert error_of(bad_limit)["details"] == {"field": "limit"}
    code, text = refused(missing)
    assert code == "VALIDATION" and "argument 'changes' is required" in text
    code, text = refused(bad_flag)
    assert code == "VALIDATION" and "argument 'dry_run' should be true or false, got \"maybe\"" in text
    assert orderdesk_sandbox.requests() == []


async def test_a_misspelt_order_field_is_refused_with_a_suggestion(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    before = orderdesk_sandbox.order(ORDER)
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_update", {"order_id": ORDER, "changes": {"emial": "a@b.c"}})
        preview = await c.call_tool(
            "orders_update", {"order_id": ORDER, "changes": {"emial": "a@b.c"}, "dry_run": True}
        )
    code, text = refused(result)
    assert code == "VALIDATION"
    assert "`$.emial`: order has no field 'emial'; did you mean 'email'?" in text
    assert "checkout_data" in text and "order_metadata" in text
    assert refused(preview)[1] == text
    assert writes(orderdesk_sandbox) == []  # the fetch ran, nothing was uploaded
    assert orderdesk_sandbox.order(ORDER) == before


async def test_a_field_the_fetched_order_carries_is_accepted_though_undocumented(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory()
    orderdesk_sandbox.state.store(orderdesk_sandbox.store_id).orders[ORDER]["x_new_api_field"] = "a"
    await gw.workflow.invalidate(Ref("demo", "order", ORDER), lists=False)
    async with connect(gw) as c:
        result = await c.call_tool("orders_update", {"order_id": ORDER, "changes": {"x_new_api_field": "b"}})
    assert not result.is_error, result.content[0].text
    assert result.structured_content["changed_fields"] == ["x_new_api_field"]
    assert writes(orderdesk_sandbox)[0].json["x_new_api_field"] == "b"


async def test_a_misspelt_item_field_inside_an_order_update_is_refused(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    item_id = orderdesk_sandbox.order(ORDER)["order_items"][0]["id"]
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(
            "orders_update",
            {"order_id": ORDER, "changes": {"order_items": [{"id": item_id, "quantiy": 3}]}},
        )
    code, text = refused(result)
    assert code == "VALIDATION"
    assert "`$.order_items[0].quantiy`: order item has no field 'quantiy'; did you mean 'quantity'?" in text
    assert "metadata" in text
    assert writes(orderdesk_sandbox) == []


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        (
            "orders_create",
            {"order": {"emial": "a@b.c", "order_items": [{"name": "W"}], "shipping": {"company": "C"}}},
            "`$.emial`: order has no field 'emial'; did you mean 'email'?",
        ),
        (
            "orders_create",
            {"order": {"order_items": [{"name": "W", "prise": 2}], "shipping": {"company": "C"}}},
            "`$.order_items[0].prise`: order item has no field 'prise'; did you mean 'price'?",
        ),
        (
            "order_items_add",
            {"order_id": ORDER, "item": {"name": "W", "quantitty": 2}},
            "`$.item.quantitty`: order item has no field 'quantitty'; did you mean 'quantity'?",
        ),
        (
            "shipments_add",
            {"order_id": ORDER, "shipment": {"tracking_number": "1Z", "carrier": "UPS"}},
            "`$.carrier`: shipment has no field 'carrier'; did you mean 'carrier_code'?",
        ),
        (
            "inventory_create",
            {"item": {"name": "Mug", "code": "MUG-9", "stok": 4}},
            "`$.stok`: inventory item has no field 'stok'; did you mean 'stock'?",
        ),
    ],
)
async def test_creates_refuse_undocumented_fields_before_any_request(
    gateway_factory: Any, orderdesk_sandbox: Any, tool: str, args: dict[str, Any], expected: str
) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(tool, args)
    code, text = refused(result)
    assert code == "VALIDATION" and expected in text, text
    assert orderdesk_sandbox.requests() == []


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        (
            "order_items_update",
            {"order_id": ORDER, "item_id": "", "item": {"prcie": 3}},
            "`$.item.prcie`: order item has no field 'prcie'; did you mean 'price'?",
        ),
        (
            "shipments_update",
            {"order_id": WITH_SHIPMENT, "shipment_id": "", "shipment": {"traking_number": "1Z"}},
            "`$.traking_number`: shipment has no field 'traking_number'; did you mean 'tracking_number'?",
        ),
        (
            "inventory_update",
            {"item_id": INVENTORY, "changes": {"locaton": "B"}},
            "`$.locaton`: inventory item has no field 'locaton'; did you mean 'location'?",
        ),
    ],
)
async def test_updates_refuse_undocumented_fields_after_the_fetch_and_before_any_write(
    gateway_factory: Any, orderdesk_sandbox: Any, tool: str, args: dict[str, Any], expected: str
) -> None:
    order = orderdesk_sandbox.order(args.get("order_id", ORDER))
    if "item_id" in args and args["item_id"] == "":
        args = {**args, "item_id": order["order_items"][0]["id"]}
    if "shipment_id" in args:
        args = {**args, "shipment_id": order["order_shipments"][0]["id"]}
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(tool, args)
    code, text = refused(result)
    assert code == "VALIDATION" and expected in text, text
    assert [r.method for r in orderdesk_sandbox.requests()] == ["GET"]
