"""Issue 20: a fleet on Redis Cluster shares its cache, its locks and its rate-limit bucket.

One real 3-master cluster (``redis-server --cluster-enabled yes`` on free loopback ports, joined with
``redis-cli --cluster create``) serves the whole module; its processes are stopped by PID. Replicas are
gateways in this process, each with its own cluster client (as separate processes would have).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from odmcp.errors import ConfigError
from odmcp.testing import connect


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (ephemeral ports are too high for that)."""
    for _ in range(200):
        port = random.randrange(20000, 45000)
        with contextlib.ExitStack() as stack:
            try:
                for p in (port, port + 10000):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


class Cluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.ports = [cluster_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    @property
    def plain_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for port in self.ports:
            self.procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    cwd=self.root,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            self._wait(lambda p=port: redis.Redis(port=p, socket_timeout=0.5).ping())
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        for port in self.ports:
            self._wait(
                lambda p=port: (
                    redis.Redis(port=p, decode_responses=True).cluster("INFO")["cluster_state"] == "ok"
                )
            )

    @staticmethod
    def _wait(ready: Any, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not come up")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def replicas(gateway_factory: Any, cluster: Cluster) -> Any:
    """``replicas(n)``: n gateways on the cluster under one fresh prefix."""

    def make(n: int, **overrides: Any) -> list[Any]:
        settings = {
            "cache.backend": "redis",
            "cache.redis_url": cluster.url,
            "cache.prefix": f"test-cluster-{uuid.uuid4().hex[:12]}",
            **overrides,
        }
        return [gateway_factory(overrides=settings) for _ in range(n)]

    return make


@contextlib.asynccontextmanager
async def clients(gateways: list[Any]) -> AsyncIterator[list[Any]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(connect(gw)) for gw in gateways]


@pytest.mark.sandbox(latency_ms=20)
async def test_two_replicas_share_the_cache_ten_gets_for_ten_orders_read_twice(
    orderdesk_sandbox: Any, replicas: Any
) -> None:
    ids = [str(o["id"]) for o in orderdesk_sandbox.orders()][:10]
    async with clients(replicas(2)) as (a, b):
        orderdesk_sandbox.clear_requests()
        results = await asyncio.gather(
            *(c.call_tool("orders_get", {"order_id": oid}) for oid in ids for c in (a, b))
        )
    assert not any(r.is_error for r in results)
    gets = Counter(r.path for r in orderdesk_sandbox.requests(method="GET", path_prefix="/orders/"))
    assert gets == Counter({f"/orders/{oid}": 1 for oid in ids})  # 10 GETs for 20 reads


@pytest.mark.sandbox(latency_ms=20)
async def test_twenty_concurrent_updates_over_two_replicas_are_all_kept(
    orderdesk_sandbox: Any, replicas: Any
) -> None:
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    async with clients(replicas(2)) as (a, b):
        results = await asyncio.gather(
            *(
                c.call_tool(
                    "orders_update", {"order_id": oid, "changes": {"order_metadata": {f"{n}-{i}": "kept"}}}
                )
                for i in range(10)
                for n, c in enumerate((a, b))
            )
        )
    assert not any(r.is_error for r in results)
    meta = orderdesk_sandbox.order(oid)["order_metadata"]
    assert sum(meta.get(f"{n}-{i}") == "kept" for n in range(2) for i in range(10)) == 20


@pytest.mark.sandbox(rate_limit_enabled=True, seed_orders=40, latency_ms=5)
async def test_three_replicas_share_one_bucket_no_upstream_429(orderdesk_sandbox: Any, replicas: Any) -> None:
    """27 distinct reads over 3 replicas against the sandbox's real bucket (20, refilled at 3/s):
    one shared bucket paces them, so OrderDesk never refuses one (separate buckets would burst 3 x 20)."""
    ids = [str(o["id"]) for o in orderdesk_sandbox.orders()][:27]
    async with clients(replicas(3)) as cs:
        orderdesk_sandbox.clear_requests()
        t0 = time.monotonic()
        results = await asyncio.gather(
            *(cs[k % 3].call_tool("orders_get", {"order_id": oid}) for k, oid in enumerate(ids))
        )
        elapsed = time.monotonic() - t0
    assert not any(r.is_error for r in results)
    log = orderdesk_sandbox.requests(method="GET", path_prefix="/orders/")
    assert [r.path for r in log if r.status == 429] == []
    assert elapsed >= (27 - 20) / 3 - 0.2  # paced by one bucket for the fleet


async def test_a_plain_url_to_a_cluster_node_is_refused_at_start_up(
    gateway_factory: Any, cluster: Cluster
) -> None:
    gw = gateway_factory(overrides={"cache.backend": "redis", "cache.redis_url": cluster.plain_url})
    with pytest.raises(ConfigError) as info:
        await gw.startup()
    message = str(info.value)
    assert "\n" not in message and f"redis+cluster://127.0.0.1:{cluster.ports[0]}" in message


@pytest.mark.parametrize("how", ["query", "mode"])
async def test_a_plain_url_can_say_it_is_a_cluster(gateway_factory: Any, cluster: Cluster, how: str) -> None:
    overrides = {"cache.backend": "redis", "cache.redis_url": cluster.plain_url}
    if how == "query":
        overrides["cache.redis_url"] += "?cluster=true"
    else:
        overrides["cache.redis_mode"] = "cluster"
    gw = gateway_factory(overrides=overrides)
    await gw.startup()
    try:
        assert gw.cache.backend.mode == "cluster" and await gw.cache.backend.ping()
    finally:
        await gw.shutdown()


async def test_single_flight_wakes_a_waiter_on_another_replica_through_the_cluster(cluster: Cluster) -> None:
    """The waiter is pushed the wake-up when the load lands (well before the 3 s flight lease)."""
    from odmcp.cache import Cache
    from odmcp.config import CacheSettings
    from odmcp.metrics import Metrics
    from odmcp_cache_redis.backend import RedisBackend

    settings = CacheSettings(
        backend="redis", prefix=f"test-cluster-{uuid.uuid4().hex[:12]}", redis_url=cluster.url
    )
    a, b = (Cache(RedisBackend.from_settings(settings), settings, Metrics()) for _ in range(2))
    loads = 0

    async def load() -> dict[str, int]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.5)
        return {"v": 1}

    try:
        key = a.obj_key("1001", "order", "7")
        first = asyncio.create_task(a.get_or_load(key, load, 30))
        await asyncio.sleep(0.1)  # a holds the flight
        t0 = time.monotonic()
        assert await b.get_or_load(key, load, 30) == {"v": 1}
        waited = time.monotonic() - t0
        assert await first == {"v": 1}
    finally:
        await a.close()
        await b.close()
    assert loads == 1 and waited < 2.0, (loads, waited)
