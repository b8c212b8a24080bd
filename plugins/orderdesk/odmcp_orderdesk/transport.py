"""The HTTP side of the OrderDesk API v2 client: one :class:`OrderDeskTransport` per store.

It owns everything below the endpoint methods of :class:`~odmcp_orderdesk.client.OrderDeskClient`:

* **headers** — store id, API key, a unique User-Agent, ``Accept``; ``Content-Type`` only with a body
  (OrderDesk asks for none on GET). The key is revealed only while building the request headers and
  never reaches a message, a log line or a ``repr``.
* **envelope** — ``{"status": "success" | "error", ...}`` is checked; ``"error"`` inside an HTTP 200
  is an error too. Timing is dropped in both documented forms (``execution_time`` and
  ``"message": "Execution took … seconds"``), so it never reaches a payload or a tool result.
* **errors** — mapped to :mod:`odmcp.errors` codes, keeping OrderDesk's own ``message`` and naming
  the operation: ``"OrderDesk GET /orders/123: Order Not Found"``.
* **pacing** — the store's rate limiter (:mod:`odmcp_orderdesk.ratelimit`: in-process, or one bucket
  for the fleet) before every attempt, fed with ``X-Tokens-Remaining``; a 429 holds the bucket off for
  ``X-Retry-After`` and retries (for every method: a 429 was not processed).
* **retries** — reads retry 5xx, timeouts, connection errors and unreadable JSON with capped
  exponential backoff and full jitter. A write is never repeated once it may have been processed
  (the client sends every write ``replay_safe=False``): it raises :class:`OutcomeUnknown` instead, and
  the host's write route re-reads and reconciles.
* **the gateway's own pool** — a request that waited the whole connect timeout for one of the
  ``max_connections`` pooled connections was never sent: it fails at once with an ``UPSTREAM`` error
  (retryable) that names the setting, not "could not connect", and is not retried (a retry would only
  queue again behind the same busy connections).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import msgspec

from odmcp.api import (
    AuthError,
    Conflict,
    GatewayError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    UpstreamError,
    ValidationFailed,
)
from odmcp_orderdesk.ratelimit import LeakyBucket, RateLimiter
from odmcp_orderdesk.settings import OrderDeskSettings, OrderDeskStore

# Named after the client module, where these log lines have always come from.
log = logging.getLogger("odmcp_orderdesk.client")

JSON = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

_ENVELOPE_KEYS = ("status", "execution_time")
# The other documented form of the timing (notes §2): the whole message, nothing else in it.
_TIMING_MESSAGE = re.compile(r"^\s*Execution took [0-9.]+ ?(seconds?|s|ms)?\s*$", re.I)
# How a per-entry result of /move-orders or /batch-shipments says it failed, when it has no
# explicit ``"status": "error"`` (the per-entry schema is not documented).
_ENTRY_FAILED = re.compile(r"not found|error|invalid|fail|could not|cannot|unable|not (moved|added)", re.I)
_AUTH_WORDS = re.compile(r"unauthori[sz]ed|api key|credential|forbidden", re.I)
_MAX_MESSAGE = 300


async def _queued(_session: Any, ctx: Any, _params: Any) -> None:
    if isinstance(ctx.trace_request_ctx, dict):
        ctx.trace_request_ctx["queued"] = True


async def _dequeued(_session: Any, ctx: Any, _params: Any) -> None:
    if isinstance(ctx.trace_request_ctx, dict):
        ctx.trace_request_ctx["queued"] = False


def make_session(settings: OrderDeskSettings) -> aiohttp.ClientSession:
    """The one session per process that every store's client shares (call it inside the event loop).

    No default headers: credentials differ per store and ``Content-Type`` must only go with a body.

    aiohttp counts the wait for a free pooled connection (``max_connections`` in use) against the
    connect timeout and reports both as ``ConnectionTimeoutError``. Its tracing signals say when a
    request is queued for the pool; :meth:`OrderDeskTransport._attempt` passes a ``trace_request_ctx``
    they mark, so a timeout while still queued is told apart from a connect that never happened.
    """
    pool = aiohttp.TraceConfig()
    pool.on_connection_queued_start.append(_queued)
    pool.on_connection_queued_end.append(_dequeued)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.max_connections),
        timeout=aiohttp.ClientTimeout(total=settings.request_timeout, connect=settings.connect_timeout),
        trace_configs=[pool],
    )
    # aiohttp silently re-sends an "idempotent" request (PUT and DELETE included) once when a kept-alive
    # connection drops. An order PUT that was applied and then lost its connection would be applied
    # twice (items without an id are added again), and nobody would know. Every repeat is this
    # transport's decision. (No public switch exists as of aiohttp 3.14; a test guards this.)
    session._retry_connection = False
    return session


@dataclass(slots=True)
class _Attempt:
    """What one HTTP exchange came to, before retry policy is applied."""

    kind: Literal["ok", "fatal", "rate", "transient", "unsent", "busy"]
    body: JSON | None = None
    error: GatewayError | None = None
    #: for ``transient``/``unsent``: what went wrong, in words
    reason: str = ""
    #: for ``transient``: the upstream answered (a 5xx, unreadable JSON), so it is done with the request
    answered: bool = False
    retry_after: float | None = None


class OrderDeskTransport:
    """Requests to one OrderDesk store: pacing, retries, envelope and error mapping."""

    def __init__(
        self,
        store: OrderDeskStore,
        session: aiohttp.ClientSession,
        settings: OrderDeskSettings,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        write_deadline: float | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._settings = settings
        #: a write (not GET) ends within this: the host fences its lock for ``mutations.write_deadline``
        self._write_deadline = min(settings.deadline, write_deadline or settings.deadline)
        # The default bucket keeps real time even when ``sleep`` is faked: a fake sleep that does
        # not move the clock would make it spin.
        self._limiter: RateLimiter = (
            limiter if limiter is not None else LeakyBucket.from_settings(store.rate_limit)
        )
        self.sleep = sleep
        self._rng = rng
        self._base = store.base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout, connect=settings.connect_timeout
        )
        refill = store.rate_limit.refill_per_sec
        self._refill_interval = 1.0 / refill if refill > 0 else 0.0

    def __repr__(self) -> str:
        return f"OrderDeskTransport(store={self._store.name!r}, store_id={self._store.store_id!r})"

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    async def call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        *,
        replay_safe: bool | None = None,
        reserve: int = 0,
    ) -> JSON:
        """One logical request: pacing, retries and error mapping. Returns the success envelope.

        The whole of it (rate-limit waits, attempts, backoffs) is bounded by ``settings.deadline``
        (for a write, by ``mutations.write_deadline`` if that is shorter: the host's lock fence
        counts on it), so no tool call waits on OrderDesk for longer than that.

        ``replay_safe`` says whether sending the request again after an unclear attempt (a 5xx, a
        timeout, a drop) could not apply anything twice; the default is True for GET, PUT and DELETE,
        False for POST. A write whose outcome stays unclear raises :class:`OutcomeUnknown`, never a
        plain retryable error: the caller re-reads and reconciles. The write route sends every write
        with ``replay_safe=False``: what an unclear answer means is decided there, once.

        ``reserve`` is how many rate-limit tokens this request must leave for others (bulk jobs).
        """
        deadline = self._settings.deadline if method == "GET" else self._write_deadline
        try:
            async with asyncio.timeout(deadline):
                return await self._call(method, path, query, body, replay_safe, reserve)
        except TimeoutError:
            op = f"OrderDesk {method} {path}"
            if method != "GET":
                raise OutcomeUnknown(
                    f"{op}: no answer within {deadline:g} s; the outcome is unknown"
                ) from None
            raise UpstreamError(f"{op}: gave up after {deadline:g} s (waits and retries included)") from None

    async def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        replay_safe: bool | None,
        reserve: int,
    ) -> JSON:
        op = f"OrderDesk {method} {path}"
        idempotent = replay_safe if replay_safe is not None else method != "POST"
        data: bytes | None = None
        if body is not None:
            try:
                data = msgspec.json.encode(body)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValidationFailed(f"{op}: the body is not JSON-serialisable ({exc})") from None
        params = _query(query or {})
        retry = 0
        unclear = False  # an earlier attempt may have been applied
        answered = True  # every unclear attempt was answered (a 5xx), none is still in flight
        while True:
            res = await self._attempt(method, path, params, data, reserve)
            if res.kind == "ok":
                assert res.body is not None
                return res.body
            if res.kind == "busy":  # the gateway's own pool: retrying here would only queue again
                assert res.error is not None
                raise res.error
            if res.kind == "fatal":
                assert res.error is not None
                if unclear and isinstance(res.error, Conflict):
                    # The earlier attempt may have been applied (that is what the 409 may be about):
                    # merging and uploading again could apply the change twice.
                    raise OutcomeUnknown(
                        f"{op}: an earlier attempt got no clear answer and the retry was refused as "
                        "stale; the change may already be applied",
                        answered=answered,
                    )
                raise res.error
            if res.kind == "transient" and not idempotent:
                raise OutcomeUnknown(f"{op}: {res.reason}", answered=res.answered)
            if res.kind == "rate":
                wait = res.retry_after
                if wait is None:
                    wait = max(self.backoff(retry), self._refill_interval)
                # never park the store's bucket longer than we are willing to wait (a hostile or
                # broken X-Retry-After of hours must not block every later call)
                await self._limiter.penalize(min(wait, self._settings.max_retry_after))
                if wait > self._settings.max_retry_after or retry >= self._settings.max_retries:
                    raise RateLimited(
                        f"{op}: rate limited by OrderDesk (HTTP 429); retry in {wait:.1f} s",
                        retry_after=round(wait, 3),
                    )
            else:
                if res.kind == "transient":
                    unclear, answered = True, answered and res.answered
                if retry >= self._settings.max_retries:
                    if unclear and method != "GET":
                        raise OutcomeUnknown(
                            f"{op}: {res.reason} (gave up after {retry + 1} attempts); an attempt may "
                            "have been applied",
                            answered=answered,
                        )
                    raise UpstreamError(f"{op}: {res.reason} (gave up after {retry + 1} attempts)")
                wait = self.backoff(retry)
            log.debug("%s: %s; retry %d in %.2f s", op, res.reason or "rate limited", retry + 1, wait)
            await self.sleep(wait)
            retry += 1

    def backoff(self, retry: int) -> float:
        s = self._settings
        return min(s.backoff_cap, s.backoff_base * 2.0**retry) * self._rng()

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {
            "ORDERDESK-STORE-ID": self._store.store_id,
            "ORDERDESK-API-KEY": self._store.api_key.reveal(),
            "User-Agent": self._settings.user_agent,
            "Accept": "application/json",
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    async def _attempt(
        self, method: str, path: str, query: dict[str, str], data: bytes | None, reserve: int
    ) -> _Attempt:
        await self._limiter.acquire(reserve=reserve)
        op = f"OrderDesk {method} {path}"
        started = time.monotonic()
        outcome = "?"
        pool: dict[str, bool] = {"queued": False}  # set by make_session's trace while waiting for the pool
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=query or None,
                data=data,
                headers=self._headers(data is not None),
                timeout=self._timeout,
                # A redirect would carry the API key header to wherever it points.
                allow_redirects=False,
                trace_request_ctx=pool,
            ) as resp:
                status, reason, headers = resp.status, resp.reason or "", resp.headers
                outcome = str(status)
                raw = await resp.read()
        except aiohttp.ClientSSLError as exc:
            outcome = type(exc).__name__
            return _Attempt("fatal", error=UpstreamError(f"{op}: TLS error ({type(exc).__name__})"))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            if pool["queued"]:  # timed out waiting for one of our own pooled connections
                outcome = "pool busy"
                return _Attempt("busy", error=self._pool_busy(op))
            # The connection was never established, so nothing was sent: safe to retry any method.
            outcome = type(exc).__name__
            return _Attempt("unsent", reason=f"could not connect ({type(exc).__name__})")
        except TimeoutError:
            outcome = "timeout"
            return _Attempt(
                "transient", reason=f"no complete response within {self._settings.request_timeout} s"
            )
        except aiohttp.ClientError as exc:
            outcome = type(exc).__name__
            return _Attempt("transient", reason=f"connection failed ({type(exc).__name__})")
        finally:
            log.debug(
                "OrderDesk %s %s -> %s in %.3f s [store %s]",
                method,
                path,
                outcome,
                time.monotonic() - started,
                self._store.name,
            )
        await self._observe(headers.get("X-Tokens-Remaining"))
        envelope = _decode(raw)
        if status == 429:
            return _Attempt("rate", retry_after=_retry_after(headers))
        if status >= 500 or status == 408:
            # A 5xx means the upstream is done with the request (a re-read shows what it did), except a
            # 504: a proxy gave up waiting while OrderDesk may still be working on it.
            return _Attempt("transient", reason=f"HTTP {status} {reason}".strip(), answered=status != 504)
        if 200 <= status < 300:
            if envelope is None:
                return _Attempt(
                    "transient", reason=f"unreadable JSON in an HTTP {status} response", answered=True
                )
            if str(envelope.get("status", "")).lower() == "error":
                return _Attempt("fatal", error=self._status_error(op, envelope))
            if isinstance(envelope.get("message"), str) and _TIMING_MESSAGE.match(envelope["message"]):
                del envelope["message"]  # timing, not a message: it must not reach a tool result
            return _Attempt("ok", body=envelope)
        message = self._message(envelope, f"HTTP {status} {reason}".strip())
        error = _http_error(op, status, message)
        if status == 404 and _no_such_path(self._store.base_url, path, envelope):
            error.hint = (
                "OrderDesk has no such path: check ORDERDESK_BASE_URL (the store's base_url, "
                f"now {self._store.base_url!r}; OrderDesk's is https://app.orderdesk.me/api/v2)."
            )
        return _Attempt("fatal", error=error)

    def _pool_busy(self, op: str) -> UpstreamError:
        """The gateway's own connection pool was full for the whole connect timeout: say so."""
        s = self._settings
        return UpstreamError(
            f"{op}: not sent: the gateway's upstream connections to store {self._store.name!r} are all "
            f"busy (orderdesk.max_connections = {s.max_connections}); waited {s.connect_timeout:g} s "
            "(orderdesk.connect_timeout) for one",
            hint="OrderDesk itself may be fine but slow; retry in a few seconds. Nothing was sent.",
            pool_busy=True,
        )

    async def _observe(self, header: str | None) -> None:
        if header is None:
            return
        try:
            remaining = int(float(header))
        except (ValueError, OverflowError):
            log.debug("ignoring unreadable X-Tokens-Remaining header %r", header[:20])
            return
        await self._limiter.observe(remaining)

    def _message(self, envelope: JSON | None, fallback: str) -> str:
        """OrderDesk's ``message``, trimmed, with the API key masked should it ever be echoed."""
        text = envelope.get("message") if envelope else None
        if not isinstance(text, str) or not text.strip():
            return fallback
        text = " ".join(text.split())
        key = self._store.api_key.reveal()
        if key:
            text = text.replace(key, "***")  # before cutting, so no part of the key survives the cut
        return text[:_MAX_MESSAGE]

    def _status_error(self, op: str, envelope: JSON) -> GatewayError:
        """An HTTP 200 whose body says ``"status": "error"``: classify by the message."""
        message = self._message(envelope, "OrderDesk reported an error")
        text = f"{op}: {message}"
        if "not found" in message.lower():
            return NotFound(text, hint=not_found_hint(op), http_status=200)
        if _AUTH_WORDS.search(message):
            return AuthError(text, http_status=200)
        return ValidationFailed(text, http_status=200)


# --- pure helpers ------------------------------------------------------------------------------


#: which tool shows the valid ids, by the path of the request that found nothing
_WHERE_IDS_ARE = (
    ("/inventory-items", "inventory_list shows the ones that exist"),
    ("/shipments", "shipments_list shows an order's shipments"),
    ("/order-items", "orders_get shows an order's items"),
    ("/orders", "orders_list shows the ones that exist"),
)


def not_found_hint(op: str) -> str:
    """What to do about a NOT_FOUND from ``op`` (``OrderDesk GET /inventory-items/7``): the tool
    that shows the ids that do exist."""
    path = op.split(" ", 2)[-1]
    where = next((w for p, w in _WHERE_IDS_ARE if p in path), "the list tools show the ones that exist")
    return f"Check the id ({where}) and try again."


def _names_an_object(op: str) -> bool:
    """Whether the path of ``op`` (``OrderDesk GET /orders/7/shipments``) names an object by its id."""
    path = op.split(" ", 2)[-1].split("?", 1)[0]
    return any(part.isdigit() for part in path.split("/"))


#: requests whose path names no object: a 404 for them can't mean "no such id"
_COLLECTION_PATH = re.compile(r"^/(store|orders|inventory-items|move-orders|batch-shipments)/?$")


def _no_such_path(base_url: str, path: str, envelope: JSON | None) -> bool:
    """Whether a 404 says the path itself does not exist (a wrong base URL), not that an id is unknown:
    the base URL lacks ``/api/v2``, the answer is not OrderDesk's JSON, or the path names no object."""
    if not base_url.rstrip("/").endswith("/api/v2") or envelope is None:
        return True
    return _COLLECTION_PATH.match(path.split("?", 1)[0]) is not None


def _http_error(op: str, status: int, message: str) -> GatewayError:
    text = f"{op}: {message}"
    if status in (401, 403):
        return AuthError(text, http_status=status)
    if status == 404 and not _names_an_object(op):
        # no id to be wrong: the endpoint itself is missing (a batch endpoint this store lacks, or a
        # wrong base_url); a 404 means it processed nothing
        err = UpstreamError(
            f"{op}: the endpoint was not found (HTTP 404: {message})",
            hint="OrderDesk does not serve this endpoint here (check base_url); nothing was written.",
            http_status=status,
        )
        err.retryable = False
        return err
    if status == 404:
        return NotFound(text, hint=not_found_hint(op), http_status=status)
    if status == 409:
        return Conflict(text, http_status=status)
    if 400 <= status < 500:
        return ValidationFailed(text, http_status=status)
    # 1xx/3xx: redirects are not followed (they would carry the key elsewhere) and mean a wrong base_url.
    return UpstreamError(f"{text} (unexpected HTTP {status}; check base_url)", http_status=status)


def _decode(raw: bytes) -> JSON | None:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait after a 429: ``X-Retry-After`` (documented), else a standard ``Retry-After``."""
    for name in ("X-Retry-After", "Retry-After"):
        value = headers.get(name)
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            return max(0.0, seconds) if math.isfinite(seconds) else float("inf")
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters as strings: ``None`` dropped, booleans ``1``/``0``, lists comma-joined."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


# --- payload helpers, shared with the client --------------------------------------------------


def unwrap(envelope: JSON) -> JSON:
    """The envelope without ``status``/``execution_time`` (what message-only writes return).

    A timing-only ``message`` was already removed when the response was read."""
    return {k: v for k, v in envelope.items() if k not in _ENVELOPE_KEYS}


def take(envelope: JSON, key: str, what: str) -> JSON:
    """The payload object under ``key``; anything else means OrderDesk answered in a shape we don't know."""
    value = envelope.get(key)
    if not isinstance(value, dict):
        raise UpstreamError(f"OrderDesk {what}: the response carries no {key!r} object")
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[JSON]:
    """The objects of a payload list (a stray non-object entry can't be normalised and is skipped)."""
    return [v for v in as_list(value) if isinstance(v, dict)]


def as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _entry_failed(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    status = entry.get("status")
    if isinstance(status, str) and status:
        return status.lower() == "error"
    if entry.get("error"):
        return True
    message = entry.get("message")
    return isinstance(message, str) and _ENTRY_FAILED.search(message) is not None


def surface_entries(op: str, results: list[Any], id_key: str, none_done: str) -> list[str]:
    """Ids of entries that failed; raises when every entry failed (so nothing happened at all)."""
    failed = [e for e in results if _entry_failed(e)]
    if not failed or len(failed) < len(results):
        return [str(e.get(id_key)) for e in failed]
    listed = ", ".join(
        f"{e.get(id_key)} ({e.get('message') or e.get('error') or 'error'})" for e in failed[:20]
    )
    more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
    text = f"{op}: {none_done}: {listed}{more}"
    if all("not found" in str(e.get("message") or e.get("error") or "").lower() for e in failed):
        raise NotFound(text, results=results)
    raise ValidationFailed(text, results=results)
