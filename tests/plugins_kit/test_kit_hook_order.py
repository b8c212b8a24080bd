"""Every fan-out hook runs its impls in pluggy's order; gateway_shutdown runs in the reverse order.

pluggy's order: ``tryfirst`` impls first, ``trylast`` impls last, and otherwise the last registered
first. Four recording plugins are registered as [Last (trylast), Early, First (tryfirst), Late], so
registration order alone would give a different answer for every hook. The awaitable impls sleep
longest where they should run first: a host that awaited them together would finish them in the
wrong order.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from odmcp import hookimpl
from odmcp.cli import Commands
from odmcp.http import build_http_app
from odmcp.refs import Ref
from odmcp.testing import connect, free_port

#: (plugin name, marker options), in registration order
PLUGINS: list[tuple[str, dict[str, bool]]] = [
    ("Last", {"trylast": True}),
    ("Early", {}),
    ("First", {"tryfirst": True}),
    ("Late", {}),
]
PLUGGY_ORDER = ["First", "Late", "Early", "Last"]
SHUTDOWN_ORDER = list(reversed(PLUGGY_ORDER))


def recorder(name: str, log: list[tuple[str, str]], **marker: bool) -> object:
    """A plugin implementing every fan-out hook; each impl appends ``(hook, name)`` to ``log``."""
    mark = hookimpl(**marker)
    delay = 0.002 * (len(PLUGGY_ORDER) - PLUGGY_ORDER.index(name))

    def seen(hook: str) -> None:
        log.append((hook, name))

    async def later(hook: str) -> None:
        await asyncio.sleep(delay)
        seen(hook)

    class Recorder:
        @mark
        def gateway_register_config(self) -> None:
            seen("gateway_register_config")

        @mark
        def gateway_register_cache_backends(self) -> None:
            seen("gateway_register_cache_backends")

        @mark
        def gateway_register_tools(self) -> None:
            seen("gateway_register_tools")

        @mark
        def gateway_instructions(self) -> str:
            return f"paragraph of {name}"

        @mark
        def gateway_register_commands(self) -> None:
            seen("gateway_register_commands")

        @mark
        def gateway_register_routes(self) -> None:
            seen("gateway_register_routes")

        @mark
        def gateway_startup(self) -> Awaitable[None]:
            return later("gateway_startup")

        @mark
        async def gateway_shutdown(self) -> None:
            await later("gateway_shutdown")

        @mark
        def gateway_invalidate(self) -> Awaitable[None]:
            return later("gateway_invalidate")

        @mark
        async def gateway_tool_pre_invoke(self) -> None:
            await later("gateway_tool_pre_invoke")

        @mark
        def gateway_tool_post_invoke(self) -> Awaitable[None]:
            return later("gateway_tool_post_invoke")

    Recorder.__name__ = name  # the plugin's name (plugins.GatewayPluginManager.get_canonical_name)
    return Recorder()


async def run_every_hook(gateway_factory: Any) -> tuple[list[tuple[str, str]], str]:
    """Build a gateway with the recorders, drive each fan-out hook once; the log and the instructions."""
    log: list[tuple[str, str]] = []
    gw = gateway_factory(plugins=[recorder(name, log, **marker) for name, marker in PLUGINS])
    gw.hooks.register_commands(Commands(argparse.ArgumentParser().add_subparsers(), []))
    build_http_app(gw, "127.0.0.1", free_port())
    async with connect(gw) as client:
        assert not (await client.call_tool("gateway_ping", {})).is_error
        await gw.workflow.invalidate(Ref("demo", "order", "200001"), lists=False)
        instructions = client.instructions
    assert instructions is not None
    return log, instructions


HOOKS = [
    "gateway_register_config",
    "gateway_register_cache_backends",
    "gateway_register_tools",
    "gateway_register_commands",
    "gateway_register_routes",
    "gateway_startup",
    "gateway_invalidate",
    "gateway_tool_pre_invoke",
    "gateway_tool_post_invoke",
]


@pytest.mark.parametrize("hook", HOOKS)
async def test_a_fan_out_hook_runs_in_pluggys_order(gateway_factory: Any, hook: str) -> None:
    log, _ = await run_every_hook(gateway_factory)
    calls = [name for seen, name in log if seen == hook]
    # (gateway_register_config runs once to read the config and once more for the store types'
    # owners once disabled plugins are gone: each run in pluggy's order)
    runs = len(calls) // len(PLUGGY_ORDER)
    assert runs >= 1 and calls == PLUGGY_ORDER * runs


async def test_shutdown_runs_in_the_reverse_of_startup(gateway_factory: Any) -> None:
    log, _ = await run_every_hook(gateway_factory)
    started = [name for seen, name in log if seen == "gateway_startup"]
    assert [name for seen, name in log if seen == "gateway_shutdown"] == SHUTDOWN_ORDER == started[::-1]


async def test_instructions_are_joined_in_pluggys_order_then_the_hosts(gateway_factory: Any) -> None:
    _, instructions = await run_every_hook(gateway_factory)
    paragraphs = instructions.split("\n")
    ours = [p.removeprefix("paragraph of ") for p in paragraphs if p.startswith("paragraph of ")]
    assert ours == PLUGGY_ORDER
    # the OrderDesk plugin is registered before the recorders: after the plain ones, before trylast
    orderdesk = next(i for i, p in enumerate(paragraphs) if "OrderDesk" in p)
    assert paragraphs.index("paragraph of Early") < orderdesk < paragraphs.index("paragraph of Last")
    assert "OUTCOME_UNKNOWN" in paragraphs[-1]


@pytest.mark.parametrize(("marker", "counted"), [({}, 1), ({"trylast": True}, 1), ({"tryfirst": True}, 0)])
async def test_the_hosts_post_invoke_is_tryfirst(
    gateway_factory: Any, marker: dict[str, bool], counted: int
) -> None:
    """The host counts and audits in a ``tryfirst`` impl: a plugin's plain or trylast impl sees the call
    counted; a plugin's own tryfirst impl, registered later, runs before the host's (pluggy's order)."""
    seen_audit: list[int] = []

    class Reader:
        @hookimpl(**marker)
        def gateway_tool_post_invoke(self, call: Any, gateway: Any) -> None:
            seen_audit.append(int(gateway.metrics.value("tool_calls_total", tool=call.name, outcome="ok")))

    async with connect(gateway_factory(plugins=[Reader()])) as client:
        assert not (await client.call_tool("gateway_ping", {})).is_error
    assert seen_audit == [counted]
