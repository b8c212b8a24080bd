"""The MCP server in-process through the SDK Client, in both protocol eras."""

from __future__ import annotations

from typing import Any

import pytest
from third_party_tools import ThirdPartyTool, own_tools

from odmcp import hookimpl
from odmcp.errors import AuthError
from odmcp.middleware import error_of
from odmcp.plugins import describe_plugins
from odmcp.testing import connect

WRITE_TOOLS = {
    "changes_revert",
    "orders_update_many",
    "orders_add_note_many",
    "shipments_add_many",
    "inventory_update_many",
    "orders_create",
    "orders_update",
    "orders_delete",
    "orders_move",
    "orders_add_note",
    "order_items_add",
    "order_items_update",
    "order_items_delete",
    "shipments_add",
    "shipments_update",
    "shipments_delete",
    "inventory_create",
    "inventory_update",
    "inventory_delete",
}
MODES = ["auto", "legacy"]


class Crasher:
    """A plugin whose tool raises an unexpected exception with a secret in its text."""

    @hookimpl
    def gateway_register_tools(self, register: Any) -> None:
        async def boom() -> dict[str, Any]:
            """Always crashes."""
            raise RuntimeError("secret internal detail")

        register(boom, name="test.boom", read_only=True)


class Policy:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> None:
        if call.name == "orders.get" and call.arguments.get("order_id") == "999999":
            raise AuthError("policy: order 999999 is off limits")

    @hookimpl
    def gateway_tool_post_invoke(self, call: Any, outcome: str) -> None:
        self.seen.append((call.name, outcome))


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_explicit_annotations_and_schemas(
    gateway_factory: Any, mode: str
) -> None:
    gw = gateway_factory(plugins=[ThirdPartyTool()])
    async with connect(gw, mode=mode) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    tools = {name: tool for name, tool in listed.items() if name in own_tools(gw)}
    assert set(listed) - set(tools) == {"extras_is_frozen"}
    assert {
        "orders_get",
        "orders_list",
        "orders_create",
        "orders_update",
        "orders_delete",
        "stores_list",
        "store_get",
        "inventory_list",
        "shipments_list",
        "gateway_ping",
    } <= set(tools)
    for name, tool in tools.items():
        assert "." not in name and len(name) <= 40
        # hints are published only where they differ from the spec's defaults (read as those)
        assert hint(tool, "read_only_hint") is (name not in WRITE_TOOLS), name
        if name not in WRITE_TOOLS:  # a read tool publishes the shape of what it reads
            assert tool.output_schema is not None, name
        # closed world: the gateway itself, and the journal of its own changes
        assert hint(tool, "open_world_hint") is not False or name in ("gateway_ping", "changes_list"), name
        assert tool.input_schema["type"] == "object", name
        assert len(tool.description or "") > 40, name
    assert hint(tools["orders_delete"], "destructive_hint") is True
    assert hint(tools["orders_create"], "destructive_hint") is False
    # a repeated move re-runs the destination folder's rules (emails, fulfilment)
    assert hint(tools["orders_move"], "idempotent_hint") is False
    assert hint(tools["orders_get"], "idempotent_hint") is False and hint(
        tools["inventory_update"], "idempotent_hint"
    )
    assert tools["orders_get"].input_schema["properties"]["order_id"]["pattern"] == r"^\d+$"


async def test_dotted_tool_names_on_request(gateway_factory: Any) -> None:
    async with connect(gateway_factory(overrides={"gateway.tool_names": "dotted"})) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "orders.get" in names and "orders_get" not in names
        result = await client.call_tool("gateway.ping", {})
    assert not result.is_error and result.structured_content["ok"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_errors_carry_a_machine_code_and_a_hint(
    gateway_factory: Any, orderdesk_sandbox: Any, mode: str
) -> None:
    async with connect(gateway_factory(), mode=mode) as client:
        missing = await client.call_tool("orders_get", {"order_id": "999999"})
        wrong_type = await client.call_tool("orders_list", {"limit": "lots"})
        too_big = await client.call_tool("orders_list", {"limit": 501})
    assert missing.is_error and error_of(missing)["code"] == "NOT_FOUND"
    assert "999999" in error_of(missing)["message"]
    # one line: CODE: what was wrong — what to do
    coded = error_of(missing)
    assert missing.content[0].text == f"NOT_FOUND: {coded['message']} — {coded['hint']}"
    # never structuredContent on an error: TypeScript clients validate it against the output schema
    assert missing.structured_content is None and wrong_type.structured_content is None
    for r in (wrong_type, too_big):
        assert r.is_error and error_of(r)["code"] == "VALIDATION"
        assert error_of(r)["message"].startswith("argument 'limit' should be")
        assert len(r.content[0].text.splitlines()) == 1 and "errors.pydantic.dev" not in r.content[0].text
    assert [q for q in orderdesk_sandbox.requests() if q.path == "/orders" and q.method == "GET"] == []


async def test_an_error_is_one_line_code_message_dash_hint(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as client:
        result = await client.call_tool("orders_delete", {"order_id": "200001"})
    assert result.content[0].text == (
        "CONFIRMATION_REQUIRED: order 200001 was not deleted: confirmation missing"
        " — Ask the user; if they agree, call again with confirm=true."
    )


@pytest.mark.parametrize("mode", MODES)
async def test_unexpected_exception_is_a_clean_internal_error(gateway_factory: Any, mode: str) -> None:
    async with connect(gateway_factory(plugins=[Crasher()]), mode=mode) as client:
        result = await client.call_tool("test_boom", {})
        after = await client.call_tool("gateway_ping", {})
    assert result.is_error and error_of(result)["code"] == "INTERNAL"
    text = result.content[0].text
    assert "secret internal detail" not in text and "Traceback" not in text
    assert not after.is_error


@pytest.mark.parametrize("mode", MODES)
async def test_read_only_mode_hides_and_refuses_write_tools(
    gateway_factory: Any, orderdesk_sandbox: Any, mode: str
) -> None:
    gw = gateway_factory(overrides={"gateway.read_only": True})
    async with connect(gw, mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool(
            "orders_update", {"order_id": "200001", "changes": {"email": "x@y.z"}}
        )
        read = await client.call_tool("orders_get", {"order_id": "200001"})
    assert names and not (names & WRITE_TOOLS)
    assert refused.is_error and error_of(refused)["code"] == "READ_ONLY"
    assert not read.is_error
    assert orderdesk_sandbox.requests(method="PUT") == []


async def test_policy_hooks_can_refuse_and_observe_calls(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    policy = Policy()
    async with connect(gateway_factory(plugins=[policy])) as client:
        denied = await client.call_tool("orders_get", {"order_id": "999999"})
        allowed = await client.call_tool("orders_get", {"order_id": "200001"})
    assert denied.is_error and error_of(denied)["code"] == "AUTH"
    assert "off limits" in error_of(denied)["message"]
    assert not allowed.is_error
    assert policy.seen == [("orders.get", "denied"), ("orders.get", "ok")]
    assert orderdesk_sandbox.requests(path_prefix="/orders/999999") == []


def test_built_in_plugins_load_through_the_mcp_gateway_entry_point_group(gateway_factory: Any) -> None:
    plugins = {p["name"]: p for p in describe_plugins(gateway_factory().pm)}
    for name in ("orderdesk", "cache_memory", "cache_redis", "journal_sqlite"):
        assert plugins[name]["source"].startswith("built-in (orderdesk-mcp-gateway"), plugins[name]
        assert plugins[name]["version"] == "0.1.0"
    assert "gateway_fetch" in plugins["orderdesk"]["hooks"]
    assert "gateway_register_journal_backends" in plugins["journal_sqlite"]["hooks"]
    assert "gateway_register_journal_backends" in plugins["cache_redis"]["hooks"]
    assert plugins["odmcp.builtins"]["source"] == "built-in (host)"


def test_disabled_plugins_are_not_loaded(gateway_factory: Any) -> None:
    gw = gateway_factory(overrides={"gateway.disabled_plugins": ["cache_redis"]})
    assert not gw.pm.has_plugin("cache_redis") and "redis" not in gw.caches.factories


async def test_clients_may_cache_the_tool_list(gateway_factory: Any) -> None:
    async with connect(gateway_factory(), mode="auto") as client:
        listed = await client.list_tools()
    # private: each caller's list depends on its token
    assert listed.ttl_ms == 300_000 and listed.cache_scope == "private"


@pytest.mark.parametrize("mode", MODES)
async def test_the_text_block_is_compact_json_of_the_structured_result(
    gateway_factory: Any, mode: str
) -> None:
    import json

    async with connect(gateway_factory(), mode=mode) as client:
        result = await client.call_tool("orders_get", {"order_id": "200001"})
    text = result.content[0].text
    assert json.loads(text) == result.structured_content  # the same data, for clients that read text
    # compact, not indented: fewer tokens for the model
    assert "\n" not in text and ": " not in text.split('"order":', 1)[0]


async def test_instructions_come_from_the_plugins_then_the_host(gateway_factory: Any) -> None:
    class Pages:
        @hookimpl
        def gateway_instructions(self) -> str:
            return "Use pages_get before pages_update."

    async with connect(gateway_factory(plugins=[Pages()])) as c:
        text = c.instructions
    assert text is not None
    pages, orderdesk, host = text.split("\n")  # pluggy's order: the last registered first
    assert "OrderDesk" in orderdesk and pages == "Use pages_get before pages_update."
    assert "OUTCOME_UNKNOWN" in host and "retryable" in host and "OrderDesk" not in host


async def test_a_declared_tool_gets_the_gateway_and_clients_never_see_that_parameter(
    gateway_factory: Any,
) -> None:
    from odmcp.tools import ToolTable

    table = ToolTable()

    @table.tool("pages.name", title="Gateway name", read_only=True)
    async def pages_name(gateway: Any, shout: bool = False) -> dict[str, Any]:
        """Return the gateway's configured name."""
        name = gateway.config.gateway.name
        return {"name": name.upper() if shout else name}

    class Pages:
        @hookimpl
        def gateway_register_tools(self, register: Any) -> None:
            table.register_into(register)

    async with connect(gateway_factory(plugins=[Pages()])) as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
        result = await c.call_tool("pages_name", {"shout": True})
        refused = await c.call_tool("pages_name", {"gateway": "x"})
    assert set(listed["pages_name"].input_schema["properties"]) == {"shout"}
    assert result.structured_content == {"name": "MCP-GATEWAY"}
    # not an argument a client can set
    assert refused.is_error and "unknown argument 'gateway'" in refused.content[0].text


#: what a client reads for a hint the tool list leaves out (the MCP spec's defaults)
HINT_DEFAULTS = {
    "read_only_hint": False,
    "destructive_hint": True,
    "idempotent_hint": False,
    "open_world_hint": True,
}


def hint(tool: Any, field: str) -> bool:
    value = getattr(tool.annotations, field, None) if tool.annotations is not None else None
    return HINT_DEFAULTS[field] if value is None else bool(value)
