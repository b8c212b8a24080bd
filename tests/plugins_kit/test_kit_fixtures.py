"""The pytest kit itself (gateway.testing), used exactly as a plugin author would use it."""

from __future__ import annotations

from typing import Any

import pytest

import gateway.testing
from gateway import hookimpl
from gateway.errors import ValidationFailed
from gateway.middleware import error_of
from gateway.testing import connect

pytest_plugins = ["pytester"]


class NoEmailChanges:
    """A policy: orders.update may not change the customer's email."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []

    @hookimpl
    def gateway_tool_pre_invoke(self, call: Any) -> None:
        if call.name == "orders.update" and "email" in (call.arguments.get("changes") or {}):
            raise ValidationFailed("email changes are not allowed through the gateway")

    @hookimpl
    def gateway_tool_post_invoke(self, call: Any, outcome: str) -> None:
        self.outcomes.append((call.name, outcome))


POLICY = NoEmailChanges()


def test_the_kit_is_a_pytest11_plugin(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("mcp_gateway") is gateway.testing
    markers = "\n".join(pytestconfig.getini("markers"))
    assert "gateway(" in markers and "sandbox(" in markers


@pytest.mark.gateway(plugins=[POLICY])
async def test_gateway_client_runs_the_named_plugins(gateway_client: Any, orderdesk_sandbox: Any) -> None:
    order = orderdesk_sandbox.orders()[0]
    res = await gateway_client.call_tool("orders_get", {"order_id": order["id"]})
    assert not res.is_error and res.structured_content["order"]["id"] == order["id"]
    assert [(r.method, r.path) for r in orderdesk_sandbox.requests()] == [("GET", f"/orders/{order['id']}")]

    orderdesk_sandbox.clear_requests()
    res = await gateway_client.call_tool(
        "orders_update", {"order_id": order["id"], "changes": {"email": "new@example.com"}}
    )
    assert res.is_error and error_of(res)["code"] == "VALIDATION"
    assert orderdesk_sandbox.requests() == []  # refused before anything reached OrderDesk

    res = await gateway_client.call_tool(
        "orders_update", {"order_id": order["id"], "changes": {"shipping_method": "Overnight"}}
    )
    assert not res.is_error, res.content
    methods = [r.method for r in orderdesk_sandbox.requests()]
    assert methods[0] == "GET" and "PUT" in methods
    put = orderdesk_sandbox.requests(method="PUT")[0]
    assert put.path == f"/orders/{order['id']}" and put.status == 200
    assert put.json["shipping_method"] == "Overnight" and put.json["email"] == order["email"]
    assert ("orders.update", "denied") in POLICY.outcomes and ("orders.update", "ok") in POLICY.outcomes


@pytest.mark.gateway(overrides={"gateway.tool_names": "dotted"}, mode="legacy")
async def test_gateway_marker_overrides_and_mode(gateway_client: Any) -> None:
    names = {t.name for t in (await gateway_client.list_tools()).tools}
    assert {"orders.get", "gateway.ping"} <= names


async def test_gateway_client_without_a_marker(gateway_client: Any, orderdesk_sandbox: Any) -> None:
    res = await gateway_client.call_tool("gateway_ping", {})
    assert res.structured_content["ok"] is True and res.structured_content["stores"] == ["demo"]
    assert orderdesk_sandbox.requests() == []  # ping costs no upstream request


@pytest.mark.sandbox(multi_store=True)
async def test_sandbox_marker_configures_the_sandbox(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    gw = gateway_factory()
    assert [s.name for s in gw.config.stores] == ["demo", "store2"]
    assert all(s.base_url == orderdesk_sandbox.base_url for s in gw.config.stores)
    async with connect(gw) as client:
        res = await client.call_tool("orders_list", {"store": "store2"})
    assert not res.is_error, res.content
    assert {r.store_id for r in orderdesk_sandbox.requests()} == {"2002"}


async def test_gateway_factory_gives_each_gateway_its_own_cache_prefix_and_audit_log(
    gateway_factory: Any, tmp_path: Any
) -> None:
    a, b = gateway_factory(), gateway_factory()
    assert a.config.cache.prefix != b.config.cache.prefix
    assert a.config.audit.path == str(tmp_path / "audit.jsonl")
    assert a.config.stores[0].rate_limit.enabled is False


async def test_connect_yields_a_client_and_runs_the_lifespan(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    class Lifecycle:
        def __init__(self) -> None:
            self.events: list[str] = []

        @hookimpl
        def gateway_startup(self) -> None:
            self.events.append("startup")

        @hookimpl
        def gateway_shutdown(self) -> None:
            self.events.append("shutdown")

    life = Lifecycle()
    gw = gateway_factory(plugins=[life])
    async with connect(gw) as client:
        assert life.events == ["startup"]
        res = await client.call_tool("orders_list", {"folder_id": 1})
        assert not res.is_error
    assert life.events == ["startup", "shutdown"]
    req = orderdesk_sandbox.requests(method="GET", path_prefix="/orders")[0]
    assert req.query.get("folder_id") == "1"


# --- a plugin author's test suite, run by pytester ----------------------------------------------------

AUTHOR_TESTS = """
import pytest
from gateway import hookimpl


class FailsAtStartup:
    @hookimpl
    def gateway_startup(self, gateway):
        raise OSError("cannot open the plugin's resource")


class Quiet:
    @hookimpl
    def gateway_tool_post_invoke(self, call, outcome):
        return None


@pytest.mark.gateway(plugins=[Quiet()])
async def test_works(gateway_client, orderdesk_sandbox):
    res = await gateway_client.call_tool("orders_list", {})
    assert not res.is_error
    assert orderdesk_sandbox.requests(method="GET")


@pytest.mark.gateway(plugins=[FailsAtStartup()])
async def test_startup_failure_is_reported(gateway_client):
    pass
"""


def test_an_author_suite_uses_the_kit_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(test_author=AUTHOR_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_startup_failure_is_reported*"])
    result.stdout.fnmatch_lines(["*FailsAtStartup*gateway_startup*"])
