"""Tokens: what the gateway makes a language model read, in JSON bytes and estimated tokens (bytes / 4).

    .venv/bin/python bench/bench_tokens.py [--quick]

Against the seeded sandbox (60 orders, one store; in this process), through an in-process MCP
``Client``:

* ``tools/list``: the default list (every toolset), each toolset alone, read-only mode, and a
  gateway with two stores; next to the default, the list as the SDK generates it (every tool, every
  schema as pydantic writes it) before the gateway publishes it, measured in the same run;
* ``orders_list`` of 50 orders: the default summaries, and ``fields="full"``;
* ``orders_get`` of one order (full), and its summary;
* what building the summaries costs: 50 summaries built directly, against one cached ``orders_list``
  call, and how many summaries the calls built (they are built with the cached page, once).

Bytes are those of the compact JSON a client receives (``tools`` of the ``tools/list`` result; the
text block of a tool result, which carries the same data as ``structuredContent``). Targets: default
``tools/list`` <= 4,850 tokens (the output schemas spelled portably cost ~380 of them); ``orders_list`` of 50 orders <= 100 tokens per order and >= 5x
smaller than ``"full"``. --quick changes nothing (the run takes a few seconds).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from common import build_gateway, header, machine, parse_quick, sandbox, summary, target, unique_prefix

TOOLS_BUDGET = 4_850
PER_ORDER_BUDGET = 100
FULL_RATIO = 5.0
ORDERS = 50


def tokens(n_bytes: int) -> int:
    return n_bytes // 4


def list_bytes(listed: Any) -> tuple[int, int]:
    """(JSON bytes, tool count) of a ``tools/list`` result as a client receives it."""
    tools = listed.model_dump(mode="json", by_alias=True, exclude_none=True)["tools"]
    return len(json.dumps(tools, separators=(",", ":"), ensure_ascii=False).encode()), len(tools)


def text_bytes(result: Any) -> int:
    if result.is_error:
        raise RuntimeError(result.content[0].text)
    return len(result.content[0].text.encode())


def row(label: str, n_bytes: int, extra: str = "") -> None:
    print(f"  {label:42} {n_bytes:7,d} B  {tokens(n_bytes):6,d} tokens{extra}")


async def tool_list(sb: Any, extra: dict[str, Any] | None = None) -> tuple[int, int]:
    from odmcp.testing import connect

    async with connect(build_gateway(sb, unique_prefix("tokens"), extra)) as client:
        return list_bytes(await client.list_tools())


async def sdk_list(sb: Any) -> tuple[int, int]:
    """The list as the SDK generates it, before the gateway publishes it (no middleware)."""
    from mcp.types import ListToolsResult

    from odmcp.server import build_server

    server = build_server(build_gateway(sb, unique_prefix("tokens")))
    return list_bytes(ListToolsResult(tools=await server.list_tools()))


async def main() -> None:
    from odmcp.testing import connect
    from odmcp_orderdesk.tools import orders as order_tools

    parse_quick(__doc__.splitlines()[0])
    print(f"token benchmark ({machine()}); seeded sandbox, {ORDERS + 10} orders, in-process client")
    async with sandbox(seed_orders=ORDERS + 10, rate_limit_enabled=False) as sb:
        header("tools/list")
        default, count = await tool_list(sb)
        raw, raw_count = await sdk_list(sb)
        row(f"default ({count} tools)", default)
        row(
            f"the SDK's schemas of the same {raw_count} tools",
            raw,
            f"  ({raw / default:.1f}x the published list)",
        )
        toolsets = ["orders", "items", "shipments", "inventory", "store", "bulk"]
        for name in toolsets:
            n, c = await tool_list(sb, {"gateway.toolsets": [name]})
            row(f"toolset {name} ({c} tools, gateway_ping included)", n)
        n, c = await tool_list(sb, {"gateway.read_only": True})
        row(f"read-only mode ({c} tools)", n)
        stores = sb.config.stores[0]
        two = {
            "stores": [
                {
                    "name": "demo",
                    "store_id": stores.store_id,
                    "api_key": stores.api_key,
                    "base_url": sb.base_url,
                },
                {
                    "name": "eu",
                    "store_id": stores.store_id,
                    "api_key": stores.api_key,
                    "base_url": sb.base_url,
                },
            ]
        }
        n, c = await tool_list(sb, two)
        row(f"two stores ({c} tools; `store` offered)", n)

        header(f"orders_list of {ORDERS} orders, orders_get")
        built: list[int] = []
        original = order_tools.order_summary

        def counting(order: dict[str, Any], folders: dict[str, str]) -> dict[str, Any]:
            built.append(1)
            return original(order, folders)

        order_tools.order_summary = counting  # type: ignore[assignment]
        try:
            async with connect(build_gateway(sb, unique_prefix("tokens"))) as client:
                listed = await client.call_tool("orders_list", {"limit": ORDERS})
                full = await client.call_tool("orders_list", {"limit": ORDERS, "fields": "full"})
                n_orders = len(listed.structured_content["orders"])
                oid = listed.structured_content["orders"][0]["id"]
                one = await client.call_tool("orders_get", {"order_id": oid})
                one_summary = await client.call_tool("orders_get", {"order_id": oid, "fields": "summary"})
                # a cached page: what one more call costs in the gateway (the tool itself, no client;
                # a client that checks results against the output schema spends more on its side)
                gw = build_gateway(sb, unique_prefix("tokens"))
                await gw.startup()
                try:
                    await order_tools.orders_list(gw, limit=ORDERS)
                    timings = []
                    for _ in range(30):
                        t0 = time.perf_counter()
                        await order_tools.orders_list(gw, limit=ORDERS)
                        timings.append(time.perf_counter() - t0)
                finally:
                    await gw.shutdown()
        finally:
            order_tools.order_summary = original  # type: ignore[assignment]
        summary_b, full_b = text_bytes(listed), text_bytes(full)
        per_order = tokens(summary_b) / n_orders
        ratio = full_b / summary_b
        row(f"orders_list default ({n_orders} summaries)", summary_b, f"  ({per_order:.0f} tokens per order)")
        row(f'orders_list fields="full" ({n_orders} orders)', full_b, f"  ({ratio:.1f}x the summaries)")
        row("orders_get (full)", text_bytes(one))
        row('orders_get fields="summary"', text_bytes(one_summary))

        header("building summaries")
        orders = full.structured_content["orders"]
        folders = {"1": "New", "2": "Prepared", "3": "Closed", "4": "Canceled"}
        samples = []
        for _ in range(200):
            t0 = time.perf_counter()
            for o in orders:
                original(o, folders)
            samples.append(time.perf_counter() - t0)
        build_us = statistics.median(samples) * 1e6
        call_ms = statistics.median(timings) * 1e3
        print(f"  {n_orders} summaries built directly: {build_us:.0f} µs (median of 200)")
        print(
            f"  one orders_list call on a cached page (the tool, no client): {call_ms:.2f} ms (median of 30)"
        )
        print(
            f"  summaries built for {3 + len(timings)} orders_list calls on 2 gateways and one orders_get "
            f'fields="summary": {len(built)} (each page\'s {n_orders} once, when it was loaded, and the '
            f"get's one); built per call they would add {build_us / 1000:.2f} ms "
            f"({build_us / 10 / call_ms:.0f}% of a cached call)"
        )

    print()
    target(
        "tools_list_default",
        f"{tokens(default):,} tokens, {count} tools",
        f"<= {TOOLS_BUDGET:,}",
        tokens(default) <= TOOLS_BUDGET,
    )
    target(
        "orders_list_summary_per_order",
        f"{per_order:.0f} tokens per order ({n_orders} orders)",
        f"<= {PER_ORDER_BUDGET}",
        per_order <= PER_ORDER_BUDGET,
    )
    target("orders_list_full_vs_summary", f"{ratio:.1f}x smaller", f">= {FULL_RATIO:g}x", ratio >= FULL_RATIO)
    summary(
        "tokens",
        f"tools/list {tokens(default):,} tokens ({raw / default:.1f}x less than the SDK's); orders_list of "
        f"{n_orders}: {per_order:.0f} tokens/order, {ratio:.1f}x less than full; orders_get "
        f"{tokens(text_bytes(one)):,} tokens",
    )


if __name__ == "__main__":
    asyncio.run(main())
