"""Per-process OrderDesk resources: one aiohttp session, one client per store, each store's rate limiter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from plugins.orderdesk.client import OrderDeskClient, make_session
from plugins.orderdesk.ratelimit import store_limiter
from plugins.orderdesk.settings import OrderDeskSettings

if TYPE_CHECKING:
    from gateway.app import Gateway

STATE_KEY = "orderdesk"


class OrderDeskRuntime:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings: OrderDeskSettings = gateway.config.section("orderdesk")
        self.session: aiohttp.ClientSession | None = None
        self._clients: dict[str, OrderDeskClient] = {}

    async def start(self) -> None:
        self.session = make_session(self.settings)
        for store in self.gateway.config.stores:
            limiter = store_limiter(self.gateway, store)
            self._clients[store.name] = OrderDeskClient(store, self.session, self.settings, limiter=limiter)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        self._clients.clear()

    def client(self, store: str | None) -> OrderDeskClient:
        """The client of the named store (the default store when empty); VALIDATION if unknown."""
        name = self.gateway.store(store).name
        return self._clients[name]


def runtime(gateway: Gateway) -> OrderDeskRuntime:
    rt: OrderDeskRuntime = gateway.state[STATE_KEY]
    return rt
