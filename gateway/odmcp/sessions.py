"""Legacy (2025-11-25) MCP sessions per caller: a per-token cap, and ending the sessions of a revoked token.

The SDK's session manager enforces the global ``max_sessions`` and the idle timeout, but it doesn't
know which caller opened a session, so one token could take every slot. This ASGI layer sits between
the bearer-auth layer (which names the caller) and the SDK, and keeps a table of session id ->
token, built from what passes through it:

* a ``POST`` without ``Mcp-Session-Id`` (and without a 2026-07-28 protocol header) would open a
  session: it is refused with ``429`` when the caller already holds ``max_per_token`` sessions
  (sessions still being opened count too), otherwise passed on; an answer below 400 that carries
  ``Mcp-Session-Id`` records the new session;
* requests naming a session keep it busy; the session is forgotten when its owner deletes it, when
  the SDK answers 404 for it to its owner, or when it has had no request in flight for
  ``idle_timeout`` (the SDK's own rule with the same timeout, so both forget it at the same time);
* :meth:`end_sessions` closes (with a ``DELETE`` through the SDK) the sessions of tokens that were
  removed or changed, when the token list is reloaded.

2026-07-28 requests carry no session and pass straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from odmcp.config import TokenSettings
from odmcp.metrics import Metrics
from odmcp.middleware import PRINCIPAL_SCOPE_KEY

log = logging.getLogger("odmcp.http")

SESSION_HEADER = b"mcp-session-id"
#: how often idle sessions are looked for (a full pass over the table)
SWEEP_INTERVAL = 0.5
VERSION_HEADER = b"mcp-protocol-version"


def user_of(token: TokenSettings) -> AuthenticatedUser:
    """The SDK user for a token: the SDK then serves a session only to the token that opened it."""
    return AuthenticatedUser(
        AccessToken(token=token.name, client_id=token.name, scopes=[], subject=token.name)
    )


@dataclass
class _Session:
    token: TokenSettings | None
    in_flight: int = 0
    idle_since: float = 0.0


class SessionGuard:
    """ASGI middleware in front of the SDK's Streamable HTTP app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        max_per_token: int,
        idle_timeout: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.path = path
        self.max_per_token = max_per_token
        self.idle_timeout = idle_timeout
        self.metrics = metrics
        self.clock = clock
        self.sessions: dict[str, _Session] = {}
        #: sessions held / being opened right now, per token name
        self._held: dict[str | None, int] = {}
        self._opening: dict[str | None, int] = {}
        self._next_sweep = 0.0

    # --- bookkeeping ----------------------------------------------------------------------------

    def _expire(self) -> None:
        """Forget sessions idle for ``idle_timeout``; runs at most every :data:`SWEEP_INTERVAL` s (O(n))."""
        now = self.clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        deadline = now - self.idle_timeout
        for sid in [s for s, e in self.sessions.items() if not e.in_flight and e.idle_since <= deadline]:
            self._forget(sid)

    def _forget(self, sid: str) -> None:
        entry = self.sessions.pop(sid, None)
        if entry is not None:
            name = entry.token.name if entry.token else None
            self._held[name] -= 1
            if not self._held[name]:
                del self._held[name]

    def count(self, name: str | None) -> int:
        """Open sessions of the token called ``name`` (None: unauthenticated callers), opening ones included.

        A session that went idle less than :data:`SWEEP_INTERVAL` ago may still be counted.
        """
        self._expire()
        return self._held.get(name, 0) + self._opening.get(name, 0)

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        token: TokenSettings | None = scope.get(PRINCIPAL_SCOPE_KEY)
        if token is not None:
            scope["user"] = user_of(token)
        headers = dict(scope.get("headers", []))
        sid_raw = headers.get(SESSION_HEADER)
        if sid_raw is not None:
            await self._in_session(sid_raw.decode("latin-1"), token, scope, receive, send)
            return
        version = headers.get(VERSION_HEADER)
        opens = scope.get("method") == "POST" and (
            version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
        )
        if not opens:
            await self.app(scope, receive, send)
            return
        await self._open(token, scope, receive, send)

    async def _open(self, token: TokenSettings | None, scope: Scope, receive: Receive, send: Send) -> None:
        name = token.name if token else None
        held = self.count(name)  # also forgets idle sessions, whoever the caller is
        if token is not None and held >= self.max_per_token:
            self.metrics.inc("http_refused_total", reason="sessions_per_token")
            log.warning(
                "token %r refused a new session: it holds %d (http.max_sessions_per_token)",
                name,
                self.max_per_token,
            )
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": -32000,
                    "message": (
                        f"RATE_LIMITED: token {name!r} already has {self.max_per_token} open sessions "
                        "(http.max_sessions_per_token) — end one (HTTP DELETE with its Mcp-Session-Id) "
                        f"or wait until an unused one expires ({self.idle_timeout:g} s idle)"
                    ),
                },
            }
            await JSONResponse(body, status_code=429)(scope, receive, send)
            return
        self._opening[name] = self._opening.get(name, 0) + 1
        opened: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                for key, value in message.get("headers", []):
                    if key.lower() == SESSION_HEADER:
                        sid = bytes(value).decode("latin-1")
                        self.sessions[sid] = _Session(token, in_flight=1)
                        self._held[name] = self._held.get(name, 0) + 1
                        opened.append(sid)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._opening[name] -= 1
            if not self._opening[name]:
                del self._opening[name]
            for sid in opened:
                self._done(sid)

    async def _in_session(
        self, sid: str, token: TokenSettings | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        entry = self.sessions.get(sid)
        owner = entry is not None and entry.token == token
        if not owner:  # unknown here, or another caller's: the SDK answers (404), the table is untouched
            await self.app(scope, receive, send)
            return
        assert entry is not None
        entry.in_flight += 1
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._done(sid)
            gone = status and (status[0] == 404 or (scope.get("method") == "DELETE" and status[0] < 300))
            if gone and self.sessions.get(sid) is entry:
                self._forget(sid)

    def _done(self, sid: str) -> None:
        entry = self.sessions.get(sid)
        if entry is not None:
            entry.in_flight -= 1
            if not entry.in_flight:
                entry.idle_since = self.clock()

    # --- revocation -----------------------------------------------------------------------------

    async def end_sessions(self, keep: Iterable[TokenSettings]) -> int:
        """End every session whose token is not in ``keep`` (same name and secret); return how many."""
        kept = {(t.name, t.token) for t in keep}
        doomed = [
            (sid, e.token)
            for sid, e in self.sessions.items()
            if e.token is not None and (e.token.name, e.token.token) not in kept
        ]
        for sid, token in doomed:
            assert token is not None
            await self._delete(sid, token)
            self._forget(sid)
        if doomed:
            log.warning("ended %d session(s) of revoked or changed tokens", len(doomed))
        return len(doomed)

    async def _delete(self, sid: str, token: TokenSettings) -> None:
        """``DELETE`` the session through the SDK, as its owner would (its streams close, its id 404s)."""
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "DELETE",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:0"),  # allowed by the DNS-rebinding check (127.0.0.1:*)
                (SESSION_HEADER, sid.encode("latin-1")),
                (VERSION_HEADER, HANDSHAKE_PROTOCOL_VERSIONS[-1].encode()),
            ],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
            "state": {},
            PRINCIPAL_SCOPE_KEY: token,
            "user": user_of(token),
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # never: the DELETE answers at once
            return {"type": "http.disconnect"}  # pragma: no cover

        async def send(_message: Message) -> None:
            return None

        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.app(scope, receive, send)
