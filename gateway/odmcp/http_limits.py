"""Limits the HTTP server itself doesn't enforce: a body read deadline and a cap on requests at once.

The server (Hypercorn, see :mod:`odmcp.http_server`) closes a connection whose request *headers*
don't arrive within ``[http] read_timeout``. Once the headers are in, the app owns the request, so
this ASGI layer reads the body under the same deadline (a client that sends half a body, or drips
it a byte at a time, gets ``408`` and the connection is closed) before the app sees any of it. The
body is then replayed to the app in one message; later ``receive()`` calls (an SSE response waiting
for the client to go away) go to the server as usual.

Requests being served at once are capped at ``[http] max_concurrent_requests``; beyond it a request
is answered ``503`` with ``Retry-After`` at once, without reading its body. ``/healthz`` is exempt, so
a busy replica is not mistaken for a dead one, and so is a ``GET`` of the MCP path: that is a legacy
session's standalone SSE stream, open for the session's whole life, one per session (the SDK refuses
a second), so ``max_sessions`` bounds those; counting them would let idle sessions starve real calls.

Authentication runs *before* this layer: a request without valid credentials is answered ``401``
from its headers alone, so it never holds a slot or waits for its body. Requests on public routes
(while tokens are configured) have their own budget, ``[http] max_anonymous_requests``.

Repeated refusals are logged through :class:`RefusalLog` (one line per second per kind, with a
count), as failed ``accept()`` calls are through :class:`AcceptErrorThrottle`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from odmcp.metrics import Metrics

log = logging.getLogger("odmcp.http")

#: the ASGI scope key the auth layer sets on a request it let through without credentials
ANONYMOUS_SCOPE_KEY = "mcpgw.anonymous"
#: methods whose request may carry a body worth waiting for
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestLimits:
    """ASGI middleware: ``503`` beyond ``max_concurrent`` requests, ``408`` for a body not sent in time.

    It runs after authentication (:class:`odmcp.http.BearerAuth`), so a caller without valid
    credentials never takes a slot: it was answered ``401`` before. Requests the auth layer let through
    without credentials (routes a plugin registered ``public=True``, while tokens are configured) are
    marked with :data:`ANONYMOUS_SCOPE_KEY` and get their own small budget, ``max_anonymous``, so
    strangers can't take the slots of signed-in callers.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_concurrent: int,
        read_timeout: float,
        max_body_bytes: int,
        metrics: Metrics,
        exempt: frozenset[str] = frozenset({"/healthz"}),
        streams: str | None = None,
        max_anonymous: int = 16,
    ) -> None:
        self.app = app
        self.max_concurrent = max_concurrent
        self.max_anonymous = max_anonymous
        self.read_timeout = read_timeout
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.exempt = exempt
        #: the MCP path, whose GET requests (standalone SSE streams) are not counted
        self.streams = streams
        #: requests being served right now: of callers with credentials (or all, without auth) ...
        self.active = 0
        #: ... and of anonymous callers on public routes
        self.anonymous = 0
        self.refusals = RefusalLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        stream = path == self.streams and scope.get("method") == "GET"
        if scope["type"] != "http" or path in self.exempt or stream:
            await self.app(scope, receive, send)
            return
        anonymous = bool(scope.get(ANONYMOUS_SCOPE_KEY))
        active, cap, setting = (
            (self.anonymous, self.max_anonymous, "http.max_anonymous_requests")
            if anonymous
            else (self.active, self.max_concurrent, "http.max_concurrent_requests")
        )
        if active >= cap:
            reason = "busy_anonymous" if anonymous else "busy"
            self.metrics.inc("http_refused_total", reason=reason)
            self.refusals.warning(reason, "refused a request: %d are being served (%s)", active, setting)
            await _refuse(
                503,
                "busy",
                f"OVERLOADED: {active} requests are being served ({setting}) — retry in a second",
                {"Retry-After": "1", **close_connection(scope)},
            )(scope, receive, send)
            return
        self._count(anonymous, +1)
        try:
            if scope.get("method") in _BODY_METHODS:
                replay = await self._read_body(receive)
                if replay is None:
                    self.metrics.inc("http_refused_total", reason="slow_body")
                    await _refuse(
                        408,
                        "request_timeout",
                        f"TIMEOUT: the request body did not arrive within {self.read_timeout:g} s "
                        "(http.read_timeout) — send it in one go",
                        close_connection(scope),
                    )(scope, receive, send)
                    return
                receive = replay
            await self.app(scope, receive, send)
        finally:
            self._count(anonymous, -1)

    def _count(self, anonymous: bool, delta: int) -> None:
        if anonymous:
            self.anonymous += delta
        else:
            self.active += delta

    async def _read_body(self, receive: Receive) -> Receive | None:
        """Read the body within the deadline; a ``receive`` that replays it, or None when too slow.

        Reading stops early (and the rest is left to the app) once the body exceeds
        ``max_body_bytes``: the app refuses it with 413 without this layer buffering it all.
        """
        chunks: list[bytes] = []
        size = 0
        first: list[Message] = []
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        first.append(message)  # a disconnect: the app sees it as it would have
                        break
                    body = message.get("body", b"")
                    chunks.append(body)
                    size += len(body)
                    if not message.get("more_body", False) or size > self.max_body_bytes:
                        more = bool(message.get("more_body", False))
                        first.insert(0, {"type": "http.request", "body": b"".join(chunks), "more_body": more})
                        break
        except TimeoutError:
            return None
        pending = first

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replay


def close_connection(scope: Scope) -> dict[str, str]:
    """``Connection: close`` for an HTTP/1 answer (HTTP/2 forbids the header; it has no such need)."""
    return {"Connection": "close"} if str(scope.get("http_version", "1.1")).startswith("1") else {}


def _refuse(status: int, error: str, message: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


class AcceptErrorThrottle:
    """An event-loop exception handler that turns accept() failures into one warning per second.

    When the process runs out of file descriptors, asyncio's accept loop (CPython 3.11) reports
    ``socket.accept() out of system resource`` once per queued connection on every retry, each with a
    traceback: thousands of lines a second. This handler counts them and logs one line per
    ``interval`` with the count; every other exception goes to the previous handler unchanged.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 1.0) -> None:
        self.loop = loop
        self.interval = interval
        self.previous = loop.get_exception_handler()
        self.count = 0
        self.total = 0
        self._last: float | None = None

    def install(self) -> None:
        self.loop.set_exception_handler(self)

    def uninstall(self) -> None:
        self.loop.set_exception_handler(self.previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.count += 1
        self.total += 1
        now = loop.time()
        if self._last is None or now - self._last >= self.interval:
            err = context.get("exception")
            log.warning(
                "cannot accept connections: %s; %d accept() attempts failed since the last warning "
                "(%d in all). Stalled connections are closed after http.read_timeout; raise the "
                "descriptor limit (ulimit -n) or put a proxy with a connection limit in front",
                getattr(err, "strerror", None) or type(err).__name__,
                self.count,
                self.total,
            )
            self._last = now
            self.count = 0


class RefusalLog:
    """Refusals logged as one warning per ``interval`` per kind, with how many there were.

    A client refused at once (a full session cap, a full table) often asks again at once; a line per
    refusal would let it flood the log (184 lines a second from 20 clients were seen). The first
    refusal of a kind is logged at once; later ones within ``interval`` are only counted, and the
    next line says how many there were since the previous one.
    """

    def __init__(
        self, logger: logging.Logger, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        #: refusals of each kind since start-up
        self.total: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: Any) -> None:
        """Count a refusal of ``kind``; log ``message % args`` unless one went out within ``interval``."""
        self.total[kind] = self.total.get(kind, 0) + 1
        self._count[kind] = self._count.get(kind, 0) + 1
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            return
        count = self._count.pop(kind)
        self._last[kind] = now
        self.logger.warning(
            message + " [%d refusal(s) of this kind since the last line, %d in all]",
            *args,
            count,
            self.total[kind],
        )
