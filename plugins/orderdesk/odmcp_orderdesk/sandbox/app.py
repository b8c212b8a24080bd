"""The HTTP face of the sandbox: one aiohttp catch-all route and a tiny regex router.

A catch-all route (instead of aiohttp's router) lets one place apply OrderDesk's request pipeline in
the right order — latency, base path (only ``/api/v2/<resource>``, no trailing slash),
``X-HTTP-Method-Override``, rate limit (every request costs a token), 405 for PATCH/TRACE/CONNECT,
auth, GET hygiene (no body or ``Content-Type``), routing, fault injection, handler, envelope, request
log — and keeps per-request overhead low, since benchmarks hammer this server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from . import assumptions as A
from .config import SandboxConfig
from .errors import ApiError
from .faults import FaultInjector, FaultRule
from .ratelimit import RateLimiter
from .recorder import RequestLog, RequestRecord, mask_headers
from .state import SandboxState, StoreState
from .webhooks import WebhookPoster

BASE_PATH = "/api/v2"
ADMIN_PREFIX = "/_sandbox"
UNSUPPORTED_METHODS = frozenset({"PATCH", "TRACE", "CONNECT"})
OVERRIDABLE = frozenset({"PUT", "DELETE"})
MALFORMED_BODY = b'{"status": "success", "execution_time": "0.0101 seconds", "order": {"id": "2'

_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder()


@dataclass
class Ctx:
    """Everything a request may touch; one per running sandbox."""

    config: SandboxConfig
    state: SandboxState
    limiter: RateLimiter
    faults: FaultInjector
    log: RequestLog
    webhooks: WebhookPoster


@dataclass
class Call:
    """One authenticated, routed API call as a handler sees it."""

    ctx: Ctx
    store: StoreState
    params: tuple[str, ...]
    query: dict[str, str]
    body: Any


Handler = Callable[[Call], dict[str, Any]]
Route = tuple[str, str, Handler]


class Router:
    """Regex routes over the path relative to ``/api/v2``; unknown path -> 404, wrong method -> 405."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in routes]

    def match(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
        path_known = False
        for route_method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found is None:
                continue
            if route_method == method:
                return handler, found.groups()
            path_known = True
        if path_known:
            raise ApiError(A.STATUS_METHOD_NOT_ALLOWED, A.MSG_METHOD_NOT_ALLOWED)
        raise ApiError(A.STATUS_NOT_FOUND, A.MSG_ROUTE_NOT_FOUND)


def _router() -> Router:
    from .api_orders import ROUTES as ORDER_ROUTES
    from .api_resources import ROUTES as RESOURCE_ROUTES

    return Router(ORDER_ROUTES + RESOURCE_ROUTES)


#: Responses the docs' examples show with ``"message": "Execution took …"`` (notes §5.3, §5.4).
_TIMING_IN_MESSAGE = re.compile(r"^/orders(/[^/]+)?$")


def timing_in_message(style: str, method: str, rel: str) -> bool:
    """Whether a response without a message of its own reports its timing as the message (notes §2)."""
    if style == "message":
        return True
    if style == "execution_time":
        return False
    return method == "GET" and _TIMING_IN_MESSAGE.match(rel) is not None


def envelope(
    status: int,
    payload: dict[str, Any],
    started: float,
    headers: dict[str, str],
    *,
    timing_as_message: bool = False,
) -> web.Response:
    """``{"status", ["message"], "execution_time", ...payload}`` as OrderDesk shapes it (notes §2).

    With ``timing_as_message`` and no message of its own, the timing is ``"message": "Execution took
    0.0208 seconds"`` instead of ``execution_time`` (the documented alternative).
    """
    out: dict[str, Any] = {"status": "success" if status < 400 else "error"}
    took = f"{time.perf_counter() - started:.4f} seconds"
    if "message" in payload:
        out["message"] = payload["message"]
    elif timing_as_message:
        out["message"] = f"Execution took {took}"
    if "message" not in out or "message" in payload:
        out["execution_time"] = took
    out.update(payload)
    return web.Response(body=_encode(out), status=status, headers=headers, content_type="application/json")


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(payload), status=status, content_type="application/json")


def _has_body_headers(request: web.Request) -> bool:
    """A body or the headers that announce one (notes §1.2: none of them on GET)."""
    headers = request.headers
    return request.body_exists or any(
        h in headers for h in ("Content-Type", "Content-Length", "Transfer-Encoding")
    )


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _fault_response(
    ctx: Ctx, rule: FaultRule, request: web.Request, headers: dict[str, str], started: float
) -> web.Response | None:
    """The response a firing rule substitutes, or ``None`` for a delay-only rule."""
    if rule.drop:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)  # never sent: the write fails and aiohttp drops it quietly
    if rule.malformed_json:
        return web.Response(body=MALFORMED_BODY, status=200, headers=headers, content_type="application/json")
    if rule.status is None:
        return None
    out = {**headers, **rule.headers}
    if rule.status == 429:
        left = ctx.faults.remaining_s(rule)
        out["X-Retry-After"] = str(
            rule.retry_after if rule.retry_after is not None else max(1, int(left + 0.999))
        )
    if rule.raw_body is not None:
        return web.Response(
            text=rule.raw_body, status=rule.status, headers=out, content_type="application/json"
        )
    if rule.body is not None:
        return web.Response(
            body=_encode(rule.body), status=rule.status, headers=out, content_type="application/json"
        )
    reason = A.MSG_RATE_LIMITED if rule.status == 429 else f"Injected fault ({rule.name or rule.id})"
    return envelope(rule.status, {"message": reason}, started, out)


class SandboxHandler:
    """The aiohttp request handler (:meth:`handle`); routes ``/_sandbox/*`` to the admin API."""

    def __init__(self, ctx: Ctx) -> None:
        from .admin import AdminApi

        self.ctx = ctx
        self.router = _router()
        self.admin = AdminApi(ctx)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX + "/"):
            return await self.admin.handle(request)
        return await self.api(request)

    def _admit(self, method: str, rel: str, request: web.Request, headers: dict[str, str]) -> StoreState:
        """Rate limit (charging every request), method check, auth — in that order."""
        cfg, store_id = self.ctx.config, request.headers.get("ORDERDESK-STORE-ID", "")
        if cfg.rate_limit_enabled:
            key = store_id if store_id in self.ctx.state.stores else ""
            decision = self.ctx.limiter.take(key, cfg.capacity, cfg.refill_per_sec)
            headers["X-Tokens-Remaining"] = str(decision.remaining)
            if not decision.allowed:
                headers["X-Retry-After"] = str(decision.retry_after)
                raise ApiError(A.STATUS_RATE_LIMITED, A.MSG_RATE_LIMITED)
        else:
            headers["X-Tokens-Remaining"] = str(int(cfg.capacity))
        if method in UNSUPPORTED_METHODS:
            raise ApiError(A.STATUS_METHOD_NOT_ALLOWED, A.MSG_METHOD_NOT_ALLOWED)
        store = self.ctx.state.authenticate(store_id, request.headers.get("ORDERDESK-API-KEY"))
        if store is None:
            raise ApiError(A.STATUS_UNAUTHORIZED, A.MSG_UNAUTHORIZED)
        if method == "GET" and cfg.refuse_get_body and _has_body_headers(request):
            raise ApiError(A.STATUS_GET_WITH_BODY, A.MSG_GET_WITH_BODY)
        return store

    async def api(self, request: web.Request) -> web.StreamResponse:
        started, ts, ctx = time.perf_counter(), time.time(), self.ctx
        if ctx.config.latency_ms > 0:
            await asyncio.sleep(ctx.config.latency_ms / 1000)
        raw_method = request.method.upper()
        override = request.headers.get("X-HTTP-Method-Override", "").upper()
        method = override if raw_method == "POST" and override in OVERRIDABLE else raw_method
        full = request.path
        # only /api/v2/<resource>: no silent success without the base path or with a trailing slash
        in_base = full.startswith(BASE_PATH + "/") and not full.endswith("/")
        rel = full[len(BASE_PATH) :] if in_base else full
        raw = await request.read() if request.body_exists else b""
        body, bad_json = None, False
        if raw.strip():
            try:
                body = _decoder.decode(raw)
            except msgspec.DecodeError:
                bad_json = True
        store_id = request.headers.get("ORDERDESK-STORE-ID", "")
        record = RequestRecord(
            method,
            rel,
            dict(request.query),
            mask_headers(request.headers),
            body,
            0,
            ts,
            raw_method,
            full,
            store_id,
        )
        headers: dict[str, str] = {}
        rule: FaultRule | None = None
        try:
            if not in_base:  # never reaches the API: no token is charged (assumption, see assumptions.py)
                raise ApiError(A.STATUS_NOT_FOUND, A.MSG_ROUTE_NOT_FOUND)
            store = self._admit(method, rel, request, headers)
            handler, params = self.router.match(method, rel)
            rule = ctx.faults.match(method, rel, full, store_id)
            if rule is not None:
                record.fault = rule.name or f"#{rule.id}"
                if not rule.after_apply:
                    if rule.delay_ms > 0:
                        await asyncio.sleep(rule.delay_ms / 1000)
                        if _client_gone(request) and not rule.apply_when_gone:  # timed out: not applied
                            return self._finish(record, web.Response(status=499), started, dropped=True)
                    substitute = _fault_response(ctx, rule, request, headers, started)
                    if substitute is not None:
                        return self._finish(record, substitute, started, dropped=rule.drop)
            if bad_json:
                raise ApiError(A.STATUS_VALIDATION, A.MSG_INVALID_JSON)
            status, payload = 200, handler(Call(ctx, store, params, dict(request.query), body))
        except ApiError as exc:
            status, payload = exc.status, {"message": exc.message}
        in_message = status < 400 and timing_in_message(ctx.config.timing_style, method, rel)
        response = envelope(status, payload, started, headers, timing_as_message=in_message)
        if rule is not None and rule.after_apply:
            if rule.delay_ms > 0:
                await asyncio.sleep(rule.delay_ms / 1000)
            response = _fault_response(ctx, rule, request, headers, started) or response
            return self._finish(record, response, started, dropped=rule.drop or _client_gone(request))
        return self._finish(record, response, started)

    def _finish(
        self, record: RequestRecord, response: web.Response, started: float, dropped: bool = False
    ) -> web.Response:
        record.status = 0 if dropped else response.status
        record.duration_ms = (time.perf_counter() - started) * 1000
        self.ctx.log.add(record)
        return response


def build_app(ctx: Ctx) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", SandboxHandler(ctx).handle)
    return app
