"""Issue 14: a tool list worth its tokens. Every tool is there; the default list stays within its token
budget; descriptions say what a tool changes, what it costs and which errors to expect; ``store`` has
one short shared schema; output schemas describe summaries, not every order field."""

from __future__ import annotations

import json
from typing import Any

import bpe_openai
import pytest

from odmcp.testing import connect

#: the default tools/list may cost the model at most this many tokens (o200k_base, the bpe-openai wheel's
#: data), its output schemas spelled portably (single-type anyOf branches, no empty schema) included
TOKEN_BUDGET = 4_300
ENCODING = bpe_openai.get_encoding("o200k_base")
ALL_TOOLS = 26  # 22 single tools and 4 bulk tools


def wire(listed: Any) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = listed.model_dump(mode="json", by_alias=True, exclude_none=True)["tools"]
    return tools


def tokens(tools: list[dict[str, Any]]) -> int:
    return len(ENCODING.encode(json.dumps(tools, separators=(",", ":"), ensure_ascii=False)))


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_default_tool_list_stays_within_its_token_budget(gateway_factory: Any, mode: str) -> None:
    async with connect(gateway_factory(), mode=mode) as c:
        tools = wire(await c.list_tools())
    assert len(tools) == ALL_TOOLS
    assert tokens(tools) <= TOKEN_BUDGET, f"tools/list costs {tokens(tools)} tokens (budget {TOKEN_BUDGET})"


#: tools that can only fail with the errors every tool may answer (the server instructions say them
#: once: VALIDATION, RATE_LIMITED, UPSTREAM), so their descriptions spend no words on errors
GENERAL_ERRORS_ONLY = {"gateway_ping", "orders_list", "inventory_list", "store_get", "stores_list"}


async def test_every_description_says_what_it_costs_and_which_errors_to_expect(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        tools = wire(await c.list_tools())
    for tool in tools:
        text = tool["description"]
        assert "Cost: " in text and " request" in text, tool["name"]
        if tool["name"] not in GENERAL_ERRORS_ONLY:
            assert "Errors: " in text, tool["name"]
        assert "\n" not in text  # docstring line breaks are not paid for
        for name, prop in tool["inputSchema"].get("properties", {}).items():
            # a default is said by the schema, never again in prose
            if "default" in prop:
                assert "default" not in prop.get("description", "").lower(), (tool["name"], name)
            assert "title" not in prop, (tool["name"], name)
        assert "title" not in tool["inputSchema"] and "title" not in tool.get("annotations", {})


async def test_read_tools_publish_the_summary_shape_and_writes_no_output_schema(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        tools = {t["name"]: t for t in wire(await c.list_tools())}
    listed = tools["orders_list"]["outputSchema"]["properties"]["orders"]["items"]["properties"]
    assert set(listed) == {
        "id",
        "source_id",
        "date_added",
        "folder_name",
        "customer_name",
        "email",
        "item_count",
        "order_total",
        "tracked",
    }
    assert set(tools["inventory_list"]["outputSchema"]["properties"]["items"]["items"]["properties"]) == {
        "id",
        "code",
        "name",
        "price",
        "stock",
    }
    for tool in tools.values():
        writes = tool.get("annotations", {}).get("readOnlyHint", False) is False
        assert ("outputSchema" in tool) is not writes, tool["name"]
        # no order field is spelled out anywhere but in a summary
        assert "cc_number_masked" not in json.dumps(tool)


@pytest.mark.sandbox(multi_store=True)
async def test_store_has_one_short_shared_schema(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        tools = wire(await c.list_tools())
    schemas = [
        t["inputSchema"]["properties"]["store"] for t in tools if "store" in t["inputSchema"]["properties"]
    ]
    assert len(schemas) == ALL_TOOLS - 2  # all but gateway_ping and stores_list (changes is opt-in)
    assert all(s == {"type": "string", "enum": ["demo", "store2"], "default": "demo"} for s in schemas)


async def test_one_store_to_choose_from_is_not_offered_as_an_argument_but_still_taken(
    gateway_factory: Any,
) -> None:
    async with connect(gateway_factory()) as c:
        tools = wire(await c.list_tools())
        named = await c.call_tool("orders_get", {"order_id": "200001", "store": "demo"})
    assert not any("store" in t["inputSchema"]["properties"] for t in tools)
    assert not named.is_error


async def test_read_only_mode_lists_only_read_tools_with_compact_hints(gateway_factory: Any) -> None:
    async with connect(gateway_factory(overrides={"gateway.read_only": True})) as c:
        tools = wire(await c.list_tools())
    assert {t["name"] for t in tools} == {
        "gateway_ping",
        "stores_list",
        "store_get",
        "orders_get",
        "orders_list",
        "shipments_list",
        "inventory_list",
        "inventory_get",
    }
    assert tokens(tools) < TOKEN_BUDGET // 2
    assert all(t["annotations"]["readOnlyHint"] is True for t in tools)


def portability_problems(schema: Any, path: str = "outputSchema") -> list[str]:
    """What the MCP Inspector's ``--strict`` reports (2.12.0): a sub-schema without any validation
    keyword (it accepts anything), and ``type`` given as a list (single-type dialects reject it)."""
    if not isinstance(schema, dict):
        return []
    out = []
    if isinstance(schema.get("type"), list):
        out.append(f"{path}: type {schema['type']}")
    if not set(schema) & {"type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref", "not"}:
        out.append(f"{path}: no validation keyword")
    for key in ("properties", "$defs"):
        for name, sub in (schema.get(key) or {}).items():
            out += portability_problems(sub, f"{path}.{key}.{name}")
    if isinstance(schema.get("items"), dict):
        out += portability_problems(schema["items"], f"{path}.items")
    for branch in schema.get("anyOf") or []:
        out += portability_problems(branch, f"{path}.anyOf")
    return out


async def test_output_schemas_are_portable(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        tools = wire(await c.list_tools())
    with_output = {t["name"]: t["outputSchema"] for t in tools if "outputSchema" in t}
    assert {"orders_list", "inventory_list", "shipments_list"} <= set(with_output)
    problems = [p for name, schema in with_output.items() for p in portability_problems(schema, name)]
    assert problems == []
