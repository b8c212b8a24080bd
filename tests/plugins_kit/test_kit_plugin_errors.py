"""A plugin that raises inside a hook is named in a clean INTERNAL isError; the server keeps serving."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from odmcp import hookimpl
from odmcp.errors import AuthError
from odmcp.middleware import error_of
from odmcp.testing import connect

HINT = "This is a bug in that plugin"


def _internal(res: Any) -> dict[str, Any]:
    assert res.is_error, res.content
    err: dict[str, Any] = error_of(res)
    assert err["code"] == "INTERNAL"
    return err


async def _order_id(client: Any) -> str:
    res = await client.call_tool("orders_list", {})
    assert not res.is_error, res.content
    return str(res.structured_content["orders"][0]["id"])


class CrashingPolicy:
    """Raises ValueError in gateway_tool_pre_invoke, the first time only."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> None:
        if call.name == "orders.get":
            self.calls += 1
            if self.calls == 1:
                raise ValueError("secret detail from the policy")


async def test_pre_invoke_crash_is_internal_naming_the_plugin(
    gateway_factory: Any, orderdesk_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory(plugins=[CrashingPolicy()])
    async with connect(gw) as client:
        order_id = await _order_id(client)
        orderdesk_sandbox.clear_requests()
        res = await client.call_tool("orders_get", {"order_id": order_id})
        err = _internal(res)
        assert err["message"] == "plugin 'CrashingPolicy' failed in hook gateway_tool_pre_invoke (ValueError)"
        assert err["details"] == {"plugin": "CrashingPolicy", "hook": "gateway_tool_pre_invoke"}
        assert HINT in err["hint"] and "disabled_plugins" in err["hint"]
        assert "secret detail" not in res.content[0].text
        assert orderdesk_sandbox.requests() == []  # refused before the tool ran
        assert gw.metrics.value("tool_calls_total", tool="orders.get", outcome="denied") == 1
        # the server keeps working: the same call succeeds next time
        res = await client.call_tool("orders_get", {"order_id": order_id})
        assert not res.is_error, res.content
        assert res.structured_content["order"]["id"] == order_id
        assert not (await client.call_tool("gateway_ping", {})).is_error
    logged = [r for r in caplog.records if r.name == "odmcp.plugins" and r.levelno == logging.ERROR]
    assert logged and "CrashingPolicy" in logged[0].getMessage()
    assert logged[0].exc_info is not None and "secret detail" in str(logged[0].exc_info[1])


class FailingFetch:
    """Claims every order fetch once (returning an awaitable that raises), then declines."""

    def __init__(self, sync: bool = False) -> None:
        self.sync = sync
        self.claimed = 0

    @hookimpl
    def gateway_fetch(self, ref: Any) -> Any:
        if self.claimed:
            return None  # decline: the OrderDesk plugin serves it
        self.claimed += 1
        if self.sync:
            raise KeyError("boom")

        async def fetch() -> dict[str, Any]:
            raise RuntimeError("upstream adapter bug")

        return fetch()


@pytest.mark.parametrize("sync", [False, True], ids=["awaitable-raises", "raises-synchronously"])
async def test_fetch_crash_is_internal_naming_the_plugin(gateway_factory: Any, sync: bool) -> None:
    async with connect(gateway_factory(plugins=[FailingFetch(sync=sync)])) as client:
        order_id = await _order_id(client)
        err = _internal(await client.call_tool("orders_get", {"order_id": order_id}))
        exc = "KeyError" if sync else "RuntimeError"
        assert err["message"] == f"plugin 'FailingFetch' failed in hook gateway_fetch ({exc})"
        assert err["details"] == {"plugin": "FailingFetch", "hook": "gateway_fetch"}
        res = await client.call_tool("orders_get", {"order_id": order_id})
        assert not res.is_error, res.content


async def test_fetch_crash_during_a_mutation_writes_nothing(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(plugins=[FailingFetch()])
    async with connect(gw) as client:
        order_id = await _order_id(client)
        res = await client.call_tool(
            "orders_update", {"order_id": order_id, "changes": {"email": "x@example.com"}}
        )
        assert "FailingFetch" in _internal(res)["message"]
        assert orderdesk_sandbox.requests(method="PUT") == []
        res = await client.call_tool(
            "orders_update", {"order_id": order_id, "changes": {"email": "x@example.com"}}
        )
        assert not res.is_error, res.content
    assert orderdesk_sandbox.order(order_id)["email"] == "x@example.com"


class CrashingRecorder:
    @hookimpl
    def gateway_tool_post_invoke(self, call: Any) -> None:
        raise ZeroDivisionError("recorder bug")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def gateway_tool_post_invoke(self, call: Any, outcome: str) -> Any:
        async def record() -> None:
            self.seen.append((call.name, outcome))

        return record()


async def test_post_invoke_crash_changes_nothing_and_skips_no_other_plugin(
    gateway_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    # registered first, so called after the crashing one
    async with connect(gateway_factory(plugins=[recorder, CrashingRecorder()])) as client:
        res = await client.call_tool("gateway_ping", {})
    assert not res.is_error and res.structured_content["ok"] is True
    assert recorder.seen == [("gateway.ping", "ok")]
    assert "CrashingRecorder" in caplog.text


class AsyncRefusal:
    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> Any:
        async def check() -> None:
            raise AuthError("AsyncRefusal says no")

        return check()


class SyncRefusal:
    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> None:
        raise AuthError("SyncRefusal says no")


class SlowApproval:
    def __init__(self) -> None:
        self.awaited = 0

    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> Any:
        async def check() -> None:
            self.awaited += 1

        return check()


@pytest.mark.parametrize("refusal", [AsyncRefusal, SyncRefusal])
async def test_a_refusal_leaves_no_later_policy_unawaited(gateway_factory: Any, refusal: type) -> None:
    """Policies run one at a time in pluggy's order (the last registered first); a refusal stops the
    chain cleanly.

    With ``filterwarnings = error`` a dropped coroutine ("was never awaited") would fail this test.
    """
    approval = SlowApproval()
    async with connect(gateway_factory(plugins=[approval, refusal()])) as client:
        res = await client.call_tool("gateway_ping", {})
        assert res.is_error and error_of(res)["code"] == "AUTH"
        assert error_of(res)["message"] == f"{refusal.__name__} says no"
    gc.collect()
    assert approval.awaited == 0


async def test_policies_run_in_pluggys_order(gateway_factory: Any) -> None:
    approval = SlowApproval()
    async with connect(gateway_factory(plugins=[AsyncRefusal(), approval])) as client:
        res = await client.call_tool("gateway_ping", {})
    assert error_of(res)["message"] == "AsyncRefusal says no"
    assert approval.awaited == 1


class BrokenShutdown:
    @hookimpl
    def gateway_shutdown(self) -> None:
        raise RuntimeError("cannot close")


async def test_a_failing_shutdown_does_not_keep_others_open(
    gateway_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Shut down last-registered first; the OrderDesk plugin still closes its HTTP session."""
    gw = gateway_factory(plugins=[BrokenShutdown()])
    async with connect(gw) as client:
        assert not (await client.call_tool("orders_list", {})).is_error
        assert "orderdesk" in gw.state
    assert "orderdesk" not in gw.state  # its gateway_shutdown ran and closed the aiohttp session
    assert "BrokenShutdown" in caplog.text
