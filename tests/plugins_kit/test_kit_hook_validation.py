"""Plugins are validated when they register: async firstresult impls, unknown hooks and arguments."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy
import pytest

import odmcp.plugins as gateway_plugins
from odmcp import hookimpl
from odmcp.app import Gateway
from odmcp.errors import ConfigError
from odmcp.plugins import GatewayPluginManager, build_plugin_manager, describe_plugins

FIRSTRESULT_ASYNC = [
    "gateway_fetch",
    "gateway_upload",
    "gateway_create",
    "gateway_delete",
    "gateway_merge",
    "gateway_diff",
    "gateway_reconcile",
]
STORE = {"stores": [{"name": "main", "store_id": "1001", "api_key": "k"}]}


def _async_plugin(hook: str) -> object:
    async def impl(ref: Any) -> None:
        return None

    impl.__name__ = hook
    cls = type("AsyncFirstResult", (), {hook: hookimpl(impl)})
    return cls()


def test_firstresult_hooks_are_exactly_the_documented_ones() -> None:
    pm = GatewayPluginManager()
    first = {
        name
        for name, c in vars(pm.hook).items()
        if name.startswith("gateway_") and c.spec.opts["firstresult"]
    }
    assert first == set(FIRSTRESULT_ASYNC)


@pytest.mark.parametrize("hook", FIRSTRESULT_ASYNC)
def test_async_def_impl_of_a_firstresult_hook_is_rejected(hook: str) -> None:
    with pytest.raises(pluggy.PluginValidationError) as excinfo:
        build_plugin_manager(load_entrypoints=False, extra=[_async_plugin(hook)])
    message = str(excinfo.value)
    assert "'AsyncFirstResult'" in message
    assert hook in message
    assert "async def" in message and "firstresult" in message


def test_rejected_plugin_is_not_left_half_registered() -> None:
    pm = GatewayPluginManager()
    plugin = _async_plugin("gateway_fetch")
    with pytest.raises(pluggy.PluginValidationError) as excinfo:
        pm.register(plugin)
    assert excinfo.value.plugin is plugin
    assert not pm.is_registered(plugin)
    assert pm.hook.gateway_fetch.get_hookimpls() == []


def test_async_def_is_fine_for_fan_out_hooks() -> None:
    class AsyncFanOut:
        @hookimpl
        async def gateway_startup(self, gateway: Any) -> None:
            return None

        @hookimpl
        async def gateway_tool_pre_invoke(self, call: Any) -> None:
            return None

    pm = build_plugin_manager(load_entrypoints=False, extra=[AsyncFanOut()])
    assert pm.has_plugin("AsyncFanOut")


def test_misspelled_hook_fails_check_pending_at_build() -> None:
    class Typo:
        @hookimpl
        def gateway_fecth(self, ref: Any) -> None:
            return None

    with pytest.raises(pluggy.PluginValidationError) as excinfo:
        build_plugin_manager(load_entrypoints=False, extra=[Typo()])
    assert "gateway_fecth" in str(excinfo.value)
    assert "Typo" in str(excinfo.value)


def test_misspelled_hook_fails_gateway_construction(gateway_factory: Any) -> None:
    class Typo:
        @hookimpl
        def gateway_tool_pre_invok(self, call: Any) -> None:
            return None

    with pytest.raises(pluggy.PluginValidationError, match="gateway_tool_pre_invok"):
        gateway_factory(plugins=[Typo()])


def test_unknown_argument_name_is_rejected_at_registration() -> None:
    class WrongArg:
        @hookimpl
        def gateway_fetch(self, ref: Any, gw: Any) -> None:
            return None

    with pytest.raises(pluggy.PluginValidationError, match="gw"):
        build_plugin_manager(load_entrypoints=False, extra=[WrongArg()])


def test_an_impl_may_take_any_subset_of_the_arguments() -> None:
    class Subset:
        @hookimpl
        def gateway_diff(self, after: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"path": "seen", "before": None, "after": sorted(after)}]

    pm = build_plugin_manager(load_entrypoints=False, extra=[Subset()])
    assert pm.hook.gateway_diff(ref=None, before={}, after={"b": 1, "a": 2}, gateway=None) == [
        {"path": "seen", "before": None, "after": ["a", "b"]}
    ]


def test_instances_are_named_by_their_class() -> None:
    class SomePolicy:
        @hookimpl
        def gateway_tool_pre_invoke(self, call: Any) -> None:
            return None

    pm = build_plugin_manager(load_entrypoints=False, extra=[SomePolicy(), SomePolicy()])
    listed = {p["name"]: p for p in describe_plugins(pm)}
    assert {"SomePolicy", "SomePolicy-2"} <= set(listed)
    assert listed["SomePolicy"]["source"] == "registered"
    assert listed["SomePolicy"]["hooks"] == ["gateway_tool_pre_invoke"]


# --- disabling --------------------------------------------------------------------------------------


@pytest.fixture
def broken_entry_point(monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed plugin whose module fails to import."""
    real = gateway_plugins._entry_points
    broken = metadata.EntryPoint(
        name="broken_plugin", value="no_such_module_for_mcp_gateway_tests", group="mcp_gateway"
    )
    monkeypatch.setattr(gateway_plugins, "_entry_points", lambda: [*real(), broken])
    return "broken_plugin"


def test_a_plugin_that_fails_to_import_is_a_config_error_naming_it(broken_entry_point: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Gateway.from_config(None, env={}, overrides=STORE)
    message = str(excinfo.value)
    assert "'broken_plugin'" in message and "ModuleNotFoundError" in message
    assert "disabled_plugins" in message


def test_a_plugin_that_fails_to_import_can_be_disabled_in_the_file(
    broken_entry_point: str, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[gateway]\ndisabled_plugins = ["broken_plugin", "folder_guard"]\n\n'
        '[[stores]]\nname = "main"\nstore_id = "1001"\napi_key = "k"\n\n'
        "[folder_guard]\nprotected_folders = [3]\n",
        encoding="utf-8",
    )
    gw = Gateway.from_config(str(path), env={})
    assert gw.config.gateway.disabled_plugins == ["broken_plugin", "folder_guard"]
    assert not gw.pm.has_plugin("broken_plugin") and not gw.pm.has_plugin("folder_guard")
    assert gw.pm.has_plugin("orderdesk")


def test_a_plugin_that_fails_to_import_can_be_disabled_by_override(broken_entry_point: str) -> None:
    gw = Gateway.from_config(None, env={}, overrides={**STORE, "gateway.disabled_plugins": ["broken_plugin"]})
    assert not gw.pm.has_plugin("broken_plugin")


@pytest.mark.parametrize("hook", sorted(gateway_plugins.EACH_IMPL_HOOKS))
def test_a_wrapper_of_a_hook_the_host_awaits_impl_by_impl_is_refused(hook: str) -> None:
    # the host awaits each impl's result itself, so a wrapper would never see it: refused, not skipped
    def wrapper(**kwargs: Any) -> Any:
        return (yield)

    wrapper.__name__ = hook
    plugin = type("Wrapping", (), {hook: staticmethod(hookimpl(wrapper=True)(wrapper))})()
    pm = GatewayPluginManager()
    with pytest.raises(pluggy.PluginValidationError, match=f"{hook} does not take wrapper impls"):
        pm.register(plugin)
    assert not pm.is_registered(plugin)


def test_a_wrapper_of_a_firstresult_hook_is_accepted_and_runs() -> None:
    seen: list[str] = []

    class Wrapping:
        @hookimpl(wrapper=True)
        def gateway_merge(self, ref: Any, current: dict[str, Any], changes: dict[str, Any]) -> Any:
            merged = yield
            seen.append("wrapped")
            return merged

    pm = build_plugin_manager(load_entrypoints=False, extra=[Wrapping()])
    from odmcp.refs import Ref

    assert pm.hook.gateway_merge(
        ref=Ref("s", "page", "1"), current={"a": 1}, changes={"b": 2}, gateway=None
    ) == {
        "a": 1,
        "b": 2,
    }
    assert seen == ["wrapped"]
