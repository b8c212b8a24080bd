"""The per-store leaky bucket: burst of 20, then 429 with X-Retry-After; refill; switching it off."""

from __future__ import annotations

import asyncio

import aiohttp
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig
from odmcp_orderdesk.sandbox.ratelimit import LeakyBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_fractionally() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(2, 3.0, clock)
    assert [bucket.take().allowed for _ in range(3)] == [True, True, False]
    clock.now += 0.2  # 0.6 tokens: still empty, one token in 0.133 s -> retry after 1 s
    denied = bucket.take()
    assert not denied.allowed and denied.retry_after == 1
    clock.now += 0.2  # 1.2 tokens
    assert bucket.take().allowed and bucket.tokens < 1
    clock.now += 100
    assert bucket.take().remaining == 1  # capped at capacity, minus this request


async def test_burst_then_429_with_retry_after_per_store() -> None:
    config = SandboxConfig.multi_store(refill_per_sec=0.25, seed_orders=1)
    async with Sandbox(config) as sb, aiohttp.ClientSession(headers=sb.headers()) as http:
        clock = FakeClock()
        sb.limiter.clock = clock
        remaining = []
        for _ in range(20):
            status, _, headers = await call(http, "GET", sb.base_url + "/test")
            assert status == 200
            remaining.append(int(headers["X-Tokens-Remaining"]))
        assert remaining == list(range(19, -1, -1))

        status, body, headers = await call(http, "GET", sb.base_url + "/orders")
        assert status == 429 and body["status"] == "error" and body["message"] == "Too Many Requests"
        assert headers["X-Retry-After"] == "4" and headers["X-Tokens-Remaining"] == "0"
        assert "Retry-After" not in headers
        # every request is charged, even one with a bad key for this store
        status, _, _ = await call(http, "GET", sb.base_url + "/test", headers={"ORDERDESK-API-KEY": "bad"})
        assert status == 429

        async with aiohttp.ClientSession(headers=sb.headers("2002")) as other:
            status, _, headers = await call(other, "GET", sb.base_url + "/test")
            assert status == 200 and headers["X-Tokens-Remaining"] == "19"

        clock.now += 4.0
        status, _, headers = await call(http, "GET", sb.base_url + "/test")
        assert status == 200 and headers["X-Tokens-Remaining"] == "0"
        assert len(sb.requests(status=429)) == 2


async def test_real_clock_concurrent_burst_and_disabling() -> None:
    async with (
        Sandbox(SandboxConfig(seed_orders=1)) as sb,
        aiohttp.ClientSession(headers=sb.headers()) as http,
    ):
        results = await asyncio.gather(*(call(http, "GET", sb.base_url + "/test") for _ in range(30)))
        statuses = [status for status, _, _ in results]
        assert 20 <= statuses.count(200) <= 22 and statuses.count(429) >= 8
        assert all(h["X-Retry-After"] == "1" for s, _, h in results if s == 429)

        sb.config.rate_limit_enabled = False
        results = await asyncio.gather(*(call(http, "GET", sb.base_url + "/test") for _ in range(30)))
        assert {status for status, _, _ in results} == {200}
        assert {h["X-Tokens-Remaining"] for _, _, h in results} == {"20"}

        sb.config.rate_limit_enabled = True
        sb.config.capacity = 2  # a new capacity rebuilds the buckets
        statuses = [(await call(http, "GET", sb.base_url + "/test"))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
