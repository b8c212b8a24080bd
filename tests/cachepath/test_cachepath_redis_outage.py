"""Issue 5: Redis trouble never breaks reads. A killed or hung Redis is served fail-open, quickly. Writes
need the shared lock: by default they are refused with UNAVAILABLE (nothing written) until Redis
answers again; a deployment that opts into local locks (``mutations.local_locks_when_shared_unavailable``)
writes anyway, and its invalidations made meanwhile are honoured once Redis returns (no stale read).

Each test runs its own redis-server (the ``own_redis`` fixture), never the shared one.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from odmcp.testing import connect

#: the most any tool call may take while Redis is down or hung
BOUND_S = 1.0


@pytest.fixture
def retry_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the cache facade retry a failed backend on the very next operation (no timer to wait for)."""
    monkeypatch.setattr("odmcp.cache.RETRY_INTERVAL", 0.0)


class Timed:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.slowest = 0.0

    async def __call__(self, tool: str, args: dict[str, Any]) -> Any:
        t0 = time.perf_counter()
        r = await self.client.call_tool(tool, args)
        self.slowest = max(self.slowest, time.perf_counter() - t0)
        assert not r.is_error, (tool, r.structured_content)
        return r


def gets(sandbox: Any, oid: str) -> int:
    return len(sandbox.requests(method="GET", path_regex=rf"^/orders/{oid}$"))


def writes(sandbox: Any) -> int:
    return sum(len(sandbox.requests(method=m)) for m in ("POST", "PUT", "DELETE"))


#: the opt-out: take the lock in this process only while the shared one is down, and write anyway
LOCAL_LOCKS = {"mutations.local_locks_when_shared_unavailable": True}


async def test_writes_are_refused_while_the_shared_lock_is_down_and_reads_keep_answering(
    orderdesk_sandbox: Any, gateway_factory: Any, own_redis: Any, retry_now: None
) -> None:
    a = str(orderdesk_sandbox.orders()[0]["id"])
    gw = gateway_factory(overrides={"cache.backend": "redis", "cache.redis_url": own_redis.url})
    async with connect(gw) as client:
        call = Timed(client)
        await call("orders_get", {"order_id": a})
        own_redis.stop()
        sent = writes(orderdesk_sandbox)
        t0 = time.perf_counter()
        refused = [
            await client.call_tool(
                "orders_update", {"order_id": a, "changes": {"order_metadata": {"outage": "written"}}}
            ),
            await client.call_tool(
                "orders_create",
                {
                    "order": {
                        "order_items": [{"name": "W", "price": 1, "quantity": 1}],
                        "shipping": {"first_name": "Out", "last_name": "Age"},
                    }
                },
            ),
        ]
        refused_in = time.perf_counter() - t0
        during = await call("orders_get", {"order_id": a})  # reads are served fail-open
        await call("orders_list", {"limit": 5})
        assert call.slowest < BOUND_S and refused_in < 2 * BOUND_S

        own_redis.start()  # same port, empty: the same update now goes through
        await call("orders_update", {"order_id": a, "changes": {"order_metadata": {"outage": "later"}}})
        after = await call("orders_get", {"order_id": a})
    for r in refused:
        err = r.structured_content or {}
        meta = (r.meta or {}).get("mcp-gateway/error", {})
        assert r.is_error and meta.get("code") == "UNAVAILABLE" and meta.get("retryable") is True, (err, meta)
        assert "shared lock is unavailable" in meta["message"]
    assert writes(orderdesk_sandbox) == sent + 1  # nothing was sent during the outage, one write after
    assert "outage" not in (during.structured_content["order"]["order_metadata"] or {})
    assert after.structured_content["order"]["order_metadata"]["outage"] == "later"


async def test_with_local_locks_tools_keep_answering_while_redis_is_killed_and_restarted(
    orderdesk_sandbox: Any, gateway_factory: Any, own_redis: Any, retry_now: None
) -> None:
    a, b = (str(o["id"]) for o in orderdesk_sandbox.orders()[:2])
    gw = gateway_factory(
        overrides={"cache.backend": "redis", "cache.redis_url": own_redis.url, **LOCAL_LOCKS}
    )
    async with connect(gw) as client:
        call = Timed(client)
        await call("orders_get", {"order_id": a})
        await call("orders_get", {"order_id": a})
        assert gets(orderdesk_sandbox, a) == 1  # cached in Redis

        own_redis.stop()
        got = await call("orders_get", {"order_id": a})  # fail-open: from upstream
        assert "outage" not in (got.structured_content["order"]["order_metadata"] or {})
        await call("orders_update", {"order_id": a, "changes": {"order_metadata": {"outage": "written"}}})
        during = await call("orders_get", {"order_id": a})
        await call("orders_get", {"order_id": b})
        await call("orders_list", {"limit": 5})
        await call(
            "orders_create",
            {
                "order": {
                    "order_items": [{"name": "W", "price": 1, "quantity": 1}],
                    "shipping": {"first_name": "Out", "last_name": "Age"},
                }
            },
        )
        assert call.slowest < BOUND_S
        assert gw.cache is not None and not gw.cache.healthy
        assert gw.metrics.value("cache_backend_errors_total") > 0

        own_redis.start()  # same port, empty
        after = await call("orders_get", {"order_id": a})
        assert gw.cache.healthy
        n = gets(orderdesk_sandbox, a)
        cached = await call("orders_get", {"order_id": a})
        assert gets(orderdesk_sandbox, a) == n  # the cache works again
    assert during.structured_content["order"]["order_metadata"]["outage"] == "written"
    assert after.structured_content["order"]["order_metadata"]["outage"] == "written"
    assert cached.structured_content["order"]["order_metadata"]["outage"] == "written"


async def test_hung_redis_keeps_the_stale_entry_and_the_invalidation_is_replayed(
    orderdesk_sandbox: Any, gateway_factory: Any, own_redis: Any, retry_now: None
) -> None:
    """Redis hangs (SIGSTOP) but keeps its data: the cached order from before the update (written under
    a local lock, opted into) must not be served once Redis answers again."""
    pause, resume = own_redis.pause, own_redis.resume  # stop() resumes a paused server before killing it
    a = str(orderdesk_sandbox.orders()[0]["id"])
    gw = gateway_factory(
        overrides={
            "cache.backend": "redis",
            "cache.redis_url": own_redis.url,
            "cache.op_timeout": 0.05,
            **LOCAL_LOCKS,
        }
    )
    async with connect(gw) as client:
        call = Timed(client)
        before = await call("orders_get", {"order_id": a})  # cached in Redis
        await call("orders_list", {"limit": 500})  # a cached list too

        pause()
        await call("orders_update", {"order_id": a, "changes": {"order_metadata": {"hung": "written"}}})
        during = await call("orders_get", {"order_id": a})
        assert call.slowest < BOUND_S
        assert gw.cache is not None and not gw.cache.healthy

        resume()
        after = await call("orders_get", {"order_id": a})
        listed = await call("orders_list", {"limit": 500, "fields": ["id", "order_metadata"]})
        again = await call("orders_get", {"order_id": a})
    assert "hung" not in (before.structured_content["order"]["order_metadata"] or {})
    assert during.structured_content["order"]["order_metadata"]["hung"] == "written"
    assert after.structured_content["order"]["order_metadata"]["hung"] == "written"
    assert again.structured_content["order"]["order_metadata"]["hung"] == "written"
    by_id = {o["id"]: o for o in listed.structured_content["orders"]}
    assert by_id[a]["order_metadata"]["hung"] == "written"
