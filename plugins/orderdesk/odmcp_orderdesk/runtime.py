"""Per-process OrderDesk resources: one aiohttp session, one client and rate limiter per store.

They are made on first use, not at start-up: a gateway at rest, not yet asked for OrderDesk data, has
not imported aiohttp (about 8 MB of RSS; see bench/bench_idle.py). The first call pays the import
once (about 0.1 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odmcp.api import InternalError
from odmcp_orderdesk.ratelimit import store_limiter
from odmcp_orderdesk.settings import STORE_TYPE, OrderDeskSettings, orderdesk_store

if TYPE_CHECKING:
    import aiohttp

    from odmcp.api import Gateway
    from odmcp_orderdesk.client import OrderDeskClient

STATE_KEY = "orderdesk"


class OrderDeskRuntime:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings: OrderDeskSettings = gateway.config.section("orderdesk")
        self.session: aiohttp.ClientSession | None = None
        self._clients: dict[str, OrderDeskClient] = {}
        self._stopped = False

    async def start(self) -> None:
        """Nothing to open yet: the first :meth:`client` call opens the session."""
        self._stopped = False

    def _open(self) -> None:
        """The session and every store's client (called inside the event loop, by a tool or route)."""
        from odmcp_orderdesk.client import OrderDeskClient, make_session

        self.session = make_session(self.settings)
        for store in self.gateway.config.stores_of(STORE_TYPE):
            # one bucket per upstream store (shared by config entries naming it, and by every replica)
            od_store = orderdesk_store(store)
            limiter = store_limiter(self.gateway, od_store)
            self._clients[store.name] = OrderDeskClient(
                od_store,
                self.session,
                self.settings,
                limiter=limiter,
                write_deadline=self.gateway.config.mutations.write_deadline,
            )

    async def stop(self) -> None:
        self._stopped = True
        if self.session is not None:
            await self.session.close()
            self.session = None
        self._clients.clear()

    def client(self, store: str | None) -> OrderDeskClient:
        """The client of the named store (the default store when empty); VALIDATION if unknown."""
        name = self.gateway.store(store, STORE_TYPE).name
        if self.session is None:
            if self._stopped:
                raise InternalError("the OrderDesk plugin was shut down; no more upstream calls")
            self._open()
        return self._clients[name]


def runtime(gateway: Gateway) -> OrderDeskRuntime:
    rt: OrderDeskRuntime = gateway.state[STATE_KEY]
    return rt
