"""A full connection pool is the gateway's own limit, not OrderDesk being unreachable: said so, not retried.

A real aiohttp server on loopback holds its answers; the client's pool (``max_connections = 2``) fills,
and a third request waits for a pooled connection until the connect timeout.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from odmcp.config import Secret
from odmcp.errors import UpstreamError
from odmcp_orderdesk.client import OrderDeskClient, make_session
from odmcp_orderdesk.ratelimit import LeakyBucket
from odmcp_orderdesk.settings import OrderDeskSettings, OrderDeskStore


async def test_waiting_for_a_pooled_connection_is_named_and_not_retried() -> None:
    release, both_in = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        if len(seen) == 2:
            both_in.set()
        await release.wait()
        return web.json_response({"status": "success", "order": {"id": request.match_info["id"]}})

    app = web.Application()
    app.router.add_get("/api/v2/orders/{id}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        store = OrderDeskStore(
            name="shop", store_id="11", api_key=Secret("pool-key"), base_url=str(server.make_url("/api/v2"))
        )
        settings = OrderDeskSettings(max_connections=2, connect_timeout=0.3, max_retries=4)
        async with make_session(settings) as session:
            client = OrderDeskClient(store, session, settings, limiter=LeakyBucket(enabled=False))
            held = [asyncio.create_task(client.get_order(i)) for i in (1, 2)]
            await both_in.wait()
            started = time.monotonic()
            with pytest.raises(UpstreamError) as caught:
                await client.get_order(3)
            waited = time.monotonic() - started
            release.set()
            assert [o["id"] for o in await asyncio.gather(*held)] == ["1", "2"]
            # a connect that fails for real is still retried (nothing listens on this port)
            gone = OrderDeskStore(
                name="gone", store_id="12", api_key=Secret("k"), base_url="http://127.0.0.1:9/x"
            )
            quick = OrderDeskSettings(max_retries=1, backoff_base=0.01)
            with pytest.raises(UpstreamError) as refused:
                await OrderDeskClient(gone, session, quick, limiter=LeakyBucket(enabled=False)).get_order(1)
    err = caught.value
    assert err.retryable and err.details.get("pool_busy") is True
    assert "the gateway's upstream connections to store 'shop' are all busy" in err.message
    assert "orderdesk.max_connections = 2" in err.message and "could not connect" not in err.message
    assert waited < 1.0 and seen == ["/api/v2/orders/1", "/api/v2/orders/2"]  # one wait, no retries
    assert (
        "could not connect" in refused.value.message and "gave up after 2 attempts" in refused.value.message
    )
    assert "pool-key" not in str(err)
