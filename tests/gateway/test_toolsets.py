"""Issue 14: toolsets choose tool families; plugins declare each tool's toolset; unknown names fail at
start-up with the list; ``mcp-gateway tools`` shows them."""

from __future__ import annotations

import os
from typing import Any

import pytest
from third_party_tools import OWN_PLUGINS

from odmcp import hookimpl
from odmcp.app import Gateway
from odmcp.cli import main
from odmcp.errors import ConfigError
from odmcp.testing import connect
from odmcp.tools import ToolRegistry, ToolTable

STORE = {"stores": [{"name": "main", "store_id": "1001", "api_key": "k"}]}
TOOLSETS = {
    "orders": {"orders_get", "orders_list", "orders_create", "orders_update", "orders_delete"},
    "items": {"order_items_add", "order_items_update", "order_items_delete"},
    "shipments": {"shipments_list", "shipments_add", "shipments_update", "shipments_delete"},
    "inventory": {"inventory_list", "inventory_get", "inventory_create", "inventory_update"},
    "store": {"store_get", "stores_list"},
    "bulk": {"orders_update_many", "orders_add_note_many", "shipments_add_many", "inventory_update_many"},
    "changes": {"changes_list", "changes_revert"},
}


def served(gw: Gateway) -> dict[str, str | None]:
    return {spec.name.replace(".", "_"): spec.toolset for spec in gw.served_tools()}


def test_every_orderdesk_tool_declares_its_toolset() -> None:
    gw = Gateway.from_config(None, env={}, overrides=STORE)
    own = [spec for spec in gw.tools if spec.plugin in OWN_PLUGINS]  # an installed plugin adds its own
    by_name = {spec.name.replace(".", "_"): spec.toolset for spec in own}
    for toolset, names in TOOLSETS.items():
        assert {n: by_name[n] for n in names} == dict.fromkeys(names, toolset)
    assert by_name["gateway_ping"] is None  # always served
    assert sorted({t.toolset for t in own if t.toolset}) == [
        "bulk",
        "changes",
        "inventory",
        "items",
        "orders",
        "shipments",
        "store",
    ]
    # by default every toolset but the opt-in changes toolset
    assert len([t for t in gw.served_tools() if t.plugin in OWN_PLUGINS]) == len(own) - 2 == 26


async def test_chosen_toolsets_are_all_that_is_listed_and_callable(gateway_factory: Any) -> None:
    gw = gateway_factory(overrides={"gateway.toolsets": ["orders", "store"]})
    async with connect(gw) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        hidden = await c.call_tool("shipments_list", {"order_id": "200001"})
        shown = await c.call_tool("orders_get", {"order_id": "200001"})
        unknown = await c.call_tool("orders_gett", {"order_id": "200001"})
    assert TOOLSETS["orders"] | TOOLSETS["store"] | {"gateway_ping"} <= names
    assert not names & (TOOLSETS["items"] | TOOLSETS["shipments"] | TOOLSETS["inventory"] | TOOLSETS["bulk"])
    assert hidden.content[0].text == (
        "VALIDATION: tool 'shipments_list' is not served here: its toolset 'shipments' is not in "
        "gateway.toolsets — Use the tools tools/list shows (an operator can add the toolset); nothing was run."
    )
    assert unknown.content[0].text == (
        "VALIDATION: unknown tool 'orders_gett'; did you mean 'orders_get'? — Call one of the tools "
        "tools/list shows; nothing was run."
    )
    assert not shown.is_error


def test_gateway_toolsets_comes_from_the_environment_too() -> None:
    gw = Gateway.from_config(None, env={"GATEWAY_TOOLSETS": " bulk, orders ,"}, overrides=STORE)
    assert gw.config.gateway.toolsets == ["bulk", "orders"]
    assert set(served(gw).values()) == {"bulk", "orders", None}


@pytest.mark.parametrize(
    ("toolsets", "message"),
    [
        (["orders", "shipment"], "unknown toolset 'shipment'; did you mean 'shipments'?"),
        (
            ["everything"],
            "unknown toolset 'everything' (toolsets: all, default, bulk, changes, inventory, items, orders,",
        ),
        ([], "key gateway.toolsets: empty; list toolsets, 'default' or 'all'"),
    ],
)
def test_an_unknown_toolset_fails_at_start_up_with_the_list(toolsets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="key gateway.toolsets") as err:
        Gateway.from_config(None, env={}, overrides={**STORE, "gateway.toolsets": toolsets})
    assert message in str(err.value)


def test_a_plugin_tool_joins_its_declared_toolset() -> None:
    table = ToolTable(toolset="pages")

    @table.tool("pages.get", title="Get a page", read_only=True)
    async def pages_get(page_id: str) -> dict[str, Any]:
        """Get a page. Cost: 1 request. Errors: NOT_FOUND."""
        return {"id": page_id}

    @table.tool("pages.ping", title="Ping pages", read_only=True, toolset=None)
    async def pages_ping() -> dict[str, Any]:
        """Check the pages service. Cost: 0 requests."""
        return {}

    class Pages:
        @hookimpl
        def gateway_register_tools(self, register: Any) -> None:
            table.register_into(register)

    gw = Gateway.from_config(
        None, env={}, overrides={**STORE, "gateway.toolsets": ["pages"]}, extra_plugins=[Pages()]
    )
    assert served(gw) == {"gateway_ping": None, "pages_get": "pages", "pages_ping": None}


@pytest.mark.parametrize("toolset", ["Orders", "all", "two words", ""])
def test_a_toolset_name_is_one_lowercase_word(toolset: str) -> None:
    async def fn() -> None:
        """Does nothing. Cost: 0 requests."""

    with pytest.raises(ValueError, match="toolset"):
        ToolRegistry().register(fn, name="x.y", read_only=True, toolset=toolset)


def test_the_tools_command_shows_toolsets(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    for k in list(os.environ):
        if k.startswith(("GATEWAY_", "ORDERDESK_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("GATEWAY_TOOLSETS", "orders,bulk")
    assert main(["tools", "--sandbox"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert (
        header == "toolsets: bulk, changes, inventory, items, orders, shipments, store (served: orders, bulk)"
    )
    by_name = {line.split()[0]: line.split(None, 2)[1:] for line in lines}
    assert by_name["orders_get"][0] == "orders" and "off" not in by_name["orders_get"][1]
    assert by_name["orders_update_many"][0] == "bulk"
    assert by_name["gateway_ping"][0] == "(always)"
    assert by_name["shipments_add"][0] == "shipments"
    assert by_name["shipments_add"][1].endswith("(off: not in gateway.toolsets)")


def test_the_instructions_name_stores_list_only_where_it_is_served(gateway_factory: Any) -> None:
    from odmcp.server import instructions

    assert "stores_list" in instructions(gateway_factory())
    text = instructions(gateway_factory(overrides={"gateway.toolsets": ["orders"]}))
    assert "stores_list" not in text and "OrderDesk" in text
