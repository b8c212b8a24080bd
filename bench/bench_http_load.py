"""HTTP load: 50 concurrent MCP clients over Streamable HTTP against one gateway process.

    .venv/bin/python bench/bench_http_load.py [--quick] [--clients 50] [--workers 2] [--duration S]

The gateway is ``serve --transport http`` (memory cache, default settings) in its own process, the
sandbox (rate limit off: the real 3/s bucket would make this a rate-limit test) in another. The 50
clients are split over ``--workers`` client processes (default 2, so the client side is not limited to
one Python thread); each client is its own ``mcp.Client(url)`` and calls in a closed loop, one call
at a time. Clients connect first; all start together at a common instant and stop after the
duration (30 s, --quick 5 s). Two workloads, one after the other, each in a fresh gateway process:

* ``cached`` - ``orders_get`` on 5 hot orders (primed before the start);
* ``mixed``  - 80% ``orders_get`` / 20% ``orders_update`` (each client sets its own ``order_metadata``
  key to a counter) over 20 orders.

Printed per workload: calls, throughput, p50/p99 latency (ms, as seen by the clients), errors and
error rate, upstream requests, and the CPU used by the gateway and by the clients. Target: 0 errors.
On this 2-vCPU machine the gateway, the sandbox and the client processes share two cores, so
throughput is a machine-wide figure, not the gateway's ceiling.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

HOT, POOL, WRITE_SHARE = 5, 20, 0.20
SELF = os.path.abspath(__file__)


# --- the client worker (a separate process) --------------------------------------------------------


async def worker(
    url: str, clients: int, duration: float, workload: str, ids: list[str], wid: int
) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from mcp import Client

    rng = random.Random(1000 + wid)
    lat: list[float] = []
    errors: list[str] = []
    calls = 0
    end_at = 0.0

    async def run(c: int, client: Any) -> None:
        nonlocal calls
        n = 0
        while True:
            now = time.time()
            if now >= end_at:
                return
            if workload == "mixed" and rng.random() < WRITE_SHARE:
                n += 1
                name, arg = (
                    "orders_update",
                    {"order_id": rng.choice(ids), "changes": {"order_metadata": {f"lw{wid}c{c}": str(n)}}},
                )
            else:
                name, arg = "orders_get", {"order_id": rng.choice(ids)}
            t0 = time.perf_counter()
            try:
                r = await client.call_tool(name, arg)
                err = r.content[0].text[:160] if r.is_error else None
            except Exception as exc:  # a transport failure is an error the agent sees, too
                err = f"{type(exc).__name__}: {exc}"[:160]
            dt = (time.perf_counter() - t0) * 1000.0
            calls += 1
            lat.append(dt)
            if err:
                errors.append(f"{name}: {err}")

    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(Client(url)) for _ in range(clients)]
        await asyncio.gather(*(c.call_tool("gateway_ping", {}) for c in conns))
        # barrier: say READY, then wait for the coordinator's common start instant on stdin
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        start_at = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        end_at = start_at + duration
        delay = start_at - time.time()
        late = delay < 0
        await asyncio.sleep(max(0.0, delay))
        cpu0 = time.process_time()
        await asyncio.gather(*(run(i, c) for i, c in enumerate(conns)))
        cpu = time.process_time() - cpu0
    return {"calls": calls, "lat": lat, "errors": errors, "cpu": cpu, "late": late}


def worker_main(argv: list[str]) -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--wid", type=int, required=True)
    a = p.parse_args(argv)
    out = asyncio.run(worker(a.url, a.clients, a.duration, a.workload, a.ids.split(","), a.wid))
    sys.stdout.write(json.dumps(out) + "\n")


# --- the coordinator -------------------------------------------------------------------------------


async def cache_counters(base_url: str) -> dict[str, float]:
    """Cache hit/miss counters from the gateway's /metrics (Prometheus text)."""
    import aiohttp

    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as s, s.get(base_url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            for name in ("cache_hits_total", "cache_misses_total"):
                if line.startswith(f"mcpgw_{name} "):
                    out[name] = float(line.split()[-1])
    return out


async def run_workload(
    sb: Any, workload: str, ids: list[str], clients: int, workers: int, duration: float
) -> dict[str, Any]:
    from common import (
        GatewayProcess,
        machine_cpu,
        p50_p99,
        process_cpu,
        remove_file,
        unique_prefix,
        write_config,
    )
    from mcp import Client

    path = write_config(sb, unique_prefix(f"load-{workload}"))
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with GatewayProcess(path) as gp:
            async with Client(gp.mcp_url) as c:  # prime the orders
                for oid in ids:
                    await c.call_tool("orders_get", {"order_id": oid})
            split = [clients // workers + (1 if w < clients % workers else 0) for w in range(workers)]
            for w, k in enumerate(split):
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        SELF,
                        "--worker",
                        "--url",
                        gp.mcp_url,
                        "--clients",
                        str(k),
                        "--duration",
                        repr(duration),
                        "--workload",
                        workload,
                        "--ids",
                        ",".join(ids),
                        "--wid",
                        str(w),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                    )
                )
            for p in procs:  # every client of every worker is connected
                line = await asyncio.wait_for(p.stdout.readline(), 120)  # type: ignore[union-attr]
                if line.strip() != b"READY":
                    raise RuntimeError(f"client worker did not get ready: {line!r}")
            start_at = time.time() + 0.2
            for p in procs:
                p.stdin.write(f"{start_at!r}\n".encode())  # type: ignore[union-attr]
                await p.stdin.drain()  # type: ignore[union-attr]
            await asyncio.sleep(max(0.0, start_at - time.time()))
            await sb.clear_requests()
            gw_cpu0, sb_cpu0, (busy0, total0) = process_cpu(gp.pid), process_cpu(sb.pid), machine_cpu()
            outs = []
            for p in procs:
                stdout, stderr = await p.communicate()
                if p.returncode != 0 or not stdout.strip():
                    raise RuntimeError(f"client worker failed ({p.returncode}): {stderr.decode()[-1500:]}")
                outs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
            gw_cpu, sb_cpu = process_cpu(gp.pid) - gw_cpu0, process_cpu(sb.pid) - sb_cpu0
            busy1, total1 = machine_cpu()
            upstream = await sb.requests()
            cache = await cache_counters(gp.base_url)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        remove_file(path)
    lat = [x for o in outs for x in o["lat"]]
    calls = sum(o["calls"] for o in outs)
    errors = [e for o in outs for e in o["errors"]]
    p50, p99 = p50_p99(lat)
    by_method: dict[str, int] = {}
    for r in upstream:
        by_method[r["method"]] = by_method.get(r["method"], 0) + 1
    return {
        "calls": calls,
        "rps": calls / duration,
        "p50": p50,
        "p99": p99,
        "errors": errors,
        "gw_cpu": gw_cpu / duration,
        "client_cpu": sum(o["cpu"] for o in outs) / duration,
        "sb_cpu": sb_cpu / duration,
        "machine": (busy1 - busy0) / max(1e-9, total1 - total0),
        "upstream": by_method,
        "cache": cache,
        "late": any(o["late"] for o in outs),
    }


async def main() -> None:
    from common import SandboxProcess, header, machine, parse_quick, summary, target

    args = parse_quick(
        __doc__.splitlines()[0],
        clients={"type": int, "default": 50},
        workers={"type": int, "default": 2},
        duration={"type": float, "default": None},
    )
    duration = args.duration or (5.0 if args.quick else 30.0)
    print(
        f"HTTP load benchmark ({'quick' if args.quick else 'full'}; {machine()}): {args.clients} MCP clients "
        f"over Streamable HTTP in {args.workers} client processes, {duration:g} s per workload"
    )
    results: dict[str, dict[str, Any]] = {}
    async with SandboxProcess() as sb:
        ids = await sb.order_ids()
        for workload, pool in (("cached", ids[:HOT]), ("mixed", ids[:POOL])):
            r = await run_workload(sb, workload, pool, args.clients, args.workers, duration)
            results[workload] = r
            header(workload)
            err = len(r["errors"])
            print(
                f"  {r['calls']} calls in {duration:g} s = {r['rps']:.0f} calls/s; p50 {r['p50']:.2f} ms, "
                f"p99 {r['p99']:.2f} ms; errors {err} ({err / max(1, r['calls']) * 100:.3f}%)"
            )
            hits, misses = r["cache"].get("cache_hits_total", 0), r["cache"].get("cache_misses_total", 0)
            print(
                f"  upstream requests during the run: {r['upstream'] or 0}; gateway cache since start: "
                f"{hits:.0f} hits, {misses:.0f} misses ({hits / max(1, hits + misses) * 100:.1f}% hits)"
            )
            print(
                f"  CPU (% of one core): gateway {r['gw_cpu'] * 100:.0f}%, clients {r['client_cpu'] * 100:.0f}%, "
                f"sandbox {r['sb_cpu'] * 100:.0f}%; whole machine busy {r['machine'] * 100:.0f}% of its "
                f"{os.cpu_count()} cores" + ("  (a worker started late!)" if r["late"] else "")
            )
            per_call = r["gw_cpu"] / max(1e-9, r["rps"])
            print(
                f"  gateway CPU per call {per_call * 1000:.2f} ms -> about {1 / per_call:.0f} calls/s per core if the "
                "gateway had a core to itself"
            )
            for e in sorted(set(r["errors"]))[:3]:
                print(f"  error: {e}")
    for workload, r in results.items():
        err = len(r["errors"])
        target(
            f"http_load_errors[{workload}]",
            f"{err} errors in {r['calls']} calls ({err / max(1, r['calls']) * 100:.2f}%); {r['rps']:.0f} calls/s, "
            f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms",
            "0 errors",
            err == 0 and r["calls"] > 0,
        )
    summary(
        "http_load",
        "; ".join(
            f"{w}: {r['rps']:.0f} calls/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
            f"{len(r['errors'])} errors"
            for w, r in results.items()
        ),
    )


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main(sys.argv[1:])
    else:
        asyncio.run(main())
