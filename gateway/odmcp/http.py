"""The Streamable HTTP app: bearer auth, DNS-rebinding protection, /healthz, /metrics, plugin routes.

Auth is a plain ASGI layer in front of the SDK's app, so it covers every route the same way:
``/healthz`` and routes registered with ``public=True`` are open, everything else needs
``Authorization: Bearer <token>``. Tokens are compared in constant time; a token in the query
string is never accepted (it would end up in proxy logs), and the server's access log is off so no
URL is ever logged by the gateway.

The layers, outermost first: :class:`~odmcp.http_limits.RequestLimits` (request cap, body deadline),
:class:`BearerAuth`, :class:`~odmcp.sessions.SessionGuard` (per-token session cap), the SDK's app.
:meth:`GatewayHttpApp.set_tokens` swaps the token list at run time (``serve`` does it on SIGHUP) and
ends the sessions of tokens that were removed or changed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from odmcp.app import Gateway
from odmcp.config import HttpSettings, TokenSettings, load_config
from odmcp.errors import ConfigError
from odmcp.http_limits import RequestLimits
from odmcp.middleware import PRINCIPAL_SCOPE_KEY, ToolCallMiddleware
from odmcp.server import build_server
from odmcp.sessions import SessionGuard

log = logging.getLogger("odmcp.http")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tokens_of(gw: Gateway) -> list[TokenSettings]:
    return tokens_in(gw.config.http)


def tokens_in(http: HttpSettings) -> list[TokenSettings]:
    out = list(http.tokens)
    if http.token:
        out.append(TokenSettings(name="default", token=http.token))
    return out


def check_bind(gw: Gateway, host: str) -> None:
    """Refuse to expose an unauthenticated gateway beyond this machine."""
    if not is_loopback(host) and not tokens_of(gw):
        raise ConfigError(
            f"refusing to bind {host}: a non-loopback address needs a token "
            "(set GATEWAY_HTTP_TOKEN or [[http.tokens]]), or bind 127.0.0.1"
        )


class BearerAuth:
    """ASGI middleware: 401 unless a configured token is presented; records the caller in the scope."""

    def __init__(self, app: ASGIApp, tokens: list[TokenSettings], public: set[str]) -> None:
        self.app = app
        self.public = public
        self.set_tokens(tokens)

    def set_tokens(self, tokens: list[TokenSettings]) -> None:
        """Accept exactly these tokens from now on (requests already admitted are not affected)."""
        self.tokens = [(t, t.token.reveal().encode()) for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or scope.get("path") in self.public:
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                presented = value[7:].strip()
        match = None
        for settings, secret in self.tokens:  # check all, so timing doesn't reveal which one matched
            if hmac.compare_digest(presented, secret):
                match = settings
        if match is None:
            reason = "invalid bearer token" if presented else "missing bearer token"
            response = JSONResponse(
                {"error": "unauthorized", "message": f"{reason}; send 'Authorization: Bearer <token>'"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="mcp-gateway"'},
            )
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = match
        await self.app(scope, receive, send)


def transport_security(gw: Gateway, host: str, port: int) -> TransportSecuritySettings:
    http = gw.config.http
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        hosts.append(f"{host}:*")
    hosts += http.allowed_hosts
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *http.allowed_origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class GatewayHttpApp:
    """The gateway's ASGI app, with a handle on the layers that change at run time."""

    def __init__(
        self,
        app: ASGIApp,
        auth: BearerAuth,
        sessions: SessionGuard,
        limits: RequestLimits,
        tool_calls: ToolCallMiddleware | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.sessions = sessions
        self.limits = limits
        #: the server's tool-call middleware (it knows the open sessions of each token)
        self.tool_calls = tool_calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def set_tokens(self, tokens: list[TokenSettings]) -> int:
        """Swap the accepted tokens; end the sessions of tokens no longer accepted; tell the sessions of a
        token whose grants changed (read-only, stores) that their tool list changed. Returns how many
        sessions ended.

        A token list that goes from some tokens to none is refused: that would open the gateway to
        everyone (a bind beyond loopback is checked at start-up only).
        """
        if self.auth.tokens and not tokens:
            raise ConfigError("refusing to remove every token at run time; restart the gateway to do that")
        before = {(t.name, t.token): (t.read_only, tuple(t.stores)) for t, _ in self.auth.tokens}
        self.auth.set_tokens(tokens)
        ended = await self.sessions.end_sessions(tokens)
        regranted = [
            t.name
            for t in tokens
            if (t.name, t.token) in before and before[(t.name, t.token)] != (t.read_only, tuple(t.stores))
        ]
        if regranted and self.tool_calls is not None:
            told = await self.tool_calls.tools_changed(regranted)
            log.warning("grants changed for token(s) %s: %d session(s) told", ", ".join(regranted), told)
        return ended


def build_http_app(gw: Gateway, host: str | None = None, port: int | None = None) -> GatewayHttpApp:
    http = gw.config.http
    host = host or http.host
    port = port or http.port
    check_bind(gw, host)
    server = build_server(gw)
    public_paths = {"/healthz"}

    async def healthz(_request: Request) -> Response:
        cache = gw.cache
        return JSONResponse(
            {
                "ok": True,
                "cache": None if cache is None else {"backend": cache.backend.name, "healthy": cache.healthy},
            }
        )

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(gw.metrics.render_prometheus(), media_type="text/plain; version=0.0.4")

    server.custom_route("/healthz", methods=["GET"])(healthz)
    server.custom_route("/metrics", methods=["GET"])(metrics)

    def register(
        path: str,
        handler: Callable[[Request], Awaitable[Response]],
        methods: list[str] | None = None,
        public: bool = False,
    ) -> None:
        if public:
            public_paths.add(path)
        server.custom_route(path, methods=methods or ["POST"])(handler)

    gw.hooks.register_routes(register, gw)
    app = server.streamable_http_app(
        streamable_http_path=http.path,
        json_response=http.json_response,
        max_request_body_size=http.max_body_bytes,
        transport_security=transport_security(gw, host, port),
        host=host,
        session_idle_timeout=http.session_idle_timeout,
        max_sessions=http.max_sessions,
    )
    sessions = SessionGuard(
        app,
        path=http.path,
        max_per_token=http.max_sessions_per_token,
        idle_timeout=http.session_idle_timeout,
        metrics=gw.metrics,
    )
    auth = BearerAuth(sessions, tokens_of(gw), public_paths)
    limits = RequestLimits(
        auth,
        max_concurrent=http.max_concurrent_requests,
        read_timeout=http.read_timeout,
        max_body_bytes=http.max_body_bytes,
        metrics=gw.metrics,
        streams=http.path,
    )
    tool_calls = next((m for m in server.middleware if isinstance(m, ToolCallMiddleware)), None)
    return GatewayHttpApp(limits, auth, sessions, limits, tool_calls)


async def reload_tokens(
    app: GatewayHttpApp, gw: Gateway, path: str | None, overrides: dict[str, Any]
) -> None:
    """Re-read the config file and apply its ``[http]`` tokens (``serve`` calls this on SIGHUP).

    Only the tokens change at run time; a bad file leaves everything as it was (logged, one line).
    """
    try:
        sections = gw.hooks.register_config()
        for name in gw.config.gateway.disabled_plugins:  # as Gateway.from_config: left unvalidated
            sections.setdefault(name, dict)
        config = load_config(path, os.environ, sections, overrides)
        ended = await app.set_tokens(tokens_in(config.http))
    except ConfigError as err:
        log.error("config reload failed, tokens unchanged: %s", err)
        return
    log.warning("config reloaded: %d token(s) accepted, %d session(s) ended", len(app.auth.tokens), ended)
