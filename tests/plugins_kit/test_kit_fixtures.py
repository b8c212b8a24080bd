"""The pytest kits (odmcp.testing, odmcp_orderdesk.testing), used exactly as a plugin author would."""

from __future__ import annotations

import ast
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import odmcp.testing
import odmcp_orderdesk.testing
from odmcp import hookimpl
from odmcp.errors import ValidationFailed
from odmcp.middleware import error_of
from odmcp.testing import connect

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


def test_the_kits_are_opted_into_not_installed_into_every_pytest_run(pytestconfig: pytest.Config) -> None:
    pm = pytestconfig.pluginmanager
    assert pm.get_plugin("odmcp.testing") is odmcp.testing
    assert pm.get_plugin("odmcp_orderdesk.testing") is odmcp_orderdesk.testing
    assert not [ep for ep in metadata.entry_points(group="pytest11") if ep.value.startswith("odmcp")]
    markers = "\n".join(pytestconfig.getini("markers"))
    assert "gateway(" in markers and "sandbox(" in markers


def test_nothing_in_the_host_imports_the_orderdesk_plugin() -> None:
    """Not the kit, not the CLI: the sandbox and --sandbox reach the CLI through a hook."""
    host = Path(odmcp.testing.__file__).parent
    imports = []
    for path in sorted(host.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imports.append((path.name, node.module))
            elif isinstance(node, ast.Import):
                imports += [(path.name, alias.name) for alias in node.names]
    assert len(imports) > 100
    assert [(f, m) for f, m in imports if m.startswith(("odmcp_", "plugins"))] == []


def test_the_distribution_installs_no_generic_top_level_name() -> None:
    """No top-level `gateway` or `plugins` module is installed: each folder is a package with its own name."""
    dist = metadata.distribution("orderdesk-mcp-gateway")
    top = {name for name in (dist.read_text("top_level.txt") or "").split() if name}
    assert top == {
        "odmcp",
        "odmcp_orderdesk",
        "odmcp_cache_memory",
        "odmcp_cache_redis",
        "odmcp_journal_sqlite",
    }
    # a plugin depends on this distribution, never on the unrelated `mcp-gateway` of the package index
    assert metadata.requires("mcp-gateway-folder-guard") == ["orderdesk-mcp-gateway"]
    import odmcp_cache_memory
    import odmcp_cache_redis
    import odmcp_journal_sqlite

    for package in (odmcp, odmcp_orderdesk, odmcp_cache_memory, odmcp_cache_redis, odmcp_journal_sqlite):
        folder = Path(package.__file__).parent
        assert folder.name == package.__name__  # the folder a module lives in has its name


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
from odmcp import hookimpl


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


INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"


def test_an_author_suite_opts_into_the_kit_with_pytest_plugins(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest('pytest_plugins = ["odmcp_orderdesk.testing"]  # loads gateway.testing too\n')
    pytester.makepyfile(test_author=AUTHOR_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_startup_failure_is_reported*"])
    result.stdout.fnmatch_lines(["*FailsAtStartup*gateway_startup*"])


def test_a_suite_that_does_not_opt_in_gets_no_fixtures_and_the_generic_kit_needs_no_sandbox(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    plain, generic = pytester.mkdir("plain"), pytester.mkdir("generic")
    (plain / "test_plain.py").write_text(
        """
def test_plain(request):
    assert "gateway_client" not in request.fixturenames
    assert request.config.pluginmanager.get_plugin("odmcp.testing") is None
"""
    )
    (generic / "conftest.py").write_text('pytest_plugins = ["odmcp.testing"]\n')
    (generic / "test_generic.py").write_text(
        """
import pytest


@pytest.mark.gateway(overrides={"stores": [{"name": "x", "store_id": "1", "api_key": "k"}]})
async def test_generic(gateway_client, request):
    res = await gateway_client.call_tool("gateway_ping", {})
    assert res.structured_content["stores"] == ["x"]
    assert "orderdesk_sandbox" not in request.fixturenames
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "plain", timeout=120)
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "generic", timeout=120)
    result.assert_outcomes(passed=1)
