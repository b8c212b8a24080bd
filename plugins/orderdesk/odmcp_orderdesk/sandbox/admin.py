"""``/_sandbox/*``: out-of-process control for benchmarks and demos (no OrderDesk auth).

Admin calls are never rate limited or recorded, so inspecting the sandbox cannot perturb what is
being measured; e.g. ``GET /_sandbox/orders/{store}/{id}`` reads an order without spending a token.
Bind the sandbox to 127.0.0.1 only: these endpoints are unauthenticated by design.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from .app import Ctx, json_response
from .errors import ApiError
from .faults import FaultRule

CONFIG_KEYS = {
    "rate_limit_enabled": bool,
    "capacity": float,
    "refill_per_sec": float,
    "latency_ms": float,
    "strict_concurrency": bool,
    "string_numbers": float,
    "timing_style": str,
    "refuse_get_body": bool,
    "webhook_url": str,
}


def ok(**payload: Any) -> web.Response:
    return json_response({"status": "success", **payload})


def fail(status: int, message: str) -> web.Response:
    return json_response({"status": "error", "message": message}, status)


class AdminApi:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.routes: list[tuple[str, re.Pattern[str], Any]] = [
            (m, re.compile(f"^/_sandbox{p}$"), h)
            for m, p, h in [
                ("GET", "/health", self.health),
                ("GET", "/requests", self.get_requests),
                ("DELETE", "/requests", self.clear_requests),
                ("GET", "/faults", self.get_faults),
                ("POST", "/faults", self.add_fault),
                ("DELETE", "/faults", self.clear_faults),
                ("DELETE", r"/faults/(\d+)", self.remove_fault),
                ("POST", "/storm-429", self.storm_429),
                ("GET", "/config", self.get_config),
                ("POST", "/config", self.set_config),
                ("POST", "/reset", self.reset),
                ("GET", "/webhooks", self.get_webhooks),
                ("GET", "/orders/([^/]+)/([^/]+)", self.get_order),
                ("POST", "/orders/([^/]+)/([^/]+)/edit", self.edit_order),
                ("POST", "/orders/([^/]+)/([^/]+)/touch", self.touch_order),
            ]
        ]

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        for method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found and method == request.method:
                body = None
                raw = await request.read() if request.body_exists else b""
                if raw.strip():
                    try:
                        body = msgspec.json.decode(raw)
                    except msgspec.DecodeError:
                        return fail(400, "Invalid JSON body")
                try:
                    response: web.Response = handler(request, body, *found.groups())
                except ApiError as exc:
                    return fail(exc.status, exc.message)
                except (TypeError, ValueError, re.error) as exc:
                    return fail(400, str(exc))
                return response
        return fail(404, "Not Found")

    def health(self, request: web.Request, body: Any) -> web.Response:
        return ok(stores=list(self.ctx.state.stores))

    def get_requests(self, request: web.Request, body: Any) -> web.Response:
        q = request.query
        status = int(q["status"]) if q.get("status") else None
        records = self.ctx.log.filter(q.get("method"), q.get("path_prefix"), q.get("store_id"), status)
        return ok(requests=[r.to_dict() for r in records], total=self.ctx.log.total)

    def clear_requests(self, request: web.Request, body: Any) -> web.Response:
        self.ctx.log.clear()
        return ok()

    def get_faults(self, request: web.Request, body: Any) -> web.Response:
        return ok(faults=[r.to_dict() for r in self.ctx.faults.rules])

    def add_fault(self, request: web.Request, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return fail(400, "fault rule must be a JSON object")
        rule: FaultRule = self.ctx.faults.add(**body)
        return ok(fault=rule.to_dict())

    def clear_faults(self, request: web.Request, body: Any) -> web.Response:
        self.ctx.faults.clear()
        return ok()

    def remove_fault(self, request: web.Request, body: Any, rule_id: str) -> web.Response:
        self.ctx.faults.remove(int(rule_id))
        return ok()

    def storm_429(self, request: web.Request, body: Any) -> web.Response:
        args = body if isinstance(body, dict) else {}
        rule = self.ctx.faults.storm_429(float(args.get("duration_s", 5)), args.get("retry_after"))
        return ok(fault=rule.to_dict())

    def get_config(self, request: web.Request, body: Any) -> web.Response:
        cfg = self.ctx.config
        return ok(config={k: getattr(cfg, k) for k in CONFIG_KEYS})

    def set_config(self, request: web.Request, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return fail(400, "config must be a JSON object")
        unknown = set(body) - set(CONFIG_KEYS)
        if unknown:
            return fail(400, f"unknown config keys: {sorted(unknown)}")
        for key, value in body.items():
            setattr(self.ctx.config, key, None if value is None else CONFIG_KEYS[key](value))
        return self.get_config(request, None)

    def reset(self, request: web.Request, body: Any) -> web.Response:
        """Re-seed all stores and clear the request log, fault rules and rate-limit buckets."""
        self.ctx.state.reset()
        self.ctx.log.clear()
        self.ctx.faults.clear()
        self.ctx.faults.reseed(self.ctx.config.seed)
        self.ctx.limiter.reset()
        return ok()

    def get_webhooks(self, request: web.Request, body: Any) -> web.Response:
        return ok(deliveries=self.ctx.webhooks.deliveries)

    def get_order(self, request: web.Request, body: Any, store_id: str, order_id: str) -> web.Response:
        order = self.ctx.state.get_order(store_id, order_id, with_history=True)
        return fail(404, "Order Not Found") if order is None else ok(order=order)

    def _store(self, store_id: str) -> Any:
        store = self.ctx.state.stores.get(store_id)
        if store is None:
            raise ApiError(404, "Store Not Found")
        return store

    def edit_order(self, request: web.Request, body: Any, store_id: str, order_id: str) -> web.Response:
        if not isinstance(body, dict):
            return fail(400, "changes must be a JSON object")
        return ok(order=self.ctx.state.edit_order(self._store(store_id), order_id, body))

    def touch_order(self, request: web.Request, body: Any, store_id: str, order_id: str) -> web.Response:
        return ok(order=self.ctx.state.touch_order(self._store(store_id), order_id))
