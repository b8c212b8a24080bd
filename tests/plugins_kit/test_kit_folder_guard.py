"""The worked third-party plugin (examples/plugins/folder_guard), installed through its entry point.

CI runs ``pip install -e examples/plugins/folder_guard``; these tests use the installed distribution,
never ``plugins=[...]``, so they prove what a user gets from ``pip install``.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from odmcp.cli import main
from odmcp.middleware import error_of
from odmcp.plugins import build_plugin_manager, describe_plugins
from odmcp.testing import connect

GUARDED = {"folder_guard": {"protected_folders": [3]}}
FG_HOOKS = ["gateway_register_config", "gateway_tool_pre_invoke"]


def _entry_point() -> metadata.EntryPoint:
    eps = {ep.name: ep for ep in metadata.entry_points(group="mcp_gateway")}
    assert "folder_guard" in eps, (
        "folder_guard is not installed; run: pip install -e examples/plugins/folder_guard"
    )
    return eps["folder_guard"]


def _audit(gw: Any) -> list[dict[str, Any]]:
    path = Path(gw.config.audit.path)
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


async def _order_in_folder(client: Any, folder_id: int) -> str:
    res = await client.call_tool("orders_list", {"folder_id": folder_id, "fields": ["id", "folder_id"]})
    assert not res.is_error, res.content
    orders = res.structured_content["orders"]
    assert orders, f"the sandbox seed has no order in folder {folder_id}"
    assert all(o["folder_id"] == folder_id for o in orders)
    return str(orders[0]["id"])


# --- installed and discoverable -------------------------------------------------------------------


def test_installed_through_the_mcp_gateway_entry_point() -> None:
    ep = _entry_point()
    assert ep.value == "folder_guard"
    assert ep.dist is not None
    assert ep.dist.metadata["Name"] == "mcp-gateway-folder-guard"
    assert ep.dist.version == "0.1.0"


def test_plugin_manager_loads_it_with_version_source_and_hooks() -> None:
    pm = build_plugin_manager()
    assert pm.has_plugin("folder_guard")
    listed = {p["name"]: p for p in describe_plugins(pm)}
    fg = listed["folder_guard"]
    assert fg["version"] == "0.1.0"
    assert fg["source"].startswith("entry point")
    assert "mcp-gateway-folder-guard 0.1.0" in fg["source"]
    assert fg["hooks"] == FG_HOOKS
    # the built-ins come through the same group, but are labelled as such
    assert listed["orderdesk"]["source"].startswith("built-in")


def test_can_be_disabled_by_name() -> None:
    pm = build_plugin_manager(disabled=["folder_guard"])
    assert not pm.has_plugin("folder_guard")
    assert "folder_guard" not in {p["name"] for p in describe_plugins(pm)}


def _write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[[stores]]\nname = "main"\nstore_id = "1001"\napi_key = {"$env" = "TEST_OD_KEY"}\n\n'
        "[folder_guard]\nprotected_folders = [3]\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (
        "GATEWAY_CONFIG",
        "ORDERDESK_STORE_ID",
        "ORDERDESK_API_KEY",
        "ORDERDESK_BASE_URL",
        "GATEWAY_TRACE_HOOKS",
        "GATEWAY_LOG_LEVEL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TEST_OD_KEY", "not-a-real-key")
    return monkeypatch


def test_cli_plugins_lists_it(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugins", "--config", str(_write_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    i = lines.index("folder_guard 0.1.0 [entry point (mcp-gateway-folder-guard 0.1.0)]")
    assert lines[i + 1].split() == ["hooks:", "gateway_register_config,", "gateway_tool_pre_invoke"]
    assert "not-a-real-key" not in out


def test_cli_plugins_with_env_store(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("ORDERDESK_STORE_ID", "1001")
    clean_env.setenv("ORDERDESK_API_KEY", "not-a-real-key")
    assert main(["plugins"]) == 0
    assert "folder_guard 0.1.0 [entry point" in capsys.readouterr().out


def test_cli_plugins_hides_a_disabled_plugin(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, '\n[gateway]\ndisabled_plugins = ["folder_guard"]\n')
    assert main(["plugins", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "folder_guard" not in out
    assert "orderdesk 0.1.0" in out


# --- end to end through an MCP client ---------------------------------------------------------------


async def test_refuses_delete_in_protected_folder(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    gw = gateway_factory(overrides=GUARDED)
    assert gw.pm.has_plugin("folder_guard") and gw.config.section("folder_guard").protected_folders == [3]
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 3)
        orderdesk_sandbox.clear_requests()
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})

        assert res.is_error
        err = error_of(res)
        assert err["code"] == "AUTH"
        assert f"order {order_id} is in protected folder 3" in err["message"]
        assert "folder_guard" in err["message"]
        assert "AUTH:" in res.content[0].text
        # no DELETE reached OrderDesk; the guard only read the order
        assert orderdesk_sandbox.requests(method="DELETE") == []
        assert orderdesk_sandbox.order(order_id) is not None
        assert gw.metrics.value("folder_guard_refusals_total", folder="3") == 1
        assert gw.metrics.value("policy_denials_total", tool="orders.delete", code="AUTH") == 1
        assert gw.metrics.value("tool_calls_total", tool="orders.delete", outcome="denied") == 1
        assert 'mcpgw_folder_guard_refusals_total{folder="3"} 1' in gw.metrics.render_prometheus()
        line = _audit(gw)[-1]
        assert line["tool"] == "orders.delete"
        assert line["outcome"] == "denied:AUTH"

        # the server goes on: a second refusal counts again
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
        assert res.is_error and error_of(res)["code"] == "AUTH"
        assert gw.metrics.value("folder_guard_refusals_total") == 2


async def test_deletes_orders_in_other_folders(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    gw = gateway_factory(overrides=GUARDED)
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 1)
        orderdesk_sandbox.clear_requests()
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
    assert not res.is_error, res.content
    assert res.structured_content == {"deleted": True, "id": order_id}
    assert [r.path for r in orderdesk_sandbox.requests(method="DELETE")] == [f"/orders/{order_id}"]
    assert orderdesk_sandbox.order(order_id) is None
    assert gw.metrics.value("folder_guard_refusals_total") == 0
    assert _audit(gw)[-1]["outcome"] == "ok"


async def test_moving_the_order_out_of_the_folder_lifts_the_refusal(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """The hint says "move the order out of that folder first": that works, cache or not."""
    gw = gateway_factory(overrides=GUARDED)
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 3)
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
        assert error_of(res)["code"] == "AUTH"  # and the guard's read is now cached
        moved = await client.call_tool("orders_move", {"order_ids": [order_id], "folder_id": 1})
        assert not moved.is_error, moved.content
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
    assert not res.is_error, res.content
    assert orderdesk_sandbox.order(order_id) is None


async def test_moving_an_order_into_the_folder_protects_it(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(overrides=GUARDED)
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 1)
        assert not (
            await client.call_tool("orders_get", {"order_id": order_id})
        ).is_error  # cached in folder 1
        moved = await client.call_tool("orders_move", {"order_ids": [order_id], "folder_id": 3})
        assert not moved.is_error, moved.content
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
    assert res.is_error and error_of(res)["code"] == "AUTH"
    assert orderdesk_sandbox.requests(method="DELETE") == []


async def test_inert_without_configuration(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    gw = gateway_factory()
    assert gw.config.section("folder_guard").protected_folders == []
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 3)
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
    assert not res.is_error, res.content
    assert orderdesk_sandbox.order(order_id) is None


async def test_disabled_through_config_lets_the_delete_through(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(overrides={**GUARDED, "gateway.disabled_plugins": ["folder_guard"]})
    assert not gw.pm.has_plugin("folder_guard")
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 3)
        res = await client.call_tool("orders_delete", {"order_id": order_id, "confirm": True})
    assert not res.is_error, res.content


async def test_other_tools_are_not_touched(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    gw = gateway_factory(overrides=GUARDED)
    async with connect(gw) as client:
        order_id = await _order_in_folder(client, 3)
        res = await client.call_tool(
            "orders_update", {"order_id": order_id, "changes": {"email": "guard@example.com"}}
        )
    assert not res.is_error, res.content
    assert gw.metrics.value("folder_guard_refusals_total") == 0
