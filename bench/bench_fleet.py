"""Fleet: three replicas on one Redis against OrderDesk's real bucket, compared with one replica.

    .venv/bin/python bench/bench_fleet.py [--quick]

The sandbox runs in its own process and enforces the bucket (20 requests, refilled at 3/s). Gateways
are ``serve --transport http`` subprocesses with the Redis cache: one alone (its own prefix), and a
fleet of three sharing a prefix. Clients are ``mcp.Client(url)`` over Streamable HTTP in this process,
all connected before a common start. Between scenarios the cached orders are deleted (exact keys)
and the bench waits until both the sandbox's and the gateways' buckets are full again.

Scenarios (full; --quick in brackets, which also leaves out the runs marked "full only"):

* ``distinct``: 150 [45] ``orders_get`` of distinct uncached orders by 30 clients (5 [1-2] calls
  each), on 1 replica, then spread evenly over 3 replicas, then (full only) all on one of the three.
* ``spread``: 150 [45] gets over 60 [18] uncached orders (each asked for 2-3 times), 30 clients,
  1 replica (full only), then 3 replicas.
* ``one order``: 90 concurrent gets of one uncached order, 30 per replica.
* ``kill -9``: a replica is killed while it holds an order's lock (its update waits on a slow
  upstream); time until another replica's update of that order succeeds.
* ``cached read``: in-process, p50 of a cached ``orders_get`` on the Redis backend with the fleet
  machinery on and off (alternating rounds of 100 calls, 20 [6] rounds, each side first in half).
* ``fenced takeover``: a replica is killed during its PUT, which OrderDesk holds 3 s and applies after
  its sender died; time until another replica's update succeeds (it waits out the dead write's
  deadline, ``mutations.write_deadline`` = 10 s here), and whether that acknowledged update survived.
* ``cluster``: ``distinct``, ``spread`` and ``one order`` again, the fleet on a 3-master Redis Cluster
  started by the bench on loopback (``redis+cluster://``); same targets.
* ``outage``: 3 in-process replicas on their own ``redis-server``, stopped for 20 [5] s and started
  again, while rounds of concurrent updates of one order and reads of others go on: read errors,
  upstream 429s and lost updates (answered success, not upstream) must be 0; the other updates answer
  ``UNAVAILABLE``.

Physical limit: N accepted upstream requests cannot finish before (N - 20) / 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from typing import Any

from common import (
    GatewayProcess,
    SandboxProcess,
    build_gateway,
    cache_keys_for_orders,
    delete_redis_keys,
    header,
    machine,
    parse_quick,
    percentile,
    remove_file,
    summary,
    target,
    tool_error_text,
    unique_prefix,
    write_config,
)

CAPACITY, REFILL = 20, 3.0
CLIENTS = 30


class Run:
    """What one scenario measured."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.elapsed = 0.0
        self.accepted = 0
        self.throttled = 0
        self.per_path: Counter[str] = Counter()

    @property
    def limit(self) -> float:
        return max(0.0, (self.accepted - CAPACITY) / REFILL)

    @property
    def slowest(self) -> float:
        return max(self.latencies, default=0.0)

    def line(self) -> str:
        ratio = self.elapsed / self.limit if self.limit else float("nan")
        return (
            f"  {self.name}: {len(self.latencies)} calls, {len(self.errors)} errors; upstream "
            f"{self.accepted} accepted ({len(self.per_path)} distinct), {self.throttled} answered 429; "
            f"elapsed {self.elapsed:.2f} s vs limit {self.limit:.2f} s ({ratio:.3f}x); "
            f"p50 {percentile(self.latencies, 50):.2f} s, slowest {self.slowest:.2f} s"
        )


async def drive(sb: SandboxProcess, urls: list[str], plan: list[list[str]], name: str) -> Run:
    """Client ``i`` connects to ``urls[i % len(urls)]`` and calls ``orders_get`` for each id of ``plan[i]``."""
    from mcp import Client

    run = Run(name)
    go = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(urls[i % len(urls)])) for i in range(len(plan))]
        await asyncio.gather(*(c.call_tool("gateway_ping", {}) for c in clients))

        async def client(c: Any, mine: list[str]) -> None:
            await go.wait()
            for oid in mine:
                t0 = time.perf_counter()
                r = await c.call_tool("orders_get", {"order_id": oid})
                run.latencies.append(time.perf_counter() - t0)
                if r.is_error:
                    run.errors.append(tool_error_text(r))

        tasks = [asyncio.create_task(client(c, mine)) for c, mine in zip(clients, plan, strict=True)]
        await sb.clear_requests()
        t0 = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        run.elapsed = time.perf_counter() - t0
    log = [r for r in await sb.requests(method="GET") if r["path"].startswith("/orders/")]
    run.accepted = sum(1 for r in log if r["status"] != 429)
    run.throttled = sum(1 for r in log if r["status"] == 429)
    run.per_path = Counter(r["path"] for r in log if r["status"] != 429)
    print(run.line(), flush=True)
    for e in run.errors[:3]:
        print(f"    error: {e}")
    return run


def deal(ids: list[str], clients: int) -> list[list[str]]:
    return [ids[i::clients] for i in range(clients)]


async def settle(prefixes: list[str], store_id: str, ids: list[str]) -> None:
    """Forget the cached orders and let every bucket fill up again."""
    await delete_redis_keys([k for p in prefixes for k in cache_keys_for_orders(p, store_id, ids)])
    await asyncio.sleep(CAPACITY / REFILL + 0.5)


async def kill_holder(
    sb: SandboxProcess, victim: GatewayProcess, survivor: GatewayProcess, order_id: str
) -> tuple[float, str]:
    """Seconds from ``kill -9`` of a replica holding ``order_id``'s lock until another's update succeeds."""
    from mcp import Client

    async def doomed() -> None:
        with contextlib.suppress(Exception):  # its server is killed under it
            async with Client(victim.mcp_url) as c:
                await c.call_tool(
                    "orders_update", {"order_id": order_id, "changes": {"order_metadata": {"k": "v"}}}
                )

    await sb.set_config(latency_ms=3000.0)  # the victim's GET hangs while it holds the lock
    held = asyncio.create_task(doomed())
    await asyncio.sleep(1.0)
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.perf_counter()
    await sb.set_config(latency_ms=0.0)
    async with Client(survivor.mcp_url) as c:
        r = await c.call_tool(
            "orders_update", {"order_id": order_id, "changes": {"order_metadata": {"k": "s"}}}
        )
    took = time.perf_counter() - killed
    await held
    return took, tool_error_text(r) if r.is_error else ""


async def fenced_takeover(
    sb: SandboxProcess, victim: GatewayProcess, survivor: GatewayProcess, order_id: str
) -> tuple[float, bool, str]:
    """``kill -9`` of a replica during its PUT (held upstream, applied after its sender died): seconds
    until another replica's update succeeds, and whether that update is still upstream afterwards."""
    from mcp import Client

    rule = await sb.add_fault(
        method="PUT", path=f"/orders/{order_id}$", delay_ms=3000, times=1, apply_when_gone=True
    )

    async def doomed() -> None:
        with contextlib.suppress(Exception):  # its server is killed under it
            async with Client(victim.mcp_url) as c:
                await c.call_tool(
                    "orders_update", {"order_id": order_id, "changes": {"order_metadata": {"dead": "v"}}}
                )

    held = asyncio.create_task(doomed())
    while not any(f["id"] == rule["id"] and f["fired"] for f in await sb.faults()):  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # the sandbox runs in another process: polling its admin API
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.perf_counter()
    async with Client(survivor.mcp_url) as c:
        r = await c.call_tool(
            "orders_update", {"order_id": order_id, "changes": {"order_metadata": {"alive": "kept"}}}
        )
    took = time.perf_counter() - killed
    await held
    while not [x for x in await sb.requests(method="PUT") if x.get("fault")]:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # until the dead PUT is done (recorded when it finishes)
    kept = (await sb.order(order_id)).get("order_metadata", {}).get("alive") == "kept"
    return took, kept, tool_error_text(r) if r.is_error else ""


class LocalRedis:
    """``redis-server`` processes on loopback started by the bench and stopped by PID: one server, or a
    3-master cluster (``redis-cli --cluster create``)."""

    def __init__(self, nodes: int = 1) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.ports = [_cluster_port() for _ in range(nodes)]
        self.procs: list[Any] = []
        self.cluster = nodes > 1

    @property
    def url(self) -> str:
        return (
            f"redis+cluster://127.0.0.1:{self.ports[0]}"
            if self.cluster
            else f"redis://127.0.0.1:{self.ports[0]}/0"
        )

    def start(self) -> None:
        import subprocess

        for port in self.ports:
            args = [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            if self.cluster:
                args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
            self.procs.append(
                subprocess.Popen(args, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in self.ports:
            _until(lambda p=port: _redis(p).ping())
        if self.cluster:
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            for port in self.ports:
                _until(lambda p=port: _redis(p).cluster("INFO")["cluster_state"] == "ok")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        self.procs = []


def _redis(port: int) -> Any:
    import redis

    return redis.Redis(port=port, socket_timeout=1, decode_responses=True)


def _until(ready: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError("a redis-server started by the bench did not come up")
        time.sleep(0.05)


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import socket

    while True:
        port = random.randrange(20000, 45000)
        with contextlib.ExitStack() as stack:
            try:
                for p in (port, port + 10000):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", p))
            except OSError:
                continue
            return port


async def outage(sb: SandboxProcess, ids: list[str], seconds: float) -> dict[str, int]:
    """3 in-process replicas on their own Redis, stopped for ``seconds`` mid-run, then started again."""
    from odmcp.middleware import error_of
    from odmcp.testing import connect

    server = LocalRedis()
    server.start()
    prefix = unique_prefix("fleet-outage")
    extra = {"cache.backend": "redis", "cache.redis_url": server.url, "mutations.lock_wait": 10.0}
    gateways = [build_gateway(sb, prefix, extra) for _ in range(3)]
    order, others = ids[0], ids[1:]
    counts = Counter[str]()
    answered: dict[str, Any] = {}
    try:
        await sb.clear_requests()
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(connect(gw)) for gw in gateways]

            async def update(key: str, c: Any) -> None:
                answered[key] = await c.call_tool(
                    "orders_update", {"order_id": order, "changes": {"order_metadata": {key: "kept"}}}
                )

            async def read(oid: str, c: Any) -> None:
                r = await c.call_tool("orders_get", {"order_id": oid})
                counts["reads"] += 1
                counts["read errors"] += r.is_error

            async def round_(n: int) -> None:
                await asyncio.gather(
                    *(update(f"r{n}c{i}", c) for i, c in enumerate(clients)),
                    *(read(others[(3 * n + i) % len(others)], c) for i, c in enumerate(clients)),
                )

            n = 0
            await round_(n)
            server.stop()
            down = time.monotonic()
            while time.monotonic() - down < seconds:
                n += 1
                await round_(n)
                await asyncio.sleep(0.5)
            port = server.ports[0]
            server = LocalRedis()
            server.ports = [port]
            server.start()
            await asyncio.sleep(1.5)  # the replicas notice Redis is back
            n += 1
            await round_(n)
        meta = (await sb.order(order)).get("order_metadata", {})
        for key, r in answered.items():
            if not r.is_error:
                counts["updates ok"] += 1
                counts["lost updates"] += meta.get(key) != "kept"
            else:
                counts["UNAVAILABLE" if error_of(r)["code"] == "UNAVAILABLE" else "other update errors"] += 1
        counts["upstream 429s"] = sum(1 for x in await sb.requests() if x["status"] == 429)
    finally:
        server.stop()
    return dict(counts)


async def cached_read_cost(sb: SandboxProcess, order_id: str, rounds: int, calls: int) -> tuple[float, float]:
    """p50 (ms) of a cached orders_get on Redis: fleet machinery on, off (alternating rounds)."""
    from odmcp.testing import connect

    prefix = unique_prefix("fleet-inproc")
    gw = build_gateway(sb, prefix, {"cache.backend": "redis"})
    samples: dict[bool, list[float]] = {True: [], False: []}
    async with connect(gw) as client:
        await client.call_tool("orders_get", {"order_id": order_id})  # prime (one upstream GET)
        fleet = gw.cache.fleet
        for r in range(rounds):
            for on in (True, False) if r % 2 else (False, True):  # alternate which goes first
                gw.cache.fleet = fleet if on else None
                for _ in range(calls):
                    t0 = time.perf_counter()
                    await client.call_tool("orders_get", {"order_id": order_id})
                    samples[on].append(time.perf_counter() - t0)
        gw.cache.fleet = fleet
    await delete_redis_keys(cache_keys_for_orders(prefix, sb.store_id, [order_id]))
    return percentile(samples[True], 50) * 1000, percentile(samples[False], 50) * 1000


async def main() -> None:
    args = parse_quick(__doc__.splitlines()[0])
    n_distinct, n_spread_orders = (45, 18) if args.quick else (150, 60)
    print(
        f"fleet benchmark ({'quick' if args.quick else 'full'}; {machine()}): bucket {CAPACITY} + "
        f"{REFILL:g}/s enforced by the sandbox; {CLIENTS} clients over Streamable HTTP"
    )
    paths: list[str] = []
    procs: list[GatewayProcess] = []
    async with SandboxProcess(rate_limit_enabled=True, seed_orders=n_distinct) as sb:
        ids = await sb.order_ids()
        one_prefix, fleet_prefix = unique_prefix("fleet1"), unique_prefix("fleet3")
        # a write's hard deadline of 10 s (default 75 s): the fenced takeover waits that long at most
        extra = {"cache.backend": "redis", "mutations.write_deadline": 10.0, "orderdesk.deadline": 8.0}
        try:
            paths = [write_config(sb, one_prefix, extra), write_config(sb, fleet_prefix, extra)]
            procs = [GatewayProcess(path, startup_timeout=90.0) for path in [paths[0]] + [paths[1]] * 3]
            t0 = time.perf_counter()
            await asyncio.gather(*(p.start() for p in procs))
            print(f"4 gateway processes started in {time.perf_counter() - t0:.1f} s")
            single, fleet = procs[0], procs[1:]
            fleet_urls = [p.mcp_url for p in fleet]
            prefixes = [one_prefix, fleet_prefix]

            header("cached read cost of the fleet machinery (in-process)")
            p50_on, p50_off = await cached_read_cost(sb, ids[-1], 6 if args.quick else 20, 100)
            print(f"  cached orders_get p50: fleet on {p50_on:.3f} ms, off {p50_off:.3f} ms")
            await settle(prefixes, sb.store_id, ids)

            header(f"distinct: {n_distinct} uncached orders, {CLIENTS} clients")
            plan = deal(ids[:n_distinct], CLIENTS)
            d1 = await drive(sb, [single.mcp_url], plan, "1 replica")
            await settle(prefixes, sb.store_id, ids)
            d3 = await drive(sb, fleet_urls, plan, "3 replicas")
            await settle(prefixes, sb.store_id, ids)
            skew = None
            if not args.quick:
                skew = await drive(sb, fleet_urls[:1], plan, "all on one of 3 replicas")
                await settle(prefixes, sb.store_id, ids)

            header(f"spread: {n_distinct} gets over {n_spread_orders} uncached orders")
            spread_ids = ids[:n_spread_orders]
            calls = [spread_ids[i % n_spread_orders] for i in range(n_distinct)]
            random.Random(7).shuffle(calls)
            plan = deal(calls, CLIENTS)
            s1 = None
            if not args.quick:
                s1 = await drive(sb, [single.mcp_url], plan, "1 replica")
                await settle(prefixes, sb.store_id, ids)
            s3 = await drive(sb, fleet_urls, plan, "3 replicas")

            header("one order: 90 concurrent gets over 3 replicas")
            hot = ids[n_distinct - 2]
            one = await drive(sb, fleet_urls, [[hot] for _ in range(90)], "3 replicas")

            header("fenced takeover: kill -9 of the lock holder during its PUT")
            fenced, fenced_kept, fenced_err = await fenced_takeover(
                sb, fleet[2], fleet[0], ids[n_distinct - 4]
            )
            print(
                f"  another replica's update succeeded {fenced:.2f} s after the kill; still upstream after "
                f"the dead PUT landed: {fenced_kept}{'; ' + fenced_err if fenced_err else ''}"
            )

            header("kill -9 of the lock holder (nothing in flight)")
            took, err = await kill_holder(sb, fleet[1], fleet[0], ids[n_distinct - 3])
            print(
                f"  another replica's update succeeded {took:.2f} s after the kill{'; ' + err if err else ''}"
            )

            header("cluster: the fleet of 3 on a 3-master Redis Cluster")
            cluster = LocalRedis(3)
            on_cluster: list[GatewayProcess] = []
            cluster_prefix = unique_prefix("fleet3c")
            cluster_extra = {**extra, "cache.redis_url": cluster.url}
            try:
                cluster.start()
                paths.append(write_config(sb, cluster_prefix, cluster_extra))
                on_cluster = [GatewayProcess(paths[-1], startup_timeout=90.0) for _ in range(3)]
                await asyncio.gather(*(p.start() for p in on_cluster))
                cluster_urls = [p.mcp_url for p in on_cluster]
                await settle(prefixes, sb.store_id, ids)
                c3 = await drive(sb, cluster_urls, deal(ids[:n_distinct], CLIENTS), "distinct, 3 replicas")
                await settle_cluster(cluster.url, cluster_prefix)
                cs3 = await drive(sb, cluster_urls, plan, "spread, 3 replicas")
                cone = await drive(sb, cluster_urls, [[ids[n_distinct - 5]] for _ in range(90)], "one order")
            finally:
                for i, p in enumerate(on_cluster):
                    warnings = [line for line in p.stderr_text().splitlines() if "WARNING" in line]
                    if warnings:
                        print(
                            f"  cluster gateway {i}: {len(warnings)} warning lines, e.g. {warnings[0][-160:]}"
                        )
                    p.stop()
                cluster.stop()

            header(
                f"outage: Redis stopped for {5 if args.quick else 20} s under concurrent updates and reads"
            )
            await asyncio.sleep(CAPACITY / REFILL + 0.5)
            out = await outage(sb, ids[:n_distinct], 5.0 if args.quick else 20.0)
            print("  " + ", ".join(f"{k}: {v}" for k, v in out.items()))
        finally:
            for i, p in enumerate(procs):
                warnings = [line for line in p.stderr_text().splitlines() if "WARNING" in line]
                if warnings:
                    print(f"  gateway {i}: {len(warnings)} warning lines, e.g. {warnings[0][-160:]}")
                p.stop()
            for path in paths:
                remove_file(path)
            await delete_redis_keys([k for p in (one_prefix, fleet_prefix) for k in fleet_keys(p, sb)])
            await delete_redis_keys(cache_keys_for_orders(fleet_prefix, sb.store_id, ids))

    header("results")
    ratio_limit = d3.elapsed / d3.limit if d3.limit else float("nan")
    slow_ratio = d3.slowest / d1.slowest if d1.slowest else float("nan")
    target(
        "fleet_distinct_errors_429s",
        f"{len(d3.errors)} errors, {d3.throttled} upstream 429s in {len(d3.latencies)} calls on 3 replicas "
        f"(1 replica: {len(d1.errors)} errors, {d1.throttled} 429s)",
        "0 errors, <= 2 upstream 429s",
        not d3.errors and d3.throttled <= 2,
    )
    target(
        "fleet_distinct_elapsed",
        f"{d3.elapsed:.2f} s vs physical limit {d3.limit:.2f} s = {ratio_limit:.3f}x "
        f"(1 replica {d1.elapsed:.2f} s)",
        "<= 1.1x",
        ratio_limit <= 1.1,
    )
    target(
        "fleet_distinct_slowest",
        f"slowest call {d3.slowest:.2f} s vs 1 replica {d1.slowest:.2f} s = {slow_ratio:.2f}x",
        "<= 1.5x",
        slow_ratio <= 1.5,
    )
    spread_ok = s3.accepted == n_spread_orders and not s3.errors
    target(
        "fleet_spread_upstream",
        f"{s3.accepted} upstream GETs for {n_spread_orders} orders on 3 replicas, {len(s3.errors)} errors, "
        f"{s3.elapsed:.2f} s" + (f" (1 replica: {s1.accepted} GETs, {s1.elapsed:.2f} s)" if s1 else ""),
        f"{n_spread_orders} (one per order)",
        spread_ok,
    )
    target(
        "fleet_one_order_upstream",
        f"{one.accepted} upstream GET(s) for 90 concurrent calls, {len(one.errors)} errors",
        "1",
        one.accepted == 1 and not one.errors,
    )
    skew_ratio = skew.elapsed / d1.elapsed if skew and d1.elapsed else float("nan")
    if skew is not None:
        target(
            "fleet_skewed_elapsed",
            f"all load on one of 3 replicas {skew.elapsed:.2f} s vs 1 replica {d1.elapsed:.2f} s = {skew_ratio:.3f}x",
            "<= 1.1x",
            skew_ratio <= 1.1 and not skew.errors,
        )
    c_ratio = c3.elapsed / c3.limit if c3.limit else float("nan")
    c_slow = c3.slowest / d1.slowest if d1.slowest else float("nan")
    target(
        "fleet_cluster_distinct",
        f"{len(c3.errors)} errors, {c3.throttled} upstream 429s, {c3.elapsed:.2f} s = {c_ratio:.3f}x the limit, "
        f"slowest {c_slow:.2f}x 1 replica",
        "0 errors, <= 2 upstream 429s, <= 1.1x, slowest <= 1.5x",
        not c3.errors and c3.throttled <= 2 and c_ratio <= 1.1 and c_slow <= 1.5,
    )
    target(
        "fleet_cluster_spread_upstream",
        f"{cs3.accepted} upstream GETs for {n_spread_orders} orders, {len(cs3.errors)} errors",
        f"{n_spread_orders} (one per order)",
        cs3.accepted == n_spread_orders and not cs3.errors,
    )
    target(
        "fleet_cluster_one_order_upstream",
        f"{cone.accepted} upstream GET(s) for 90 concurrent calls, {len(cone.errors)} errors",
        "1",
        cone.accepted == 1 and not cone.errors,
    )
    target(
        "fleet_fenced_takeover",
        f"update on another replica succeeded {fenced:.2f} s after kill -9 during the PUT (write deadline 10 s); "
        f"kept after the dead PUT landed: {fenced_kept}" + (f" (error: {fenced_err})" if fenced_err else ""),
        "kept, 0 lost updates, <= 12 s",
        fenced_kept and not fenced_err and fenced <= 12,
    )
    target(
        "fleet_outage",
        ", ".join(f"{k}: {v}" for k, v in out.items()),
        "0 read errors, 0 upstream 429s, 0 lost updates; the rest UNAVAILABLE",
        out.get("read errors", 0) == 0
        and out.get("upstream 429s", 0) == 0
        and out.get("lost updates", 0) == 0
        and out.get("other update errors", 0) == 0,
    )
    target(
        "fleet_kill9_lock",
        f"update on another replica succeeded {took:.2f} s after kill -9 of the holder"
        + (f" (error: {err})" if err else ""),
        "<= 10 s",
        took <= 10 and not err,
    )
    target(
        "fleet_cached_read_cost",
        f"p50 {p50_on:.3f} ms with the fleet machinery vs {p50_off:.3f} ms without ({p50_on - p50_off:+.3f} ms)",
        "<= 0.2 ms extra",
        p50_on - p50_off <= 0.2,
    )
    summary(
        "fleet",
        f"3 replicas: {d3.throttled} 429s, {d3.elapsed:.1f} s = {ratio_limit:.2f}x the limit, slowest "
        f"{slow_ratio:.2f}x 1 replica; spread {s3.accepted} GETs for {n_spread_orders} orders; one order "
        f"{one.accepted} GET; skewed {skew_ratio:.2f}x; kill -9 {took:.1f} s; fenced takeover {fenced:.1f} s "
        f"(kept: {fenced_kept}); cluster {c3.throttled} 429s {c_ratio:.2f}x, {cs3.accepted} GETs, {cone.accepted} GET; "
        f"outage lost {out.get('lost updates', 0)}, 429s {out.get('upstream 429s', 0)}",
    )


async def settle_cluster(url: str, prefix: str) -> None:
    """Forget what the cluster fleet cached (its own prefix) and let the buckets fill up again."""
    from odmcp.testing import delete_redis_prefix

    delete_redis_prefix(url, prefix)
    await asyncio.sleep(CAPACITY / REFILL + 0.5)


def fleet_keys(prefix: str, sb: SandboxProcess) -> list[str]:
    """The shared bucket's keys of ``prefix`` (the rate limiter names the store by URL and id)."""
    from odmcp.cache import digest

    bucket = f"{prefix}:{{{digest(f'orderdesk|{sb.base_url}|{sb.store_id}')}}}:bucket"
    return [bucket, bucket + ":replicas"]


if __name__ == "__main__":
    asyncio.run(main())
