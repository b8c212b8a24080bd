"""With a third party's store plugin installed (tests/toy_store.py, a ``wiki`` store type, through a
real ``mcp_gateway`` entry point), an OrderDesk set-up keeps working: the same config, the same
commands, and a representative part of this suite passes as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: the suite's own checks of tool lists, toolsets and config, run with the plugin installed
SUBSET = [
    "tests/gateway/test_tool_list.py",
    "tests/gateway/test_toolsets.py",  # the `tools` command too
    "tests/multistore/test_tool_lists_per_caller.py",
]


def installed(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``toy_store`` is installed: a dist-info with its entry point."""
    dist = tmp_path / "site" / "toy_store-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-store\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mcp_gateway]\ntoy_store = toy_store:PLUGIN\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(dist.parent), str(TESTS)])
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_an_orderdesk_setup_works_unchanged_with_a_second_store_type_installed(tmp_path: Path) -> None:
    env = installed(tmp_path)
    config = tmp_path / "gateway.toml"
    config.write_text('[[stores]]\nname = "main"\nstore_id = "1"\napi_key = "k"\n')  # no type: as always

    plugins = run(["-m", "odmcp", "plugins"], env, tmp_path)
    assert plugins.returncode == 0, plugins.stderr
    assert "toy_store 0.1 [entry point (toy-store 0.1)]" in plugins.stdout

    check = run(["-m", "odmcp", "config", "check", "--config", str(config)], env, tmp_path)
    assert check.returncode == 0, check.stderr
    assert '"type": "orderdesk"' in check.stdout  # told from its fields: only OrderDesk has api_key

    root = TESTS.parent
    suite = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET], env, root)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]
