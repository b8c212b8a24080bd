"""The plugins shipped here use the host only through its public API module, ``odmcp.api``: no other
host module, and no private name of a host object (``gateway.workflow._lock_key`` was one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import odmcp.api

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FILES = sorted(p for folder in ("plugins", "examples/plugins") for p in (ROOT / folder).rglob("*.py"))
#: names a plugin calls the host objects it is handed
HOST_OBJECTS = {"gateway", "gw", "wf", "workflow", "route", "call"}


def _host_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "odmcp" or node.module.startswith("odmcp."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "odmcp" or a.name.startswith("odmcp.")]
    return found


def _private_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in HOST_OBJECTS:
                found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_there_are_plugin_files_to_check() -> None:
    assert len(PLUGIN_FILES) > 20


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_plugin_imports_only_the_public_api(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert [m for m in _host_imports(tree) if m != "odmcp.api"] == []
    assert _private_uses(tree) == []


def test_every_public_name_is_there() -> None:
    missing = [n for n in odmcp.api.__all__ if not hasattr(odmcp.api, n)]
    assert missing == []
