"""Legacy (2025-11-25) MCP sessions: a per-caller cap, a full table, ending a revoked token's sessions.

The SDK's session manager enforces the global ``max_sessions`` and the idle timeout, but it doesn't
know which caller opened a session, so one caller could take every slot. This ASGI layer sits between
the auth layer (which names the caller) and the SDK, and keeps a table of session id -> caller, built
from what passes through it:

* a request naming a routing header twice (``Mcp-Protocol-Version``, ``Mcp-Session-Id``,
  ``Mcp-Method``, ``Mcp-Name``) is refused with ``400``: a reader of the first copy (the SDK) and a
  reader of the last would disagree about what the request is, and a session could open uncounted;
* a request without ``Mcp-Session-Id`` that the SDK routes to a legacy session (no protocol header, or
  a handshake-era one: the SDK's own rule) may open a session: it is refused with ``429`` when the
  caller already holds ``max_per_token`` sessions, and with ``503`` + ``Retry-After`` when the table
  holds ``max_sessions`` (sessions still being opened count too);
* every answer below 400 that hands out a new ``Mcp-Session-Id`` is recorded, whatever the request's
  headers said, and so is a session the SDK serves to its owner that the table had already forgotten:
  every session that is open is counted;
* requests naming a session keep it busy; the session is forgotten when its owner deletes it, when
  the SDK answers 404 for it to its owner, or when it has had no request in flight for
  ``idle_timeout`` plus half a second (the SDK forgets it after ``idle_timeout``: never counted too little);
* :meth:`end_sessions` closes (with a ``DELETE`` through the SDK) the sessions of static tokens that
  were removed or changed, when the token list is reloaded.

Refusals are logged one line per second per kind (:class:`~odmcp.http_limits.RefusalLog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, principal_components
from mcp_types import HEADER_MISMATCH
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from odmcp.config import TokenSettings
from odmcp.http_limits import RefusalLog
from odmcp.metrics import Metrics
from odmcp.middleware import PRINCIPAL_SCOPE_KEY

log = logging.getLogger("odmcp.http")

SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"
#: headers whose copies must agree: the SDK reads the first copy, other readers may read the last
SINGLE_HEADERS = frozenset({SESSION_HEADER, VERSION_HEADER, b"mcp-method", b"mcp-name"})
#: how often idle sessions are looked for (a full pass over the table)
SWEEP_INTERVAL = 0.5
#: a session is forgotten this long after the SDK ends it for idleness, never before
EXPIRY_GRACE = 0.5
#: seconds a caller refused for a full session table is asked to wait
FULL_RETRY_AFTER = 10


def user_of(principal: Any) -> AuthenticatedUser:
    """The SDK user for a caller: the SDK then serves a session only to the caller that opened it.

    A caller signed in with OAuth brings its own (``principal.user``: client id, issuer, subject); a
    static token is named by its name.
    """
    user = getattr(principal, "user", None)
    if isinstance(user, AuthenticatedUser):
        return user
    name = principal.name
    return AuthenticatedUser(AccessToken(token=name, client_id=name, scopes=[], subject=name))


def owner_of(principal: Any) -> tuple[str, str | None, str | None] | None:
    """Who a session belongs to, as the SDK decides it (client id, issuer, subject)."""
    return None if principal is None else principal_components(user_of(principal).access_token)


def duplicated_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The name of a header of :data:`SINGLE_HEADERS` sent more than once, or None."""
    seen: set[bytes] = set()
    for name, _ in headers:
        key = name.lower()
        if key in SINGLE_HEADERS:
            if key in seen:
                return key.decode()
            seen.add(key)
    return None


def legacy_routed(version: bytes | None) -> bool:
    """Whether the SDK serves a request with this protocol header on the legacy (session) path."""
    return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS


@dataclass
class _Session:
    principal: Any
    in_flight: int = 0
    idle_since: float = 0.0


def _name(principal: Any) -> str | None:
    return None if principal is None else str(principal.name)


def _jsonrpc_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


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
        max_sessions: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.path = path
        self.max_per_token = max_per_token
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.metrics = metrics
        self.clock = clock
        self.sessions: dict[str, _Session] = {}
        #: sessions held / being opened right now, per caller name (None: no credentials)
        self._held: dict[str | None, int] = {}
        self._opening: dict[str | None, int] = {}
        self._next_sweep = 0.0
        self.refusals = RefusalLog(log)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _expire(self) -> None:
        """Forget sessions idle for ``idle_timeout`` (+ grace); runs at most every :data:`SWEEP_INTERVAL`."""
        now = self.clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        deadline = now - self.idle_timeout - EXPIRY_GRACE
        for sid in [s for s, e in self.sessions.items() if not e.in_flight and e.idle_since <= deadline]:
            self._forget(sid)

    def _record(self, sid: str, principal: Any) -> _Session:
        entry = self.sessions.get(sid)
        if entry is None:
            entry = self.sessions[sid] = _Session(principal)
            name = _name(principal)
            self._held[name] = self._held.get(name, 0) + 1
        return entry

    def _forget(self, sid: str) -> None:
        entry = self.sessions.pop(sid, None)
        if entry is not None:
            name = _name(entry.principal)
            self._held[name] -= 1
            if not self._held[name]:
                del self._held[name]

    def count(self, name: str | None) -> int:
        """Open sessions of the caller called ``name`` (None: unauthenticated callers), opening ones included.

        A session that went idle less than :data:`SWEEP_INTERVAL` ago may still be counted.
        """
        self._expire()
        return self._held.get(name, 0) + self._opening.get(name, 0)

    def total(self) -> int:
        """Open sessions of every caller, opening ones included."""
        self._expire()
        return len(self.sessions) + sum(self._opening.values())

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        raw = scope.get("headers", [])
        twice = duplicated_header(raw)
        if twice is not None:
            self.metrics.inc("http_refused_total", reason="duplicate_header")
            message = f"VALIDATION: the {twice} header appears more than once — send it once"
            await _jsonrpc_error(400, HEADER_MISMATCH, message)(scope, receive, send)
            return
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        if principal is not None:
            scope["user"] = user_of(principal)
        headers = dict(raw)
        legacy = legacy_routed(headers.get(VERSION_HEADER))
        sid_raw = headers.get(SESSION_HEADER)
        if sid_raw is not None:
            await self._in_session(sid_raw.decode("latin-1"), principal, legacy, scope, receive, send)
            return
        if legacy and not await self._admit(principal, scope, receive, send):
            return
        await self._open(principal, scope, receive, send)

    async def _admit(self, principal: Any, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether a request that may open a session may go on; answers it (429, 503) when not."""
        name = _name(principal)
        held = self.count(name)  # also forgets idle sessions, whoever the caller is
        if principal is not None and held >= self.max_per_token:
            self.metrics.inc("http_refused_total", reason="sessions_per_token")
            self.refusals.warning(
                "sessions_per_token",
                "refused a new session of %r: it holds %d (http.max_sessions_per_token)",
                name,
                self.max_per_token,
            )
            message = (
                f"RATE_LIMITED: token {name!r} already has {self.max_per_token} open sessions "
                "(http.max_sessions_per_token) — end one (HTTP DELETE with its Mcp-Session-Id) "
                f"or wait until an unused one expires ({self.idle_timeout:g} s idle)"
            )
            await _jsonrpc_error(429, -32000, message)(scope, receive, send)
            return False
        if self.max_sessions is not None and self.total() >= self.max_sessions:
            self.metrics.inc("http_refused_total", reason="sessions_full")
            self.refusals.warning(
                "sessions_full", "refused a new session: %d are open (http.max_sessions)", self.max_sessions
            )
            message = (
                f"OVERLOADED: all {self.max_sessions} sessions of this gateway are in use "
                f"(http.max_sessions) — retry in {FULL_RETRY_AFTER} s, or use protocol 2026-07-28, "
                "which needs no session"
            )
            headers = {"Retry-After": str(FULL_RETRY_AFTER)}
            await _jsonrpc_error(503, -32000, message, headers)(scope, receive, send)
            return False
        return True

    async def _open(self, principal: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass on a request without a session id; record any session its answer hands out."""
        name = _name(principal)
        self._opening[name] = self._opening.get(name, 0) + 1
        opened: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    for key, value in message.get("headers", []):
                        if key.lower() == SESSION_HEADER:
                            sid = bytes(value).decode("latin-1")
                            self._record(sid, principal).in_flight += 1
                            opened.append(sid)
                elif message["status"] == 503:  # the SDK's own table is full: say when to come back
                    headers = [*message.get("headers", []), (b"retry-after", str(FULL_RETRY_AFTER).encode())]
                    message = {**message, "headers": headers}
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
        self, sid: str, principal: Any, legacy: bool, scope: Scope, receive: Receive, send: Send
    ) -> None:
        entry = self.sessions.get(sid)
        if entry is not None and owner_of(entry.principal) != owner_of(principal):
            # another caller's: the SDK answers 404 (as for an unknown id), the table is untouched
            await self.app(scope, receive, send)
            return
        if entry is not None:
            entry.in_flight += 1
        status: list[int] = []
        deleting = scope.get("method") == "DELETE"

        async def watch(message: Message) -> None:
            nonlocal entry
            if message["type"] == "http.response.start":
                status.append(message["status"])
                if entry is None and legacy and message["status"] < 400 and not deleting:
                    # the SDK served a session the table had forgotten: it is open, count it again
                    entry = self._record(sid, principal)
                    entry.in_flight += 1
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if entry is not None:
                self._done(sid)
                gone = status and (status[0] == 404 or (deleting and status[0] < 300))
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
        """End every session of a static token not in ``keep`` (same name and secret); return how many.

        Sessions of callers signed in some other way (OAuth) are not affected.
        """
        kept = {(t.name, t.token) for t in keep}
        doomed = [
            (sid, e.principal)
            for sid, e in self.sessions.items()
            if isinstance(e.principal, TokenSettings) and (e.principal.name, e.principal.token) not in kept
        ]
        for sid, principal in doomed:
            await self._delete(sid, principal)
            self._forget(sid)
        if doomed:
            log.warning("ended %d session(s) of revoked or changed tokens", len(doomed))
        return len(doomed)

    async def _delete(self, sid: str, principal: Any) -> None:
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
            PRINCIPAL_SCOPE_KEY: principal,
            "user": user_of(principal),
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
