"""The ``mcp-gateway`` command line. Every error is one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from gateway import __version__
from gateway.errors import ConfigError, GatewayError

log = logging.getLogger("gateway.cli")

SANDBOX_STORE = {"name": "demo", "store_id": "1001", "api_key": "sandbox-key", "default": True}


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcp-gateway", description="A plugin-based MCP gateway for OrderDesk.")
    p.add_argument("--version", action="version", version=f"mcp-gateway {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, sandbox: bool = True) -> None:
        sp.add_argument("--config", metavar="FILE", help="TOML config file (default: $GATEWAY_CONFIG)")
        if sandbox:
            sp.add_argument(
                "--sandbox",
                action="store_true",
                help="start the embedded OrderDesk sandbox and use it as the store",
            )

    s = sub.add_parser("serve", help="run the MCP server (stdio or Streamable HTTP)")
    common(s)
    s.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    s.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="HTTP port (default 8765)")

    t = sub.add_parser("tools", help="list the tools with their annotations")
    common(t)

    c = sub.add_parser("call", help="call one tool through an in-process MCP client and print the result")
    common(c)
    c.add_argument("tool", help="tool name (canonical orders.get or wire orders_get)")
    c.add_argument("args", nargs="?", default="{}", help="JSON object of arguments")

    pl = sub.add_parser("plugins", help="list plugins: version, source and hooks")
    common(pl, sandbox=False)

    cfg = sub.add_parser("config", help="configuration commands")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    chk = cfg_sub.add_parser("check", help="validate the config and print effective values (secrets masked)")
    common(chk, sandbox=False)

    sb = sub.add_parser("sandbox", help="run the OrderDesk sandbox on its own")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8700)
    sb.add_argument("--no-rate-limit", action="store_true", help="switch off the leaky bucket")
    sb.add_argument(
        "--request-log-size",
        type=int,
        metavar="N",
        help="requests kept for /_sandbox/requests (a ring buffer; default 10000)",
    )

    st = sub.add_parser("stats", help="print cache and tool metrics from a running HTTP gateway")
    st.add_argument("--url", default="http://127.0.0.1:8765", help="the gateway's base URL")
    st.add_argument("--token", help="bearer token (default: $GATEWAY_HTTP_TOKEN)")
    return p


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _overrides(sandbox_url: str | None) -> dict[str, Any]:
    return {"stores": [{**SANDBOX_STORE, "base_url": sandbox_url}]} if sandbox_url else {}


def _build(args: argparse.Namespace, sandbox_url: str | None = None) -> Any:
    from gateway.app import Gateway

    gw = Gateway.from_config(getattr(args, "config", None), overrides=_overrides(sandbox_url))
    _setup_logging(gw.config.gateway.log_level)
    if args.command in ("serve", "call"):
        _ = gw.config.default_store  # no store at all: fail now with the how-to, not on the first call
    return gw


@asynccontextmanager
async def _maybe_sandbox(enabled: bool) -> AsyncIterator[str | None]:
    if not enabled:
        yield None
        return
    from plugins.orderdesk.sandbox.server import Sandbox

    async with Sandbox() as sb:
        yield sb.base_url


def _resolve_tool(gw: Any, name: str) -> str:
    from gateway.tools import wire_name

    style = gw.config.gateway.tool_names
    for spec in gw.tools:
        if name in (spec.name, wire_name(spec.name, style), wire_name(spec.name, "underscore")):
            return wire_name(spec.name, style)
    raise CliError(f"unknown tool {name!r}; run 'mcp-gateway tools' to list them")


async def _serve(args: argparse.Namespace) -> int:
    async with _maybe_sandbox(args.sandbox) as url:
        gw = _build(args, url)
        if args.transport == "stdio":
            from gateway.server import build_server

            if sys.stdin.isatty():
                print(
                    "mcp-gateway is waiting for an MCP client on stdin/stdout.\n"
                    "  Connect one by adding this command to your client's mcpServers config "
                    "(see examples/claude_desktop_config.json),\n"
                    "  or run it over HTTP instead: mcp-gateway serve --transport http"
                    + (" --sandbox" if args.sandbox else ""),
                    file=sys.stderr,
                )
            await build_server(gw).run_stdio_async()
            return 0
        from gateway.http import build_http_app, reload_tokens
        from gateway.http_server import serve

        host = args.host or gw.config.http.host
        port = args.port or gw.config.http.port
        app = build_http_app(gw, host, port)
        shown = f"[{host}]" if ":" in host else host
        print(
            f"mcp-gateway {__version__} serving MCP at http://{shown}:{port}{gw.config.http.path}"
            + (f" (sandbox store at {url})" if url else ""),
            file=sys.stderr,
            flush=True,
        )
        overrides = _overrides(url)

        async def on_reload() -> None:
            await reload_tokens(app, gw, getattr(args, "config", None), overrides)

        await serve(app, gw.config.http, host, port, on_reload=on_reload)
        return 0


async def _tools(args: argparse.Namespace) -> int:
    from gateway.tools import wire_name

    async with _maybe_sandbox(args.sandbox) as url:
        gw = _build(args, url)
        style = gw.config.gateway.tool_names
        for spec in gw.tools:
            hints = [
                h
                for h, on in (
                    ("readOnly", spec.read_only),
                    ("destructive", spec.destructive),
                    ("idempotent", spec.idempotent),
                    ("openWorld", spec.open_world),
                )
                if on
            ]
            summary = spec.description.strip().splitlines()[0]
            hidden = " (hidden: read-only mode)" if spec.writes and gw.config.gateway.read_only else ""
            print(f"{wire_name(spec.name, style):28} [{', '.join(hints) or 'write'}] {summary}{hidden}")
    return 0


async def _call(args: argparse.Namespace) -> int:
    from mcp import Client

    from gateway.middleware import error_of
    from gateway.server import build_server

    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as err:
        raise CliError(f"ARGS is not valid JSON ({err.msg} at position {err.pos})") from None
    if not isinstance(arguments, dict):
        raise CliError('ARGS must be a JSON object, e.g. \'{"order_id": "1001"}\'')
    async with _maybe_sandbox(args.sandbox) as url:
        gw = _build(args, url)
        name = _resolve_tool(gw, args.tool)
        async with Client(build_server(gw)) as client:
            result = await client.call_tool(name, arguments)
        coded = error_of(result)
        out = {"error": coded} if coded else result.structured_content
        if out is None:
            out = {"content": [getattr(c, "text", str(c)) for c in result.content]}
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return 1 if result.is_error else 0


def _plugins(args: argparse.Namespace) -> int:
    from gateway.plugins import describe_plugins

    gw = _build(args)
    for p in describe_plugins(gw.pm):
        print(f"{p['name']} {p['version']} [{p['source']}]")
        print(f"    hooks: {', '.join(p['hooks']) or '-'}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from gateway.config import masked

    gw = _build(args)
    print(f"# config OK: {gw.config.source}")
    print(json.dumps(masked(gw.config), indent=2, default=str))
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from plugins.orderdesk.sandbox.server import run_forever

    if args.request_log_size is not None and args.request_log_size < 1:
        raise CliError(f"--request-log-size must be >= 1, got {args.request_log_size}")
    run_forever(
        args.host, args.port, rate_limit=not args.no_rate_limit, request_log_size=args.request_log_size
    )
    return 0


async def _stats(args: argparse.Namespace) -> int:
    import aiohttp

    token = args.token or os.environ.get("GATEWAY_HTTP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(args.url.rstrip("/") + "/metrics", headers=headers) as r,
        ):
            if r.status != 200:
                raise CliError(f"{args.url}/metrics answered HTTP {r.status}")
            print(await r.text(), end="")
    except aiohttp.ClientError as err:
        raise CliError(
            f"cannot reach {args.url} ({type(err).__name__}); is 'serve --transport http' running?"
        ) from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        if args.command == "tools":
            return asyncio.run(_tools(args))
        if args.command == "call":
            return asyncio.run(_call(args))
        if args.command == "plugins":
            return _plugins(args)
        if args.command == "config":
            if args.config_command != "check":
                parser.parse_args(["config", "--help"])
            return _config_check(args)
        if args.command == "sandbox":
            return _sandbox(args)
        if args.command == "stats":
            return asyncio.run(_stats(args))
        parser.print_help()
        return 2
    except KeyboardInterrupt:
        return 130
    except (CliError, ConfigError) as err:
        print(f"mcp-gateway: error: {err}", file=sys.stderr)
        return 2
    except GatewayError as err:
        print(f"mcp-gateway: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug: one line here, the traceback only with GATEWAY_LOG_LEVEL=DEBUG
        log.debug("unexpected error", exc_info=True)
        print(f"mcp-gateway: unexpected error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
