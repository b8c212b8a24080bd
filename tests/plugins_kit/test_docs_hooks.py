"""docs/plugins.md and the hookspecs cannot drift apart (datasette's test_plugin_hooks_are_documented).

Every hookspec needs a docstring, a ``## <hook>`` section, and the exact signature string built from
``hook_caller.spec.argnames``. Every python example in the hook reference must be a self-contained
plugin module that the plugin manager accepts (async rules and ``check_pending()`` included).
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest

import odmcp_cache_memory.plugin as memory_cache
import odmcp_journal_sqlite.plugin as sqlite_journal
from odmcp import hookspecs
from odmcp.app import Gateway
from odmcp.config import StoreSettings
from odmcp.plugins import GatewayPluginManager, _plugin_error, build_plugin_manager
from odmcp.server import build_server
from odmcp.testing import connect
from odmcp_orderdesk.testing import new_order

DOCS = Path(__file__).resolve().parents[2] / "docs"
PLUGINS_MD = DOCS / "plugins.md"
WRITING_MD = DOCS / "writing-plugins.md"
STORE = {"stores": [{"name": "main", "store_id": "1001", "api_key": "k"}]}


def _hook_callers() -> dict[str, object]:
    pm = GatewayPluginManager()
    return {name: caller for name, caller in vars(pm.hook).items() if name.startswith("gateway_")}


HOOKS = _hook_callers()


def _signature(caller: object) -> str:
    spec = caller.spec  # type: ignore[attr-defined]
    return f"{caller.name}({', '.join(spec.argnames)})"  # type: ignore[attr-defined]


def _sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next ``##`` heading."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.M)
    return {parts[i].strip().strip("`"): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def test_every_hookspec_module_function_is_a_registered_hook() -> None:
    declared = {n for n in dir(hookspecs) if n.startswith("gateway_")}
    assert declared == set(HOOKS)
    assert len(HOOKS) >= 15


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hookspec_has_a_docstring(name: str) -> None:
    doc = (HOOKS[name].spec.function.__doc__ or "").strip()  # type: ignore[attr-defined]
    assert doc, f"hookspec {name} has no docstring; its docstring is its contract"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    text = PLUGINS_MD.read_text(encoding="utf-8")
    sections = _sections(text)
    if name not in sections:
        pytest.fail(f"docs/plugins.md has no '## {name}' section")
    signature = _signature(HOOKS[name])
    assert f"`{signature}`" in sections[name], (
        f"docs/plugins.md section '## {name}' lacks the exact signature `{signature}`"
    )
    for arg in HOOKS[name].spec.argnames:  # type: ignore[attr-defined]
        assert f"`{arg}`" in sections[name], f"'## {name}' does not explain the argument `{arg}`"
    assert "```python" in sections[name], f"'## {name}' has no example"


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    documented = {h for h in _sections(PLUGINS_MD.read_text(encoding="utf-8")) if h.startswith("gateway_")}
    assert documented <= set(HOOKS), f"stale hook sections: {sorted(documented - set(HOOKS))}"


def test_lifecycle_diagram_names_every_hook() -> None:
    blocks = _code_blocks(PLUGINS_MD.read_text(encoding="utf-8"), "mermaid")
    assert blocks, "docs/plugins.md has no mermaid lifecycle diagram"
    diagram = "\n".join(blocks)
    missing = [name for name in HOOKS if name not in diagram]
    assert not missing, f"the lifecycle diagram does not show {missing}"


def _example_modules() -> list[types.ModuleType]:
    modules = []
    for i, source in enumerate(_code_blocks(PLUGINS_MD.read_text(encoding="utf-8"), "python")):
        module = types.ModuleType(f"docs_example_{i}")
        sys.modules[module.__name__] = module  # as for any imported module: its annotations resolve there
        exec(compile(source, f"docs/plugins.md example {i}", "exec"), module.__dict__)
        modules.append(module)
    return modules


def test_every_hook_reference_example_is_an_accepted_plugin() -> None:
    modules = _example_modules()
    assert len(modules) >= len(HOOKS)
    shown = set()
    for module in modules:
        pm = build_plugin_manager(load_entrypoints=False, extra=[module])
        callers = pm.get_hookcallers(module) or []
        assert callers, f"{module.__name__} implements no hook"
        shown |= {c.name for c in callers}
        # a whole gateway (tools, schemas, config sections) builds with the example installed
        if any(isinstance(v, type) and issubclass(v, StoreSettings) for v in vars(module).values()):
            # a store plugin's own store type: it stands in for OrderDesk's, with the memory cache and
            # the sqlite journal only
            store = {"stores": [{"name": "main", "store_id": "1001", "token": "t"}]}
            plugins = [memory_cache, sqlite_journal, module]
            gw = Gateway.from_config(
                None, env={}, overrides=store, extra_plugins=plugins, load_entrypoints=False
            )
            assert type(gw.config.stores[0]).__name__ == "WikiStore"
        else:
            gw = Gateway.from_config(None, env={}, overrides=STORE, extra_plugins=[module])
        build_server(gw)
    assert shown == set(HOOKS), f"no example implements {sorted(set(HOOKS) - shown)}"


def test_the_register_commands_example_runs_as_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The section's example is installed and its console session replayed through the real CLI."""
    from odmcp.cli import main

    section = _sections(PLUGINS_MD.read_text(encoding="utf-8"))["gateway_register_commands"]
    [source] = _code_blocks(section, "python")
    [console] = _code_blocks(section, "console")
    module = types.ModuleType("docs_register_commands")
    exec(compile(source, "docs/plugins.md gateway_register_commands", "exec"), module.__dict__)
    command, *expected = console.strip().splitlines()
    assert command.startswith("$ mcp-gateway ")
    assert main(shlex.split(command)[2:], plugins=[module]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    # the switch reaches the gateway the command builds: write tools are hidden in read-only mode
    for var in ("GATEWAY_CONFIG", "GATEWAY_READ_ONLY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ORDERDESK_STORE_ID", "1")
    monkeypatch.setenv("ORDERDESK_API_KEY", "k")
    assert main(["tools", "--safe"], plugins=[module]) == 0
    lines = capsys.readouterr().out.splitlines()
    hidden = [line.split()[0] for line in lines if "(hidden: read-only mode)" in line]
    assert "orders_update" in hidden and "orders_get" not in hidden
    assert main(["tools"], plugins=[module]) == 0
    assert "hidden" not in capsys.readouterr().out


async def test_the_list_and_search_example_is_a_cached_tool(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    [source] = [b for b in _code_blocks(WRITING_MD.read_text(encoding="utf-8"), "python") if "read_list" in b]
    module = types.ModuleType("docs_orders_by_email")
    exec(compile(source, "docs/writing-plugins.md orders_by_email", "exec"), module.__dict__)
    email = orderdesk_sandbox.orders()[0]["email"]
    theirs = {o["id"] for o in orderdesk_sandbox.orders() if o["email"] == email}

    def searches() -> int:
        # orders_create looks for its source_id first (GET /orders?source_id=...): not this tool's search
        listed = orderdesk_sandbox.requests(method="GET", path_regex=r"^/orders$")
        return len([r for r in listed if "source_id" not in r.query])

    async with connect(gateway_factory(plugins=[module])) as client:
        first = await client.call_tool("orders_by_email", {"email": email})
        second = await client.call_tool("orders_by_email", {"email": email})
        assert not first.is_error and first.structured_content == second.structured_content
        assert {o["id"] for o in first.structured_content["orders"]} == theirs and searches() == 1
        created = await client.call_tool(
            "orders_create", {"order": new_order(email=email, source_id="DOC-1")}
        )
        third = await client.call_tool("orders_by_email", {"email": email})
    new_id = created.structured_content["order"]["id"]
    assert third.structured_content["orders"][0]["id"] == new_id and searches() == 2


def test_toml_snippets_parse() -> None:
    for path in (PLUGINS_MD, WRITING_MD):
        for source in _code_blocks(path.read_text(encoding="utf-8"), "toml"):
            tomllib.loads(source)


def test_writing_plugins_examples_parse_and_show_the_entry_point() -> None:
    text = WRITING_MD.read_text(encoding="utf-8")
    for source in _code_blocks(text, "python"):
        ast.parse(source)
    assert "[project.entry-points.mcp_gateway]" in text
    assert 'folder_guard = "folder_guard"' in text
    for name in (
        "orderdesk_sandbox",
        "gateway_factory",
        "gateway_client",
        "connect",
        "@pytest.mark.gateway",
        "disabled_plugins",
        "GATEWAY_TRACE_HOOKS",
        "gateway_register_config",
    ):
        assert name in text, f"docs/writing-plugins.md does not mention {name}"


def test_writing_plugins_shows_folder_guards_real_pyproject() -> None:
    pyproject = (DOCS.parent / "examples" / "plugins" / "folder_guard" / "pyproject.toml").read_text(
        encoding="utf-8"
    )
    assert pyproject in _code_blocks(WRITING_MD.read_text(encoding="utf-8"), "toml")


def test_writing_plugins_shows_the_real_error_json() -> None:
    blocks = _code_blocks(WRITING_MD.read_text(encoding="utf-8"), "json")
    assert len(blocks) == 1
    shown = json.loads(blocks[0])["mcp-gateway/error"]
    err = _plugin_error(KeyError("k"), "folder_guard", "gateway_tool_pre_invoke")
    assert list(shown.items()) == list(err.to_dict().items())


async def test_the_store_plugin_section_serves_its_store_through_the_write_route(
    gateway_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/writing-plugins.md "A store plugin", run as written: a store type of its own beside the
    OrderDesk plugin, its reads cached, its update through the write route (a field refused, a
    concurrent edit retried), its delete refused without confirmation, then done with it."""
    from odmcp.api import hookimpl as api_hookimpl
    from odmcp.middleware import error_of

    [source] = [
        b for b in _code_blocks(WRITING_MD.read_text(encoding="utf-8"), "python") if "PagesStore" in b
    ]
    module = types.ModuleType("docs_pages_store")
    # in sys.modules, as an installed plugin's module is (msgspec reads its type hints from there)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "docs/writing-plugins.md pages store", "exec"), module.__dict__)
    pages = module.PAGES

    class Editor:  # "someone else" edits the page once, between the snapshot and the upload
        done = False

        @api_hookimpl(tryfirst=True)
        def gateway_merge(self, ref: Any) -> None:
            if ref.kind == "page" and not self.done:
                self.done = True
                pages["1"] = {**pages["1"], "body": "60 days", "version": pages["1"]["version"] + 1}

    stores = [{"name": "wiki", "type": "pages", "store_id": "w1", "default": True}]
    gw = gateway_factory(
        plugins=[module, Editor()], overrides={"stores": stores, "gateway.toolsets": ["all"]}
    )
    async with connect(gw) as c:
        first = await c.call_tool("pages_get", {"page_id": "1"})
        typo = await c.call_tool("pages_update", {"page_id": "1", "changes": {"titel": "x"}})
        updated = await c.call_tool("pages_update", {"page_id": "1", "changes": {"title": "Refunds"}})
        again = await c.call_tool("pages_get", {"page_id": "1"})
        refused = await c.call_tool("pages_delete", {"page_id": "1"})
        deleted = await c.call_tool("pages_delete", {"page_id": "1", "confirm": True})
        gone = await c.call_tool("pages_get", {"page_id": "1"})
    assert first.structured_content["title"] == "Returns"
    assert error_of(typo)["code"] == "VALIDATION" and "'titel'" in error_of(typo)["message"]
    assert not updated.is_error, updated.content[0].text
    assert updated.structured_content["page"]["title"] == "Refunds" and updated.structured_content[
        "changed"
    ] == ["title"]
    # the concurrent edit was kept: the route re-read, merged again and uploaded once more
    assert again.structured_content["body"] == "60 days" and again.structured_content["title"] == "Refunds"
    assert error_of(refused)["code"] == "CONFIRMATION_REQUIRED"
    assert deleted.structured_content == {"deleted": True, "id": "1"}
    assert error_of(gone)["code"] == "NOT_FOUND" and "1" not in pages
