"""Three replicas in their own processes (``serve --transport http``) on one Redis act as ONE OrderDesk
client: against the sandbox's real bucket (20, refilled at 3/s) they share the rate limit and load each
order once. The bounded CI version of ``bench/bench_fleet.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client
from redis.asyncio import Redis

from odmcp.testing import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, sandbox: Any, prefix: str) -> Path:
    path.write_text(
        f"""
[[stores]]
name = "demo"
store_id = "{sandbox.store_id}"
api_key = {{"$env" = "FLEET_TEST_API_KEY"}}
base_url = "{sandbox.base_url}"
default = true

[cache]
backend = "redis"
redis_url = "{REDIS_URL}"
prefix = "{prefix}"

[orderdesk]
request_timeout = 5.0
""",
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def replicas(config: Path, api_key: str, n: int, tmp_path: Path) -> AsyncIterator[list[str]]:
    """``n`` gateway processes serving Streamable HTTP; yields their MCP URLs; always stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}
    env["FLEET_TEST_API_KEY"] = api_key
    procs: list[tuple[asyncio.subprocess.Process, int, Path]] = []
    try:
        for i in range(n):
            port = free_port()
            err = tmp_path / f"replica{i}.err"
            with open(err, "wb") as sink:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "odmcp", "serve", "--transport", "http",
                    "--config", str(config), "--port", str(port),
                    cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL, stderr=sink,
                )  # fmt: skip
            procs.append((proc, port, err))
        async with aiohttp.ClientSession() as http:
            for proc, port, err in procs:
                deadline = time.monotonic() + 30
                while True:
                    assert proc.returncode is None, err.read_text()
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                            if r.status == 200:
                                break
                    assert time.monotonic() < deadline, f"replica on {port} did not start"
                    await asyncio.sleep(0.1)
        yield [f"http://127.0.0.1:{port}/mcp" for _, port, _ in procs]
    finally:
        for proc, _, _ in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc, _, _ in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def own_keys(prefix: str) -> AsyncIterator[None]:
    """Delete the test's keys (its own prefix) from the shared Redis afterwards."""
    try:
        yield
    finally:
        client = Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.mark.sandbox(rate_limit_enabled=True, seed_orders=36, latency_ms=5)
async def test_three_replicas_share_the_bucket_and_load_each_order_once(
    orderdesk_sandbox: Any, tmp_path: Path
) -> None:
    prefix = f"test-fleet-{uuid.uuid4().hex[:12]}"
    ids = [str(o["id"]) for o in orderdesk_sandbox.orders()][:30]
    # every order is asked for twice, at about the same time, on two different replicas: 60 calls
    work: list[list[str]] = [[] for _ in range(12)]  # 4 clients per replica
    for k, oid in enumerate(ids):
        for r in (k % 3, (k + 1) % 3):
            work[r * 4 + k % 4].append(oid)
    config = write_config(tmp_path / "fleet.toml", orderdesk_sandbox, prefix)
    async with own_keys(prefix), replicas(config, orderdesk_sandbox.api_key, 3, tmp_path) as urls:
        errors: list[str] = []

        async def client(i: int, mine: list[str], go: asyncio.Event) -> None:
            async with Client(urls[i // 4]) as c:
                await c.call_tool("gateway_ping", {})
                await go.wait()
                for oid in mine:
                    r = await c.call_tool("orders_get", {"order_id": oid})
                    if r.is_error:
                        errors.append(r.content[0].text[:200])

        go = asyncio.Event()
        tasks = [asyncio.create_task(client(i, w, go)) for i, w in enumerate(work)]
        await asyncio.sleep(0.5)
        orderdesk_sandbox.clear_requests()
        t0 = time.monotonic()
        go.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 25)
        elapsed = time.monotonic() - t0
    log = orderdesk_sandbox.requests(method="GET", path_prefix="/orders/")
    throttled = [r for r in log if r.status == 429]
    per_order = Counter(r.path for r in log if r.status == 200)
    assert sum(len(w) for w in work) == 60
    assert errors == []
    assert len(throttled) <= 2, [(r.path, r.ts) for r in throttled]
    assert per_order == Counter({f"/orders/{oid}": 1 for oid in ids})  # one upstream GET per order
    # 30 GETs through a bucket of 20 + 3/s can't finish before (30 - 20) / 3 s: the fleet was paced
    assert elapsed >= (30 - 20) / 3 - 0.2
