"""Two store types in one gateway: OrderDesk stores (the sandbox) and ``wiki`` stores (tests/toy_store.py,
a third party's plugin). Real MCP client calls; cached reads and conflict retries on both; each tool's
``store`` argument lists the stores of its own type; plugins that clash are named in one line."""

from __future__ import annotations

from typing import Any

import pytest
from toy_store import SecondWiki, WikiPlugin

from odmcp.app import Gateway
from odmcp.errors import ConfigError, PluginClash
from odmcp.middleware import error_of
from odmcp.server import instructions
from odmcp.testing import connect

pytestmark = pytest.mark.sandbox(multi_store=True)

WIKIS = [
    {"type": "wiki", "name": "handbook", "store_id": "h1", "title": "Returns"},
    {"type": "wiki", "name": "faq", "store_id": "f1", "title": "Shipping"},
]


def mixed(gateway_factory: Any, gateway_overrides: dict[str, Any], toy: WikiPlugin, **extra: Any) -> Gateway:
    stores = [*gateway_overrides["stores"], *WIKIS]
    return gateway_factory(plugins=[toy], overrides={"stores": stores, **extra})


async def test_orderdesk_and_wiki_stores_serve_side_by_side(
    gateway_factory: Any, gateway_overrides: dict[str, Any], orderdesk_sandbox: Any
) -> None:
    toy = WikiPlugin()
    gw = mixed(gateway_factory, gateway_overrides, toy)
    assert [s.store_type for s in gw.config.stores] == ["orderdesk", "orderdesk", "wiki", "wiki"]
    assert "Wiki pages" in instructions(gw) and "OrderDesk" in instructions(gw)
    order_id = str(orderdesk_sandbox.orders("2002")[0]["id"])
    async with connect(gw) as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
        # each tool offers the stores of its own type, and that type's default
        assert listed["orders_get"].input_schema["properties"]["store"] == {
            "type": "string",
            "enum": ["demo", "store2"],
            "default": "demo",
        }
        assert listed["wiki_get"].input_schema["properties"]["store"] == {
            "type": "string",
            "enum": ["handbook", "faq"],
            "default": "handbook",
        }
        assert "store" not in listed["gateway_ping"].input_schema.get("properties", {})

        # cached reads on both types
        orderdesk_sandbox.clear_requests()
        for _ in range(2):
            order = await c.call_tool("orders_get", {"order_id": order_id, "store": "store2"})
            page = await c.call_tool("wiki_get", {"page_id": "1", "store": "faq"})
        assert order.structured_content["order"]["id"] == order_id
        assert page.structured_content["title"] == "Shipping"
        assert len(orderdesk_sandbox.requests(path_prefix=f"/orders/{order_id}")) == 1
        assert toy.fetches == 1

        # conflict retries on both types: a 409 on the OrderDesk PUT, a concurrent edit of the page
        orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{order_id}$", status=409, times=1)
        toy.edit_after_fetch = 1
        od = await c.call_tool(
            "orders_update",
            {"order_id": order_id, "store": "store2", "changes": {"order_metadata": {"k": "v"}}},
        )
        wiki = await c.call_tool(
            "wiki_update", {"page_id": "1", "store": "faq", "changes": {"title": "Delivery"}}
        )
        assert not od.is_error, od.structured_content
        assert od.structured_content["attempts"] == 2
        assert wiki.structured_content["attempts"] == 2
        assert toy.pages["f1"]["1"]["title"] == "Delivery" and toy.pages["f1"]["1"]["views"] == 7
        stored = orderdesk_sandbox.orders("2002")[0]
        assert stored["order_metadata"]["k"] == "v"
        # the writes invalidated the cached copies: the next reads show the new values
        again = await c.call_tool("wiki_get", {"page_id": "1", "store": "faq"})
        assert again.structured_content["title"] == "Delivery"
        re_read = await c.call_tool("orders_get", {"order_id": order_id, "store": "store2"})
        assert re_read.structured_content["order"]["order_metadata"]["k"] == "v"

        # a store of the other type is refused, naming the stores this tool works on
        wrong = await c.call_tool("wiki_get", {"page_id": "1", "store": "demo"})
        assert error_of(wrong)["code"] == "VALIDATION"
        assert "'demo' is of type 'orderdesk'" in error_of(wrong)["message"]
        assert "handbook, faq" in error_of(wrong)["message"]
        wrong = await c.call_tool("orders_get", {"order_id": order_id, "store": "faq"})
        assert error_of(wrong)["code"] == "VALIDATION" and "demo, store2" in error_of(wrong)["message"]
        # without store, each type's default store
        handbook = await c.call_tool("wiki_get", {"page_id": "1"})
        assert handbook.structured_content["title"] == "Returns"
        # stores_list (an OrderDesk tool) lists only OrderDesk stores
        stores = await c.call_tool("stores_list", {})
        assert [s["name"] for s in stores.structured_content["stores"]] == ["demo", "store2"]


async def test_a_store_type_without_a_configured_store_serves_no_tools(gateway_factory: Any) -> None:
    gw = gateway_factory(plugins=[WikiPlugin()])  # the plugin is installed, no wiki store configured
    assert not any(t.name.startswith("wiki.") for t in gw.served_tools())
    assert "Wiki pages" not in instructions(gw)
    async with connect(gw) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        refused = await c.call_tool("wiki_get", {"page_id": "1"})
    assert "wiki_get" not in names and "orders_get" in names
    assert "no 'wiki' store is configured" in error_of(refused)["message"]


def test_an_entry_without_a_type_gets_the_type_whose_fields_it_uses(
    gateway_factory: Any, gateway_overrides: dict[str, Any]
) -> None:
    # OrderDesk entries (they have api_key) and the wiki entry (it has title) need no type
    stores = [{k: v for k, v in s.items() if k != "type"} for s in gateway_overrides["stores"]]
    stores.append({"name": "wiki", "store_id": "w1", "title": "x"})
    gw = gateway_factory(plugins=[WikiPlugin()], overrides={"stores": stores})
    assert [s.store_type for s in gw.config.stores] == ["orderdesk", "orderdesk", "wiki"]
    # fields both types have can't tell: the entry is named, with the types to choose from
    with pytest.raises(ConfigError) as err:
        gateway_factory(plugins=[WikiPlugin()], overrides={"stores": [{"name": "s", "store_id": "1"}]})
    assert str(err.value).endswith(
        "key stores[0]: no type, and several store types are installed; add type = one of 'orderdesk', 'wiki'"
    )
    with pytest.raises(
        ConfigError, match=r"stores\[0\]\.type: unknown store type 'wikki'; did you mean 'wiki'"
    ):
        gateway_factory(plugins=[WikiPlugin()], overrides={"stores": [{**WIKIS[0], "type": "wikki"}]})
    # the entry is validated against its type's model, and the error names both
    with pytest.raises(
        ConfigError, match=r"key stores\[0\]\.title: expected str, got int \(a 'wiki' store\)"
    ):
        gateway_factory(plugins=[WikiPlugin()], overrides={"stores": [{**WIKIS[0], "title": 3}]})
    with pytest.raises(ConfigError, match=r"key stores\[0\]\.api_key: unknown key"):
        gateway_factory(plugins=[WikiPlugin()], overrides={"stores": [{**WIKIS[0], "api_key": "k"}]})


def test_two_types_sharing_a_store_id_are_refused(
    gateway_factory: Any, gateway_overrides: dict[str, Any]
) -> None:
    clash = {**WIKIS[0], "store_id": gateway_overrides["stores"][0]["store_id"]}
    with pytest.raises(ConfigError, match="is used by stores of types orderdesk, wiki"):
        gateway_factory(plugins=[WikiPlugin()], overrides={"stores": [*gateway_overrides["stores"], clash]})


def test_two_plugins_registering_one_store_type_are_named_in_one_line(gateway_factory: Any) -> None:
    with pytest.raises(PluginClash) as err:
        gateway_factory(plugins=[WikiPlugin(), SecondWiki()])
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        "plugins 'WikiPlugin' and 'SecondWiki' both register store type 'wiki'; keep one of them: "
        "disable 'SecondWiki' with gateway.disabled_plugins = [\"SecondWiki\"] in the config file, "
        "or GATEWAY_DISABLED_PLUGINS=SecondWiki"
    )
    # the setting the line gives works, as a variable as well as in the file
    gw = gateway_factory(plugins=[WikiPlugin(), SecondWiki()], env={"GATEWAY_DISABLED_PLUGINS": "SecondWiki"})
    assert not gw.pm.has_plugin("SecondWiki") and gw.tools.get("wiki.get") is not None
    gw = gateway_factory(
        plugins=[WikiPlugin(), SecondWiki()], overrides={"gateway.disabled_plugins": ["SecondWiki"]}
    )
    assert not gw.pm.has_plugin("SecondWiki")


def test_two_plugins_registering_one_tool_are_named_in_one_line(gateway_factory: Any) -> None:
    from odmcp import hookimpl

    class Pages:
        @hookimpl
        def gateway_register_tools(self, register: Any) -> None:
            async def get(order_id: str) -> dict[str, Any]:
                """A second orders.get."""
                return {}

            register(get, name="orders.get", read_only=True)

    with pytest.raises(PluginClash) as err:
        gateway_factory(plugins=[Pages()])
    # the built-in OrderDesk plugin ships with the gateway: the line suggests disabling the other one
    assert str(err.value).startswith("plugins 'orderdesk' and 'Pages' both register the tool 'orders.get'")
    assert "GATEWAY_DISABLED_PLUGINS=Pages" in str(err.value)


def test_the_command_line_shows_a_clash_as_its_one_line_and_the_variable_clears_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from odmcp.cli import main

    for name in ("GATEWAY_CONFIG", "GATEWAY_DISABLED_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["plugins"], plugins=[WikiPlugin(), SecondWiki()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "mcp-gateway: error: plugins 'WikiPlugin' and 'SecondWiki' both register store type"
    )
    monkeypatch.setenv("GATEWAY_DISABLED_PLUGINS", "SecondWiki")
    assert main(["plugins"], plugins=[WikiPlugin(), SecondWiki()]) == 0
    out = capsys.readouterr().out
    assert "WikiPlugin" in out and "SecondWiki" not in out


async def test_orderdesk_declines_the_orders_of_a_store_of_another_type(
    gateway_overrides: dict[str, Any], tmp_path: Any
) -> None:
    """The wiki plugin calls its pages ``order`` too and is registered before OrderDesk, so OrderDesk's
    hooks are asked first: they decline every ref of a wiki store, and the host's defaults merge."""
    import odmcp_cache_memory.plugin as memory_cache
    import odmcp_journal_sqlite.plugin as journal
    import odmcp_orderdesk.plugin as orderdesk
    from odmcp.refs import Ref

    toy = WikiPlugin(kinds=("order",))
    gw = Gateway.from_config(
        None,
        env={},
        overrides={
            "stores": [*gateway_overrides["stores"], *WIKIS],
            "audit.path": str(tmp_path / "audit.jsonl"),
            "journal.path": str(tmp_path / "journal.sqlite"),
        },
        # without entry points the host has no journal either: every write is journaled
        extra_plugins=[toy, orderdesk, memory_cache, journal],
        load_entrypoints=False,
    )
    names = [name for name, _ in gw.pm.list_name_plugin()]
    assert names.index("WikiPlugin") < names.index("odmcp_orderdesk.plugin")
    ref = Ref("faq", "order", "1")
    await gw.startup()
    try:
        page = await gw.hooks.fetch(ref)
        merged = gw.hooks.merge(ref, page, {"title": "Delivery", "views": None})
        changes = gw.hooks.diff(ref, page, merged)
        stored = await gw.hooks.upload(ref, merged, page)
        verdict = gw.hooks.reconcile(ref, page, merged, stored)
    finally:
        await gw.shutdown()
    assert page == {"id": "1", "title": "Shipping", "version": 1}  # the wiki's, not an OrderDesk order
    assert merged == {"id": "1", "title": "Delivery", "version": 1}  # the host's shallow merge
    assert changes == [{"path": "title", "before": "Shipping", "after": "Delivery"}]
    assert stored["version"] == 2 and verdict == "applied"


def test_the_tools_command_shows_a_type_without_a_store_as_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from odmcp.cli import main

    for name in ("GATEWAY_CONFIG", "GATEWAY_TOOLSETS", "GATEWAY_DISABLED_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORDERDESK_STORE_ID", "1")
    monkeypatch.setenv("ORDERDESK_API_KEY", "k")
    assert main(["tools"], plugins=[WikiPlugin()]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert "wiki" not in header  # not a toolset this gateway can serve
    by_name = {line.split()[0]: line for line in lines}
    assert by_name["wiki_get"].endswith("(off: no 'wiki' store configured)")
    assert "off" not in by_name["orders_get"]
