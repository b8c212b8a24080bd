"""``GATEWAY_TRACE_HOOKS=1`` logs every hook call with its plugin and duration."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from odmcp import hookimpl
from odmcp.plugins import build_plugin_manager
from odmcp.testing import connect

LINE = re.compile(r"^hook (?P<hook>gateway_\w+): plugin (?P<plugin>\S+) took (?P<ms>\d+\.\d{3}) ms$")


class Sample:
    @hookimpl
    def gateway_merge(self, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        return {**current, **changes}

    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> Any:
        async def check() -> None:
            return None

        return check()


def _traced(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, float]]:
    out = []
    for rec in caplog.records:
        m = LINE.match(rec.getMessage())
        if rec.name == "odmcp.plugins.trace" and m:
            out.append((m["hook"], m["plugin"], float(m["ms"])))
    return out


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_TRACE_HOOKS", raising=False)


@pytest.mark.parametrize("value", ["1", "true", "yes", "on"])
def test_env_var_turns_tracing_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    monkeypatch.setenv("GATEWAY_TRACE_HOOKS", value)
    pm = build_plugin_manager(load_entrypoints=False, extra=[Sample()])
    assert pm.trace_hooks
    with caplog.at_level(logging.DEBUG, logger="odmcp.plugins"):
        assert pm.hook.gateway_merge(ref=None, current={"a": 1}, changes={"b": 2}, gateway=None) == {
            "a": 1,
            "b": 2,
        }
    traced = _traced(caplog)
    assert [(h, p) for h, p, _ in traced] == [("gateway_merge", "Sample")]
    assert traced[0][2] >= 0


def test_off_by_default(caplog: pytest.LogCaptureFixture) -> None:
    pm = build_plugin_manager(load_entrypoints=False, extra=[Sample()])
    assert not pm.trace_hooks
    pm.hook.gateway_merge(ref=None, current={}, changes={}, gateway=None)
    assert _traced(caplog) == []


async def test_awaitable_results_are_timed_until_they_finish(caplog: pytest.LogCaptureFixture) -> None:
    pm = build_plugin_manager(load_entrypoints=False, extra=[Sample()], trace=True)
    results = pm.hook.gateway_tool_pre_invoke(call=None, gateway=None)
    assert _traced(caplog) == []  # nothing logged until the awaitable completes
    for res in results:
        await res
    assert [(h, p) for h, p, _ in _traced(caplog)] == [("gateway_tool_pre_invoke", "Sample")]


async def test_traces_a_real_tool_call_through_the_gateway(
    gateway_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory(plugins=[Sample()], overrides={"gateway.trace_hooks": True})
    assert gw.pm.trace_hooks
    async with connect(gw) as client:
        listed = await client.call_tool("orders_list", {})
        order_id = listed.structured_content["orders"][0]["id"]
        caplog.clear()
        res = await client.call_tool("orders_get", {"order_id": order_id})
    assert not res.is_error
    seen = {(h, p) for h, p, _ in _traced(caplog)}
    assert ("gateway_tool_pre_invoke", "Sample") in seen
    assert ("gateway_tool_pre_invoke", "folder_guard") in seen  # installed through its entry point
    assert ("gateway_fetch", "orderdesk") in seen


async def test_env_var_reaches_gateways_built_by_the_kit(
    gateway_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GATEWAY_TRACE_HOOKS", "1")
    async with connect(gateway_factory()) as client:
        assert not (await client.call_tool("gateway_ping", {})).is_error
    assert ("gateway_startup", "orderdesk") in {(h, p) for h, p, _ in _traced(caplog)}
