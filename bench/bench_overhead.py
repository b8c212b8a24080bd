"""Overhead: what the gateway adds on top of the MCP SDK and of the upstream GET.

    .venv/bin/python bench/bench_overhead.py [--quick]

For each transport (in-process ``Client``, stdio subprocess, Streamable HTTP subprocess) one loop
interleaves four calls per iteration, so all four see the same machine state:

* ``trivial``  - ``gateway_ping`` (no upstream call): the SDK's own floor on this transport;
* ``cached``   - ``orders_get`` of one hot order (primed once, ``cache.ttl.order`` = 600 s so it stays);
* ``uncached`` - ``orders_get`` of a different order every call (never requested before, so every one
                 is a cache miss: single-flight -> upstream GET -> cache fill). The upstream GET count
                 is checked against the number of calls;
* ``raw``      - a raw aiohttp GET (keep-alive session, body read) of that same order from the sandbox.

The sandbox runs in its own process on loopback (so every upstream GET, the gateway's and the raw one,
crosses a process boundary as it would to OrderDesk) with its rate limit OFF, and the gateway's
client-side limiter off with it. Targets (p50): cached <= 2x trivial; uncached <= trivial + raw + 0.3 ms.

Besides wall-clock latency the table shows the median CPU time per call: of the bench's own thread
(client + gateway) in-process, and of the gateway process over stdio/HTTP (``/proc/<pid>/task/*/
schedstat``, read while it is idle between calls). CPU time does not include waiting for a core, so
it isolates the gateway's own work from scheduling noise on a busy machine.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from common import (
    ROOT,
    GatewayProcess,
    SandboxProcess,
    build_gateway,
    child_pids,
    clean_env,
    header,
    machine,
    p50_p99,
    proc_cpu_ns,
    remove_file,
    serve_command,
    summary,
    target,
    tool_error_text,
    unique_prefix,
    write_config,
)

KINDS = ("trivial", "cached", "uncached", "raw")
EXTRA = {"cache.ttl.order": 600.0}
WARMUP = 30


async def measure(
    name: str,
    client: Any,
    sb: Any,
    fresh: Iterator[str],
    hot: str,
    n: int,
    session: aiohttp.ClientSession,
    cpu_ns: Callable[[], int],
) -> dict[str, list[float]]:
    """Interleave the four calls ``n`` times (after ``WARMUP`` rounds); latency samples in ms, and
    the CPU time (``cpu_ns()`` deltas) spent during each call in ``cpu:<kind>`` (µs)."""
    headers = sb.headers()
    base = sb.base_url
    clock = time.perf_counter
    samples: dict[str, list[float]] = {k: [] for k in KINDS}
    for k in KINDS:
        samples[f"cpu:{k}"] = []
    errors = 0
    await sb.clear_requests()
    r = await client.call_tool("orders_get", {"order_id": hot})  # prime the hot order
    errors += bool(r.is_error)
    uncached_ids: list[str] = []

    async def raw_get(oid: str) -> None:
        async with session.get(f"{base}/orders/{oid}", headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"raw GET answered {resp.status}")

    for i in range(WARMUP + n):
        oid = next(fresh)
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("trivial", lambda: client.call_tool("gateway_ping", {})),
            ("cached", lambda: client.call_tool("orders_get", {"order_id": hot})),
            ("uncached", functools.partial(client.call_tool, "orders_get", {"order_id": oid})),
            ("raw", functools.partial(raw_get, oid)),
        ]
        for kind, call in calls:
            c0 = cpu_ns()
            t0 = clock()
            result = await call()
            dt = (clock() - t0) * 1000.0
            dc = (cpu_ns() - c0) / 1000.0
            if result is not None and result.is_error:
                errors += 1
                if errors <= 3:
                    print(f"  [{name}] {kind} error: {tool_error_text(result)}")
            if i >= WARMUP:
                samples[kind].append(dt)
                samples[f"cpu:{kind}"].append(dc)
        uncached_ids.append(oid)
    # every uncached call must have gone upstream exactly once, the hot order only once in total
    wanted = set(uncached_ids)
    log = await sb.requests(method="GET", path_prefix="/orders/")
    upstream = sum(1 for rec in log if rec["path"].rsplit("/", 1)[-1] in wanted)
    hot_fetches = sum(1 for rec in log if rec["path"] == f"/orders/{hot}")
    print(
        f"  [{name}] {n} rounds (+{WARMUP} warm-up); upstream GETs: {upstream} for {len(wanted)} uncached "
        f"calls + {len(wanted)} raw GETs of the same ids (expected {2 * len(wanted)}); hot order fetched "
        f"{hot_fetches}x (expected 1); tool errors: {errors}"
    )
    return samples


def report(name: str, samples: dict[str, list[float]], cpu_of: str) -> tuple[list[str], dict[str, float]]:
    stats = {k: p50_p99(v) for k, v in samples.items()}
    print(f"  {'call':10s} {'p50 ms':>8s} {'p99 ms':>8s}   {'CPU µs/call (' + cpu_of + ', median)':>8s}")
    for k in KINDS:
        print(f"  {k:10s} {stats[k][0]:8.3f} {stats[k][1]:8.3f}   {stats['cpu:' + k][0]:8.0f}")
    triv, cached, unc, raw = (stats[k][0] for k in KINDS)
    ratio = cached / triv
    budget = triv + raw + 0.3
    cpu_miss = stats["cpu:uncached"][0] - stats["cpu:trivial"][0]
    print(
        f"  cached/trivial = {ratio:.2f}x; uncached - raw - trivial = {unc - raw - triv:+.3f} ms wall; "
        f"CPU of an uncached call beyond a trivial one ({cpu_of}): {cpu_miss:.0f} µs"
    )
    lines = [
        target(
            f"overhead_cached[{name}]",
            f"p50 {cached:.3f} ms = {ratio:.2f}x trivial {triv:.3f} ms",
            "<= 2x trivial",
            ratio <= 2.0,
        ),
        target(
            f"overhead_uncached[{name}]",
            f"p50 {unc:.3f} ms",
            f"<= trivial {triv:.3f} + raw GET {raw:.3f} + 0.3 = {budget:.3f} ms",
            unc <= budget,
        ),
    ]
    return lines, {"ratio": ratio, "uncached": unc, "budget": budget, "cpu_miss": cpu_miss}


async def main() -> None:
    from common import parse_quick

    args = parse_quick(__doc__.splitlines()[0])
    sizes = (
        {"inproc": 400, "stdio": 300, "http": 300}
        if args.quick
        else {"inproc": 3000, "stdio": 1500, "http": 1500}
    )
    seed = sum(sizes.values()) + 3 * (WARMUP + 1) + 50
    print(
        f"overhead benchmark ({'quick' if args.quick else 'full'}; {machine()}); sandbox seeded with {seed} orders"
    )
    from mcp import Client, StdioServerParameters

    from odmcp.testing import connect

    results: dict[str, dict[str, float]] = {}
    async with SandboxProcess(rate_limit_enabled=False, seed_orders=seed) as sb:
        ids = await sb.order_ids()
        hot = ids[0]
        fresh = iter(ids[1:])
        prefix = unique_prefix("overhead")
        async with aiohttp.ClientSession() as session:
            header("in-process Client (mode auto)")
            gw = build_gateway(sb, prefix + "-a", EXTRA)
            async with connect(gw) as client:
                samples = await measure(
                    "inproc", client, sb, fresh, hot, sizes["inproc"], session, time.thread_time_ns
                )
            results["inproc"] = report("inproc", samples, "client+gateway thread")[1]

            header("stdio (serve --transport stdio subprocess)")
            path = write_config(sb, prefix + "-s", EXTRA)
            try:
                params = StdioServerParameters(
                    command=sys.executable,
                    args=serve_command(path, "stdio")[1:],
                    cwd=str(ROOT),
                    env=clean_env(),
                )
                before = set(child_pids())
                async with Client(params) as client:
                    await client.call_tool("gateway_ping", {})
                    (gw_pid,) = set(child_pids()) - before
                    samples = await measure(
                        "stdio", client, sb, fresh, hot, sizes["stdio"], session, lambda: proc_cpu_ns(gw_pid)
                    )
                results["stdio"] = report("stdio", samples, "gateway process")[1]
            finally:
                remove_file(path)

            header("Streamable HTTP (serve --transport http subprocess)")
            path = write_config(sb, prefix + "-h", EXTRA)
            try:
                async with GatewayProcess(path) as gp, Client(gp.mcp_url) as client:
                    samples = await measure(
                        "http", client, sb, fresh, hot, sizes["http"], session, lambda: proc_cpu_ns(gp.pid)
                    )
                results["http"] = report("http", samples, "gateway process")[1]
            finally:
                remove_file(path)

    summary(
        "overhead",
        "; ".join(
            f"{t}: cached {r['ratio']:.2f}x trivial, uncached {r['uncached']:.3f}/{r['budget']:.3f} ms "
            f"(miss CPU {r['cpu_miss']:.0f} µs)"
            for t, r in results.items()
        ),
    )


if __name__ == "__main__":
    asyncio.run(main())
