"""Run the sandbox: :class:`Sandbox` for tests (start on a free port, inspect, stop) and
:func:`run_forever` for ``mcp-gateway sandbox --port P``.

Tests talk to the sandbox over real HTTP, so the client's headers, retries and timeouts are exercised
exactly as against OrderDesk; the Python methods here are for setting up and checking what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import BASE_PATH, Ctx, build_app
from .config import SandboxConfig
from .faults import FaultInjector, FaultRule
from .ratelimit import RateLimiter
from .recorder import RequestLog, RequestRecord
from .state import Order, SandboxState, copy_json
from .webhooks import WebhookPoster


class Sandbox:
    """A faithful in-memory OrderDesk API v2 on ``http://127.0.0.1:<port>/api/v2``."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.webhooks = WebhookPoster(self.config)
        self.state = SandboxState(self.config, on_change=self.webhooks.notify)
        self.faults = FaultInjector(self.config.seed)
        self.log = RequestLog(self.config.request_log_size)
        self.limiter = RateLimiter()
        self.ctx = Ctx(self.config, self.state, self.limiter, self.faults, self.log, self.webhooks)
        self._runner: web.AppRunner | None = None
        self._root_url: str | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = a free port) and return the base URL ``http://h:p/api/v2``."""
        if self._runner is not None:
            return self.base_url
        runner = web.AppRunner(build_app(self.ctx), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        real_port = runner.addresses[0][1]
        self._root_url = f"http://{host}:{real_port}"
        return self.base_url

    async def stop(self, webhook_grace_s: float = 1.0) -> None:
        """Stop listening; give pending webhook posts ``webhook_grace_s`` then cancel them.
        Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.webhooks.close(webhook_grace_s)

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- addresses and credentials ----------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>`` (admin endpoints live under ``/_sandbox``)."""
        if self._root_url is None:
            raise RuntimeError("sandbox is not started")
        return self._root_url

    @property
    def base_url(self) -> str:
        return self.root_url + BASE_PATH

    @property
    def admin_url(self) -> str:
        return self.root_url + "/_sandbox"

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])

    @property
    def store_id(self) -> str:
        """The first configured store (``"1001"`` by default)."""
        return self.config.stores[0].store_id

    @property
    def api_key(self) -> str:
        return self.config.stores[0].api_key

    def headers(self, store_id: str | None = None) -> dict[str, str]:
        """OrderDesk auth headers for ``store_id`` (default: the first store)."""
        store = self.state.store(store_id or self.store_id)
        return {"ORDERDESK-STORE-ID": store.store_id, "ORDERDESK-API-KEY": store.api_key}

    # --- inspection -------------------------------------------------------------------------------

    def requests(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        store_id: str | None = None,
        status: int | None = None,
        path_regex: str | None = None,
    ) -> list[RequestRecord]:
        """Recorded API requests (oldest first); ``path`` is relative to ``/api/v2``."""
        return self.log.filter(method, path_prefix, store_id, status, path_regex)

    def clear_requests(self) -> None:
        self.log.clear()

    def order(self, order_id: str, store_id: str | None = None, with_history: bool = False) -> Order | None:
        """A deep copy of an order as stored (no token spent, not recorded)."""
        return self.state.get_order(store_id or self.store_id, str(order_id), with_history)

    def orders(self, store_id: str | None = None) -> list[Order]:
        """Deep copies of every order of a store, in creation order."""
        return list(copy_json(list(self.state.store(store_id or self.store_id).orders.values())))

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self.webhooks.deliveries

    async def drain_webhooks(self, wait_s: float = 5.0) -> None:
        """Wait (up to ``wait_s``) until every scheduled webhook post has been delivered or failed."""
        await self.webhooks.drain(wait_s)

    # --- acting "from the OrderDesk side" ---------------------------------------------------------

    def edit_order(self, store_id: str, order_id: str, changes: dict[str, Any]) -> Order:
        """Edit an order as if in the OrderDesk UI (merge ``changes``; bumps ``date_updated``; posts
        the webhook). Returns a copy of the saved order. Raises :class:`ApiError` for unknown ids."""
        return dict(copy_json(self.state.edit_order(self.state.store(store_id), str(order_id), changes)))

    def touch_order(self, store_id: str, order_id: str) -> Order:
        """Bump ``date_updated`` (and post the webhook) without other changes."""
        return dict(copy_json(self.state.touch_order(self.state.store(store_id), str(order_id))))

    # --- faults, limits, reset --------------------------------------------------------------------

    def add_fault(self, rule: FaultRule | None = None, **kwargs: Any) -> FaultRule:
        """Add a fault rule (see :class:`FaultRule` for the fields)."""
        return self.faults.add(rule, **kwargs)

    def storm_429(self, duration_s: float, retry_after: int | None = None, path: str = "") -> FaultRule:
        return self.faults.storm_429(duration_s, retry_after, path)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset_rate_limits(self) -> None:
        self.limiter.reset()

    def reset(self) -> None:
        """Re-seed every store and clear the request log, faults and rate-limit buckets."""
        self.state.reset()
        self.log.clear()
        self.faults.clear()
        self.faults.reseed(self.config.seed)
        self.limiter.reset()

    # --- CLI --------------------------------------------------------------------------------------

    def run(self, host: str = "127.0.0.1", port: int = 8700) -> None:
        """Serve until Ctrl-C (blocking)."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Explicit handlers, before anything is printed: a shell starts a background job
        # (``mcp-gateway sandbox &``) with SIGINT ignored, and Python then never raises KeyboardInterrupt;
        # ``kill -INT`` (or Ctrl-C after ``fg``) must stop it all the same.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            base_url = await self.start(host, port)
            print(f"OrderDesk sandbox listening on {base_url}", flush=True)
            for store in self.config.stores:
                print(f"  store id: {store.store_id}  api key: {store.api_key}  ({store.name})", flush=True)
            print(f"  admin: {self.admin_url}  (Ctrl-C to stop)", flush=True)
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()


def run_forever(
    host: str = "127.0.0.1",
    port: int = 8700,
    config: SandboxConfig | None = None,
    *,
    rate_limit: bool | None = None,
    request_log_size: int | None = None,
) -> None:
    """Entry point for ``mcp-gateway sandbox``: print the base URL and credentials, serve until Ctrl-C.

    ``rate_limit`` and ``request_log_size`` (when not ``None``) override the config's values.
    """
    config = config or SandboxConfig()
    if rate_limit is not None:
        config.rate_limit_enabled = rate_limit
    if request_log_size is not None:
        config.request_log_size = request_log_size
    Sandbox(config).run(host, port)
