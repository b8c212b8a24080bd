"""The mcp-gateway command line: one-line errors, JSON output, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from gateway.cli import main
from gateway.testing import free_port

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("GATEWAY_", "ORDERDESK_")):
            monkeypatch.delenv(k)


def test_tools_lists_one_line_per_tool_with_annotations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--sandbox"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines}
    assert "readOnly" in by_name["orders_get"] and "destructive" in by_name["orders_delete"]
    assert len(lines) == len(by_name) >= 20


def test_call_prints_json_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "orders.get", '{"order_id": "200003"}', "--sandbox"]) == 0
    assert json.loads(capsys.readouterr().out)["order"]["id"] == "200003"


def test_call_tool_error_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "orders_get", '{"order_id": "999999"}', "--sandbox"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["call", "orders_get", "{not json", "--sandbox"], "ARGS is not valid JSON"),
        (["call", "orders_get", "[1]", "--sandbox"], "ARGS must be a JSON object"),
        (["call", "no_such_tool", "{}", "--sandbox"], "unknown tool 'no_such_tool'"),
        (["config", "check", "--config", "/nonexistent.toml"], "config file not found"),
        (["call", "orders_get", "{}"], "no OrderDesk store configured"),
        (["serve"], "no OrderDesk store configured"),
    ],
)
def test_errors_are_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_config_check_prints_effective_values_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        '[[stores]]\nname = "main"\nstore_id = "9"\napi_key = { "$env" = "MY_KEY" }\n'
        '[http]\ntoken = "bearer-secret-123"\n'
    )
    monkeypatch.setenv("MY_KEY", "api-secret-456")
    assert main(["config", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"config OK: {cfg}" in out
    effective = json.loads(out.split("\n", 1)[1])
    assert effective["stores"][0]["store_id"] == "9" and effective["stores"][0]["api_key"] == "***"
    assert "api-secret-456" not in out and "bearer-secret-123" not in out


EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_config_check_runs_on_every_shipped_example_and_shows_no_secret(
    example: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # every {"$env" = NAME} the example names, with a value that must never be printed in clear
    names = set(re.findall(r'"\$env"\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"', example.read_text()))
    for name in names:
        monkeypatch.setenv(name, f"val-{name.lower()}-4242")
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://:redis-pass-4242@redis.internal:6379/0")
    assert main(["config", "check", "--config", str(example)]) == 0
    captured = capsys.readouterr()
    effective = json.loads(captured.out.split("\n", 1)[1])
    assert effective["cache"]["redis_url"] == "redis://:***@redis.internal:6379/0"
    secrets = [n for n in names if "KEY" in n or "TOKEN" in n]
    assert secrets and not [n for n in secrets if f"val-{n.lower()}-4242" in captured.out]
    assert "redis-pass-4242" not in captured.out and "Traceback" not in captured.err
    # a non-secret field may come from the environment too, and is shown as the value it has
    stores = {s["name"]: s["store_id"] for s in effective["stores"]}
    assert all(v.startswith("val-") and v.endswith("_store_id-4242") for v in stores.values()), stores


def test_config_check_masks_a_redis_password_from_an_env_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        '[[stores]]\nname = "main"\nstore_id = "9"\napi_key = "k-1"\n'
        '[cache]\nbackend = "redis"\nredis_url = { "$env" = "MY_REDIS" }\n'
    )
    monkeypatch.setenv("MY_REDIS", "rediss://app:hunter2-secret@cache.internal:6380/1")
    assert main(["config", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "hunter2-secret" not in out
    assert json.loads(out.split("\n", 1)[1])["cache"]["redis_url"] == "rediss://app:***@cache.internal:6380/1"


def test_plugins_lists_version_source_and_hooks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERDESK_STORE_ID", "1")
    monkeypatch.setenv("ORDERDESK_API_KEY", "k")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "orderdesk 0.1.0 [built-in (mcp-gateway 0.1.0)]" in out
    assert "gateway_fetch" in out and "gateway_register_cache_backends" in out


@pytest.mark.parametrize(
    "sub",
    [
        [],
        ["serve"],
        ["tools"],
        ["call"],
        ["plugins"],
        ["config"],
        ["config", "check"],
        ["sandbox"],
        ["stats"],
    ],
)
def test_help_works_everywhere(sub: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*sub, "--help"])
    assert info.value.code == 0 and "usage: mcp-gateway" in capsys.readouterr().out


def test_python_dash_m_gateway_is_the_same_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and out.stdout.strip() == "mcp-gateway 0.1.0"


async def test_serve_sandbox_over_http_prints_the_url_and_answers() -> None:
    """The README's first command: serve the embedded sandbox over HTTP."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--transport", "http", "--sandbox", "--port", str(port)],
        env=CLEAN_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"serving MCP at http://127.0.0.1:{port}/mcp" in line
        deadline = time.monotonic() + 20
        while True:
            try:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    result = await client.call_tool("orders_list", {"limit": 3})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert not result.is_error and result.structured_content["records_returned"] == 3
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_stdio_serve_on_a_terminal_says_it_waits_for_a_client() -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--sandbox"],
        stdin=follower,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=CLEAN_ENV,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline() + proc.stderr.readline() + proc.stderr.readline()
        assert "waiting for an MCP client" in first and "--transport http" in first
    finally:
        proc.kill()
        proc.wait(10)
        os.close(leader)
        os.close(follower)
        if proc.stderr is not None:
            proc.stderr.close()


async def test_stats_prints_the_metrics_of_a_running_gateway(
    gateway_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import _parser, _stats
    from gateway.testing import connect, serve_http

    gw = gateway_factory(overrides={"http.token": "stats-token-1"})
    async with serve_http(gw) as base, connect(gw) as client:
        await client.call_tool("orders_get", {"order_id": "200001"})
        await client.call_tool("orders_get", {"order_id": "200001"})
        assert await _stats(_parser().parse_args(["stats", "--url", base, "--token", "stats-token-1"])) == 0
        out = capsys.readouterr().out
        with pytest.raises(Exception, match="answered HTTP 401"):
            await _stats(_parser().parse_args(["stats", "--url", base, "--token", "wrong"]))
    assert "mcpgw_cache_hits_total 1" in out and "mcpgw_cache_misses_total 1" in out
    assert 'mcpgw_tool_calls_total{outcome="ok",tool="orders.get"} 2' in out
