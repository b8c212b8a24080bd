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

from odmcp.cli import main
from odmcp.testing import free_port

STORE_ENV = {"ORDERDESK_STORE_ID": "1", "ORDERDESK_API_KEY": "k"}
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
        (["call", "orders_get", "{}"], "no store configured: set ORDERDESK_STORE_ID and ORDERDESK_API_KEY"),
        (["serve"], "no store configured: set ORDERDESK_STORE_ID and ORDERDESK_API_KEY"),
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
    assert "orderdesk 0.1.0 [built-in (orderdesk-mcp-gateway 0.1.0)]" in out
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
        [sys.executable, "-m", "odmcp", "--version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and out.stdout.strip() == "mcp-gateway 0.1.0"


async def test_serve_sandbox_over_http_prints_the_url_and_answers() -> None:
    """The README's first command: serve the embedded sandbox over HTTP."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "odmcp", "serve", "--transport", "http", "--sandbox", "--port", str(port)],
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
        assert not result.is_error and len(result.structured_content["orders"]) == 3
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_stdio_serve_on_a_terminal_says_it_waits_for_a_client() -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "odmcp", "serve", "--sandbox"],
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
    from odmcp.cli import _parser, _stats
    from odmcp.testing import connect, serve_http

    gw = gateway_factory(overrides={"http.token": "stats-token-1"})
    async with serve_http(gw) as base, connect(gw) as client:
        await client.call_tool("orders_get", {"order_id": "200001"})
        await client.call_tool("orders_get", {"order_id": "200001"})
        assert (
            await _stats(_parser()[0].parse_args(["stats", "--url", base, "--token", "stats-token-1"])) == 0
        )
        out = capsys.readouterr().out
        with pytest.raises(Exception, match="answered HTTP 401"):
            await _stats(_parser()[0].parse_args(["stats", "--url", base, "--token", "wrong"]))
    assert "mcpgw_cache_hits_total 1" in out and "mcpgw_cache_misses_total 1" in out
    assert 'mcpgw_tool_calls_total{outcome="ok",tool="orders.get"} 2' in out


# --- mistakes that must end in one line, before anything says "serving" ---------------------------


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "serving" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "99999"], "argument --port: 99999 is not a port number; use 1-65535"),
        (["serve", "--transport", "http", "--port", "http"], "'http' is not a port number"),
        (["sandbox", "--port", "0"], "argument --port: 0 is not a port number"),
        (["serve", "--transport", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_usage_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert message in line and line.endswith(f"(see 'mcp-gateway {argv[0]} --help')")


def test_port_without_http_transport_says_to_add_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--sandbox", "--port", "8000"]) == 2
    assert "--port and --host need --transport http" in _one_line(capsys.readouterr().err)


@pytest.fixture
def taken_port() -> Any:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "sandbox"])
def test_a_port_in_use_is_one_line_that_says_what_to_do(
    command: str, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--transport", "http", "--sandbox"] if command == "serve" else ["sandbox"]
    assert main([*argv, "--port", str(taken_port)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"port {taken_port} on 127.0.0.1 is already in use" in line and "--port" in line


def test_a_port_in_use_stops_the_serve_process_before_it_claims_to_serve(taken_port: int) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "odmcp",
            "serve",
            "--transport",
            "http",
            "--sandbox",
            "--port",
            str(taken_port),
        ],
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert "already in use" in _one_line(out.stderr)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", "not a Redis URL (no scheme); use redis://"),
        ("redis://127.0.0.1:6379?cluster=yes-please", "unsupported Redis URL option cluster='yes-please'"),
        ("redis://127.0.0.1:notaport/0", "Port could not be cast to integer"),
        ("redis://:pa55word@127.0.0.1:{free}/0", "cache at redis://:***@127.0.0.1:{free}/0 does not answer"),
    ],
)
@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_a_bad_or_unreachable_redis_url_fails_before_serving(
    url: str,
    message: str,
    transport: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    free = str(free_port())
    monkeypatch.setenv("GATEWAY_CACHE", "redis")
    monkeypatch.setenv("GATEWAY_REDIS_URL", url.format(free=free))
    argv = ["serve", "--sandbox"] + (
        ["--transport", "http", "--port", str(free_port())] if transport == "http" else []
    )
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert message.format(free=free) in line
    assert "environment variable GATEWAY_REDIS_URL" in line and "GATEWAY_CACHE=memory" in line
    assert "pa55word" not in line


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORDERDESK_STORE_ID": "1"}, "environment variable ORDERDESK_API_KEY is not set"),
        (
            {"ORDERDESK_STORE_ID": "1", "ORDERDESK_API_KEY": "k", "ORDERDESK_BASE_URL": "ftp://x"},
            "environment variable ORDERDESK_BASE_URL: expected an http(s) URL",
        ),
        ({"ORDERDESK_STORE_ID": "1", "ORDERDESK_API_KEY": ""}, "environment variable ORDERDESK_API_KEY"),
        (
            {**STORE_ENV, "GATEWAY_CACHE_PREFIX": "has space"},
            "environment variable GATEWAY_CACHE_PREFIX: expected 1-64",
        ),
        (
            {**STORE_ENV, "GATEWAY_TOOL_NAMES": "dots"},
            "environment variable GATEWAY_TOOL_NAMES: invalid enum value 'dots'",
        ),
        (
            {**STORE_ENV, "GATEWAY_CACHE": "memcached"},
            "environment variable GATEWAY_CACHE: unknown cache backend",
        ),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["config", "check"]])
def test_a_config_error_from_the_environment_names_the_variable(
    env: dict[str, str],
    message: str,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(command) == 2
    line = _one_line(capsys.readouterr().err)
    assert message in line and "<defaults>" not in line


def test_config_check_flags_a_deployment_without_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[cache]\nbackend = "memory"\n')
    assert main(["config", "check", "--config", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert (
        "no store configured: set ORDERDESK_STORE_ID and ORDERDESK_API_KEY" in _one_line(captured.err)
        and "config OK" not in captured.out
    )


def test_a_plugin_command_that_clashes_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from odmcp import hookimpl

    class Clash:
        @hookimpl
        def gateway_register_commands(self, cli: Any) -> None:
            cli.add_command("serve", lambda args: 0, help="a second serve")

    assert main(["--version"], plugins=[Clash()]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "plugin 'Clash' failed in hook gateway_register_commands" in line


def test_sandbox_and_the_sandbox_switch_come_from_the_orderdesk_plugin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[gateway]\ndisabled_plugins = ["orderdesk"]\n')
    monkeypatch.setenv("GATEWAY_CONFIG", str(cfg))
    with pytest.raises(SystemExit):
        main(["sandbox"])
    assert "invalid choice: 'sandbox'" in _one_line(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["tools", "--sandbox"])
    assert "unrecognized arguments: --sandbox" in _one_line(capsys.readouterr().err)


def test_config_check_names_every_missing_variable_and_every_typo_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    assert main(["config", "check", "--config", str(examples / "replicas.toml")]) == 2
    lines = capsys.readouterr().err.splitlines()
    missing = [re.search(r"environment variable (\w+) is not set", line) for line in lines]
    assert len(lines) == 7 and all(missing)  # the seven variables the example needs, at once
    assert {m.group(1) for m in missing if m} >= {"GATEWAY_STATE_KEY", "ORDERDESK_EU_API_KEY"}

    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        '[gateway]\ntool_name = "dotted"\nread_onyl = true\n[cache]\nbakend = "memory"\n'
        '[[stores]]\nname = "s"\nstore_id = "1"\napi_key = {"$env" = "UNSET_KEY"}\nbase_ulr = "x"\n'
    )
    assert main(["config", "check", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mcp-gateway: error: {cfg}: key stores[0].api_key: environment variable UNSET_KEY is not set",
        f"mcp-gateway: error: {cfg}: key gateway.tool_name: unknown key; did you mean tool_names?",
        f"mcp-gateway: error: {cfg}: key gateway.read_onyl: unknown key; did you mean read_only?",
        f"mcp-gateway: error: {cfg}: key cache.bakend: unknown key; did you mean backend?",
        f"mcp-gateway: error: {cfg}: key stores[0].base_ulr: unknown key; did you mean base_url?",
    ]


def test_config_check_refuses_what_serve_refuses_and_warns_about_a_base_url_without_api_v2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gw.toml"
    store = '[[stores]]\nname = "s"\nstore_id = "1"\napi_key = "k"\nbase_url = "https://app.orderdesk.me"\n'
    cfg.write_text(store + '[cache]\nbackend = "redis"\nredis_url = "notaurl"\n')
    assert main(["config", "check", "--config", str(cfg)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "the 'redis' cache can't use its settings" in line and "key cache.redis_url" in line

    cfg.write_text(store)  # valid, but every call would end in a 404: a warning, and the check passes
    assert main(["config", "check", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert (
        f"# warning: {cfg}: key stores[0].base_url: 'https://app.orderdesk.me' does not end in /api/v2" in out
    )


def test_call_into_a_closed_pipe_exits_quietly() -> None:
    # the reader is gone before anything is written (``mcp-gateway call ... | head`` that has had enough)
    proc = subprocess.Popen(
        [sys.executable, "-m", "odmcp", "call", "gateway_ping"],
        env={**CLEAN_ENV, **STORE_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the only read end: the child's write fails with EPIPE
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(60) == 141 and err == ""  # no traceback, no "unexpected error"


def test_the_sandbox_run_as_a_background_job_stops_on_sigint() -> None:
    import signal

    port = free_port()
    # a shell starts a background job (``mcp-gateway sandbox &``) with SIGINT ignored
    proc = subprocess.Popen(
        [sys.executable, "-m", "odmcp", "sandbox", "--port", str(port)],
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        first = proc.stdout.readline()
        assert first == f"OrderDesk sandbox listening on http://127.0.0.1:{port}/api/v2\n"
        store = proc.stdout.readline()
        assert re.match(r"  store id: \S+  api key: \S+", store)  # what README's sandbox section shows
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stderr.read() == ""
