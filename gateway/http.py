"""The Streamable HTTP app: bearer auth, DNS-rebinding protection, /healthz, /metrics, plugin routes.

Auth is a plain ASGI layer in front of the SDK's app, so it covers every route the same way:
``/healthz`` and routes registered with ``public=True`` are open, everything else needs
``Authorization: Bearer <token>``. Tokens are compared in constant time; a token in the query
string is never accepted (it would end up in proxy logs), and uvicorn's access log is off so no
URL is ever logged by the gateway.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.app import Gateway
from gateway.config import TokenSettings
from gateway.errors import ConfigError
from gateway.middleware import PRINCIPAL_SCOPE_KEY
from gateway.server import build_server

log = logging.getLogger("gateway.http")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tokens_of(gw: Gateway) -> list[TokenSettings]:
    http = gw.config.http
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
        self.tokens = [(t, t.token.reveal().encode()) for t in tokens]
        self.public = public

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


def build_http_app(gw: Gateway, host: str | None = None, port: int | None = None) -> ASGIApp:
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
    )
    return BearerAuth(app, tokens_of(gw), public_paths)
