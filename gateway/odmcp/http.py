"""The Streamable HTTP app: bearer auth (static tokens, OAuth access tokens), DNS-rebinding protection,
/healthz, /metrics, the RFC 9728 protected-resource metadata, plugin routes.

Auth is a plain ASGI layer in front of the SDK's app, so it covers every route the same way:
``/healthz`` and routes registered with ``public=True`` are open, everything else needs
``Authorization: Bearer <token>``. Tokens are compared in constant time; a token in the query
string is never accepted (it would end up in proxy logs), and the server's access log is off so no
URL is ever logged by the gateway.

The layers, outermost first: :class:`BearerAuth`, :class:`~odmcp.http_limits.RequestLimits` (request
cap, body deadline), :class:`~odmcp.sessions.SessionGuard` (session caps), the SDK's app. Auth comes
first so that a caller without valid credentials is answered ``401`` from its headers alone, at once:
it never takes a request slot or waits for its body (300 such stallers used to hold every slot).
:meth:`GatewayHttpApp.set_tokens` swaps the token list at run time (``serve`` does it on SIGHUP) and
ends the sessions of tokens that were removed or changed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from odmcp.app import Gateway
from odmcp.changes import CHANGES_ALL
from odmcp.config import HttpSettings, OAuthSettings, TokenSettings, load_config
from odmcp.errors import ConfigError
from odmcp.http_limits import ANONYMOUS_SCOPE_KEY, RefusalLog, RequestLimits, close_connection
from odmcp.metrics import Metrics
from odmcp.middleware import PRINCIPAL_SCOPE_KEY, ToolCallMiddleware
from odmcp.oauth import JwtVerifier, TokenRefused, challenge
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
    if not is_loopback(host) and not tokens_of(gw) and gw.config.http.oauth is None:
        raise ConfigError(
            f"refusing to bind {host}: a non-loopback address needs a token "
            "(set GATEWAY_HTTP_TOKEN or [[http.tokens]]) or [http.oauth], or bind 127.0.0.1"
        )


@dataclass(frozen=True)
class OAuthGate:
    """Access tokens from an identity provider, beside the static tokens (``[http.oauth]``)."""

    verifier: JwtVerifier
    #: this resource's RFC 9728 metadata URL, named in every 401/403
    metadata_url: str


class BearerAuth:
    """ASGI middleware: 401 unless a valid token is presented; records the caller in the scope.

    A static ``[[http.tokens]]`` token is compared in constant time; otherwise, with ``[http.oauth]``,
    the token is checked as an access token (:mod:`odmcp.oauth`). Requests to public routes pass
    without credentials, marked anonymous (their own request budget).
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: list[TokenSettings],
        public: set[str],
        oauth: OAuthGate | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.public = public
        self.oauth = oauth
        self.metrics = metrics
        self.refusals = RefusalLog(log)
        self.set_tokens(tokens)

    def set_tokens(self, tokens: list[TokenSettings]) -> None:
        """Accept exactly these tokens from now on (requests already admitted are not affected)."""
        self.tokens = [(t, t.token.reveal().encode()) for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.tokens or self.oauth):
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.public:
            scope[ANONYMOUS_SCOPE_KEY] = True
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                presented = value[7:].strip()
        match: Any = None
        for settings, secret in self.tokens:  # check all, so timing doesn't reveal which one matched
            if hmac.compare_digest(presented, secret):
                match = settings
        if match is None and presented.count(b".") == 2 and self.oauth is not None:  # a JWT
            try:
                match = await self.oauth.verifier.check(presented.decode("latin-1"))
            except TokenRefused as refused:
                self.refusals.warning(
                    f"oauth_{refused.status}", "refused an access token: %s", refused.description
                )
                await self._refuse(refused, scope, receive, send)
                return
        if match is None:
            reason = "invalid bearer token" if presented else "missing bearer token"
            self.refusals.warning("unauthenticated", "refused a request: %s", reason)
            await self._refuse(TokenRefused(reason), scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = match
        await self.app(scope, receive, send)

    async def _refuse(self, refused: TokenRefused, scope: Scope, receive: Receive, send: Send) -> None:
        if self.metrics is not None:
            reason = {401: "unauthenticated", 403: "insufficient_scope"}.get(
                refused.status, "auth_unavailable"
            )
            self.metrics.inc("http_refused_total", reason=reason)
        # answered from the headers alone: the body (if any) is not waited for, so the connection
        # can't be reused for a next request
        headers = close_connection(scope)
        if self.oauth is not None:
            headers["WWW-Authenticate"] = challenge(refused, self.oauth.metadata_url)
            body = {"error": refused.error, "error_description": refused.description}
        else:
            headers["WWW-Authenticate"] = 'Bearer realm="mcp-gateway"'
            body = {
                "error": "unauthorized",
                "message": f"{refused.description}; send 'Authorization: Bearer <token>'",
            }
        if refused.status == 503:
            headers["Retry-After"] = "30"
        await JSONResponse(body, status_code=refused.status, headers=headers)(scope, receive, send)


def scopes_supported(oauth: OAuthSettings, gw: Gateway) -> list[str]:
    names = oauth.scopes
    stores = (f"{names.store_prefix}{s.name}" for s in gw.config.stores)
    return [names.read, names.write, CHANGES_ALL, *stores]


def oauth_gate(oauth: OAuthSettings) -> OAuthGate:
    url = str(build_resource_metadata_url(AnyHttpUrl(oauth.resource)))
    return OAuthGate(JwtVerifier(oauth), url)


def protected_resource_routes(oauth: OAuthSettings, gw: Gateway) -> list[tuple[str, Any]]:
    """The RFC 9728 metadata routes (the SDK's): at the path for the resource, and at the root form."""
    (route,) = create_protected_resource_routes(
        resource_url=AnyHttpUrl(oauth.resource),
        authorization_servers=[AnyHttpUrl(oauth.issuer)],
        scopes_supported=scopes_supported(oauth, gw),
        resource_name=gw.config.gateway.name,
    )
    paths = dict.fromkeys([route.path, "/.well-known/oauth-protected-resource"])
    return [(path, route.endpoint) for path in paths]


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
        if self.auth.tokens and not tokens and self.auth.oauth is None:
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
    if http.changes_page:  # read-only, behind the same bearer auth as MCP
        from odmcp.changes_page import changes_page

        server.custom_route("/changes", methods=["GET"])(changes_page(gw))
    oauth = None
    if http.oauth is not None:
        oauth = oauth_gate(http.oauth)
        for path, endpoint in protected_resource_routes(http.oauth, gw):
            public_paths.add(path)
            server.custom_route(path, methods=["GET", "OPTIONS"])(endpoint)
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
        max_sessions=http.max_sessions,
        idle_timeout=http.session_idle_timeout,
        metrics=gw.metrics,
    )
    limits = RequestLimits(
        sessions,
        max_concurrent=http.max_concurrent_requests,
        max_anonymous=http.max_anonymous_requests,
        read_timeout=http.read_timeout,
        max_body_bytes=http.max_body_bytes,
        metrics=gw.metrics,
        streams=http.path,
    )
    auth = BearerAuth(limits, tokens_of(gw), public_paths, oauth, gw.metrics)
    tool_calls = next((m for m in server.middleware if isinstance(m, ToolCallMiddleware)), None)
    return GatewayHttpApp(auth, auth, sessions, limits, tool_calls)


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
