"""The ``mcp-gateway`` command line. Every error is one line on stderr, never a traceback.

Plugins add commands and options through the ``gateway_register_commands`` hook (see :class:`Commands`);
the OrderDesk plugin adds ``sandbox`` and ``--sandbox`` that way.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import inspect
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from odmcp import __version__
from odmcp.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from odmcp.app import Gateway

log = logging.getLogger("odmcp.cli")

#: what a command's ``run(args)`` returns: the exit status, or an awaitable of it
Run = Callable[[argparse.Namespace], "int | Awaitable[int]"]
#: what a gateway option's ``enter(args)`` returns: an async context manager yielding config overrides
Enter = Callable[[argparse.Namespace], AbstractAsyncContextManager[Mapping[str, Any]]]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def port_number(text: str) -> int:
    """An argparse ``type`` for a TCP port to listen on: 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; use 1-65535, e.g. 8765") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number; use 1-65535, e.g. 8765")
    return port


def listen_error(host: str, port: int, err: OSError) -> CliError:
    """Why ``host:port`` can't be listened on, and what to do, as one line."""
    if err.errno == errno.EADDRINUSE:
        return CliError(
            f"port {port} on {host} is already in use (an mcp-gateway or sandbox still running?); "
            "stop that process or choose another port with --port"
        )
    if err.errno == errno.EACCES:
        return CliError(f"no permission to listen on port {port}; choose a port above 1023 with --port")
    if err.errno == errno.EADDRNOTAVAIL or isinstance(err, socket.gaierror):
        return CliError(
            f"cannot listen on {host!r}: not an address of this machine; "
            "use --host 127.0.0.1 (or 0.0.0.0 for every interface)"
        )
    return CliError(
        f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --host or --port"
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``, as servers bind), or a :class:`CliError`."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise listen_error(host, port, err) from None
    return sock


@dataclass(frozen=True)
class GatewayOption:
    flag: str
    dest: str
    enter: Enter


class Commands:
    """``cli`` in ``gateway_register_commands``: how a plugin adds to the command line."""

    def __init__(
        self, subparsers: argparse._SubParsersAction[Any], gateway_parsers: list[argparse.ArgumentParser]
    ) -> None:
        self._subparsers = subparsers
        self._gateway_parsers = gateway_parsers
        #: the options added with :meth:`add_gateway_option`, in registration order
        self.options: list[GatewayOption] = []

    def add_command(
        self,
        name: str,
        run: Run,
        *,
        help: str,
        arguments: Callable[[argparse.ArgumentParser], object] | None = None,
    ) -> argparse.ArgumentParser:
        """Add ``mcp-gateway NAME``: ``arguments(parser)`` declares its arguments, ``run(args)`` runs it."""
        if name in self._subparsers.choices:
            raise ValueError(f"the command {name!r} exists already")
        parser: argparse.ArgumentParser = self._subparsers.add_parser(name, help=help, description=help)
        if arguments is not None:
            arguments(parser)
        parser.set_defaults(_run=run)
        return parser

    def add_gateway_option(self, flag: str, enter: Enter, *, help: str) -> None:
        """Add the switch ``flag`` to ``serve``, ``tools`` and ``call``; when given, ``enter(args)``
        wraps the command and yields config overrides (dotted keys) for the gateway it builds."""
        dest = ""
        for parser in self._gateway_parsers:
            dest = parser.add_argument(flag, action="store_true", help=help).dest
        self.options.append(GatewayOption(flag, dest, enter))


def _parser(pm: Any = None) -> tuple[argparse.ArgumentParser, Commands]:
    """The argument parser: the built-in commands, then what plugins registered through ``pm``."""
    p = _Parser(
        prog="mcp-gateway",
        description="A plugin-based MCP gateway: the tools of its plugins, over the stores you configure.",
    )
    p.add_argument("--version", action="version", version=f"mcp-gateway {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", metavar="FILE", help="TOML config file (default: $GATEWAY_CONFIG)")

    s = sub.add_parser("serve", help="run the MCP server (stdio or Streamable HTTP)")
    config_arg(s)
    s.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    s.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    s.add_argument("--port", type=port_number, help="HTTP port (default 8765)")
    s.set_defaults(_run=_serve)

    t = sub.add_parser("tools", help="list the tools with their annotations")
    config_arg(t)
    t.set_defaults(_run=_tools)

    c = sub.add_parser("call", help="call one tool through an in-process MCP client and print the result")
    config_arg(c)
    c.add_argument("tool", help="tool name (canonical orders.get or wire orders_get)")
    c.add_argument("args", nargs="?", default="{}", help="JSON object of arguments")
    c.set_defaults(_run=_call)

    pl = sub.add_parser("plugins", help="list plugins: version, source and hooks")
    config_arg(pl)
    pl.set_defaults(_run=_plugins)

    cfg = sub.add_parser("config", help="configuration commands")
    cfg.set_defaults(_run=lambda _args: _usage(cfg))
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    chk = cfg_sub.add_parser("check", help="validate the config and print effective values (secrets masked)")
    config_arg(chk)
    chk.set_defaults(_run=_config_check)

    ch = sub.add_parser("changes", help="list journaled changes (who changed what; revertible or not)")
    config_arg(ch)
    from odmcp import changes_cli

    changes_cli.add_arguments(ch)
    ch.set_defaults(_run=_changes)

    st = sub.add_parser("stats", help="print cache and tool metrics from a running HTTP gateway")
    st.add_argument("--url", default="http://127.0.0.1:8765", help="the gateway's base URL")
    st.add_argument("--token", help="bearer token (default: $GATEWAY_HTTP_TOKEN)")
    st.set_defaults(_run=_stats)

    commands = Commands(sub, [s, t, c])
    if pm is not None:
        from odmcp.hooks import Hooks

        Hooks(pm).register_commands(commands)
    return p, commands


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _plugin_manager(argv: Sequence[str] | None, extra: Iterable[object]) -> Any:
    """The plugins whose commands the parser shows: entry points minus the config's disabled ones."""
    from odmcp.app import _disabled_plugins
    from odmcp.plugins import build_plugin_manager

    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--config")
    try:
        path = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))[0].config
    except argparse.ArgumentError:
        path = None
    disabled = _disabled_plugins(path or os.environ.get("GATEWAY_CONFIG"), None)
    return build_plugin_manager(disabled=disabled, extra=extra)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _build(args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> Gateway:
    from odmcp.app import Gateway

    gw = Gateway.from_config(
        getattr(args, "config", None),
        overrides=dict(overrides or {}),
        extra_plugins=getattr(args, "_plugins", ()),
    )
    _setup_logging(gw.config.gateway.log_level)
    if args.command in ("serve", "call", "config"):
        _ = gw.config.default_store  # no store at all: fail now with the how-to, not on the first call
    return gw


def _options_given(args: argparse.Namespace) -> list[GatewayOption]:
    return [o for o in getattr(args, "_options", ()) if getattr(args, o.dest, False)]


@asynccontextmanager
async def _gateway_options(args: argparse.Namespace) -> AsyncIterator[dict[str, Any]]:
    """Enter every plugin option given on the command line (e.g. ``--sandbox``); yield their overrides."""
    overrides: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for option in _options_given(args):
            overrides.update(await stack.enter_async_context(option.enter(args)))
        yield overrides


async def _check_cache(gw: Gateway, *, ping: bool = True) -> None:
    """A shared cache that is misconfigured or down fails here, in one line, before anything serves.

    Once serving, a cache outage is served fail-open (from upstream); at start-up it is more likely a
    wrong URL or a Redis that was never started. ``ping=False`` checks the settings only.
    """
    from odmcp.config import mask_url

    cfg = gw.config
    if not cfg.cache.enabled:
        return
    url = mask_url(cfg.cache.redis_url)
    fix = (
        f"check cache.redis_url ({cfg.where('cache.redis_url')}), "
        "or use the in-process cache with GATEWAY_CACHE=memory"
    )
    try:
        backend = gw.caches.create(cfg)
    except Exception as err:  # the backend refused its settings, e.g. a malformed URL
        text = str(err).replace(cfg.cache.redis_url, url)
        if isinstance(err, ConfigError):  # already names where the URL was set
            fix = "fix it, or use the in-process cache with GATEWAY_CACHE=memory"
        raise CliError(f"the {cfg.cache.backend!r} cache can't use its settings: {text}; {fix}") from None
    try:
        if backend.local or not ping:
            return
        try:
            async with asyncio.timeout(5.0):
                answered = await backend.ping()
        except (TimeoutError, OSError):
            answered = False
        if not answered:
            raise CliError(f"the {backend.name!r} cache at {url} does not answer; start it, or {fix}")
    finally:
        await backend.close()


@asynccontextmanager
async def _started(gw: Gateway) -> AsyncIterator[None]:
    """Start the gateway before anything says "serving", so start-up errors are one line here.

    The server's own lifespan then shares this start (``Gateway.startup`` counts its users).
    """
    await _check_cache(gw)
    await gw.startup()
    try:
        yield
    finally:
        await gw.shutdown()


def _resolve_tool(gw: Any, name: str) -> str:
    from odmcp.tools import wire_name

    style = gw.config.gateway.tool_names
    for spec in gw.served_tools():
        if name in (spec.name, wire_name(spec.name, style), wire_name(spec.name, "underscore")):
            return wire_name(spec.name, style)
    raise CliError(f"unknown tool {name!r}; run 'mcp-gateway tools' to list them")


async def _serve(args: argparse.Namespace) -> int:
    if args.transport != "http" and (args.port is not None or args.host is not None):
        raise CliError("--port and --host need --transport http (stdio has no port); add --transport http")
    flags = "".join(f" {o.flag}" for o in _options_given(args))
    async with _gateway_options(args) as overrides:
        gw = _build(args, overrides)
        if args.transport == "stdio":
            from odmcp.server import build_server

            async with _started(gw):
                if sys.stdin.isatty():
                    print(
                        "mcp-gateway is waiting for an MCP client on stdin/stdout.\n"
                        "  Connect one by adding this command to your client's mcpServers config "
                        "(see examples/claude_desktop_config.json),\n"
                        "  or run it over HTTP instead: mcp-gateway serve --transport http" + flags,
                        file=sys.stderr,
                    )
                await build_server(gw).run_stdio_async()
            return 0
        from odmcp.http import build_http_app, reload_tokens
        from odmcp.http_server import serve

        host = args.host or gw.config.http.host
        port = args.port or gw.config.http.port
        if not 1 <= port <= 65535:
            raise CliError(f"{gw.config.where('http.port')}: {port} is not a port number; use 1-65535")
        app = build_http_app(gw, host, port)
        shown = f"[{host}]" if ":" in host else host
        # a port that is taken, not ours to use or on no address of this machine: say so before "serving"
        bind_socket(host, port).close()
        reload_overrides = dict(overrides)

        async def on_reload() -> None:
            await reload_tokens(app, gw, getattr(args, "config", None), reload_overrides)

        async with _started(gw):
            print(
                f"mcp-gateway {__version__} serving MCP at http://{shown}:{port}{gw.config.http.path}"
                + (f" (with{flags})" if flags else ""),
                file=sys.stderr,
                flush=True,
            )
            try:
                await serve(app, gw.config.http, host, port, on_reload=on_reload)
            except OSError as err:  # taken in the moment between the check and the server's own bind
                if err.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                    raise
                raise listen_error(host, port, err) from None
        return 0


async def _tools(args: argparse.Namespace) -> int:
    from odmcp.tools import wire_name

    async with _gateway_options(args) as overrides:
        gw = _build(args, overrides)
        style = gw.config.gateway.tool_names
        chosen = gw.config.gateway.toolsets
        usable = sorted({t.toolset for t in gw.tools if t.toolset and gw.serves_type(t.store_type)})
        print(f"toolsets: {', '.join(usable)} (served: {', '.join(chosen)})")
        served = {spec.name for spec in gw.served_tools()}
        for spec in sorted(gw.tools, key=lambda t: (t.toolset or "", t.name)):
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
            summary = spec.description.splitlines()[0].split(". ", 1)[0].rstrip(".")
            hidden = ""
            if not gw.serves_type(spec.store_type):
                hidden = f" (off: no {spec.store_type!r} store configured)"
            elif spec.name not in served:
                hidden = " (off: not in gateway.toolsets)"
            elif spec.writes and gw.config.gateway.read_only:
                hidden = " (hidden: read-only mode)"
            print(
                f"{wire_name(spec.name, style):24} {spec.toolset or '(always)':10} "
                f"[{', '.join(hints) or 'write'}] {summary}{hidden}"
            )
    return 0


async def _call(args: argparse.Namespace) -> int:
    from mcp import Client

    from odmcp.middleware import error_of
    from odmcp.server import build_server

    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as err:
        raise CliError(f"ARGS is not valid JSON ({err.msg} at position {err.pos})") from None
    if not isinstance(arguments, dict):
        raise CliError('ARGS must be a JSON object, e.g. \'{"order_id": "1001"}\'')
    async with _gateway_options(args) as overrides:
        gw = _build(args, overrides)
        await _check_cache(gw)
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
    from odmcp.plugins import describe_plugins

    gw = _build(args)
    for p in describe_plugins(gw.pm):
        print(f"{p['name']} {p['version']} [{p['source']}]")
        print(f"    hooks: {', '.join(p['hooks']) or '-'}")
    return 0


async def _config_check(args: argparse.Namespace) -> int:
    """Everything ``serve`` would refuse before serving (the cache backend's settings too, without
    connecting to it), then the effective config; warnings name what is valid but likely wrong."""
    from odmcp.config import masked

    gw = _build(args)
    await _check_cache(gw, ping=False)
    print(f"# config OK: {gw.config.source}")
    for i, store in enumerate(gw.config.stores):
        for field, warning in store.warnings():
            print(f"# warning: {gw.config.where(f'stores[{i}].{field}')}: {warning}")
    print(json.dumps(masked(gw.config), indent=2, default=str))
    for problem in await _journal_problems(gw):
        print(f"mcp-gateway: warning: {problem}", file=sys.stderr)
    return 0


async def _journal_problems(gw: Gateway) -> list[str]:
    """What the configured journal backend says could lose its records (a Redis that may evict them)."""
    journal = gw.journals.create(gw.config)
    try:
        return await journal.problems()
    finally:
        await journal.close()


async def _changes(args: argparse.Namespace) -> int:
    from odmcp import changes_cli

    result = await changes_cli.run(_build(args), args)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        print(changes_cli.table(result, full=bool(args.show)))
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


async def _awaited(aw: Awaitable[int]) -> int:
    return await aw


def main(argv: Sequence[str] | None = None, *, plugins: Iterable[object] = ()) -> int:
    """Run ``mcp-gateway``; ``plugins`` are registered next to the installed ones (for tests)."""
    extra = tuple(plugins)
    try:
        parser, commands = _parser(_plugin_manager(argv, extra))
    except (ConfigError, GatewayError) as err:  # a plugin that fails to load, or whose commands clash
        print(f"mcp-gateway: error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args._options, args._plugins = commands.options, extra
    run: Run | None = getattr(args, "_run", None)
    try:
        if run is None:
            parser.print_help()
            return 2
        status = run(args)
        if inspect.isawaitable(status):
            status = asyncio.run(_awaited(status))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return int(status)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``mcp-gateway call ... | head``): stop quietly, as ``cat`` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141
    except (CliError, ConfigError) as err:
        for line in str(err).splitlines():  # every problem found, one line each
            print(f"mcp-gateway: error: {line}", file=sys.stderr)
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
