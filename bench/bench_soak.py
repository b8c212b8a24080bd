"""Sustained mixed load: RSS of the gateway and of the sandbox after minutes of reads, lists and writes.

    .venv/bin/python bench/bench_soak.py [--quick] [--duration S] [--clients N]

``serve --transport http`` with its default settings (memory cache: ``cache.max_bytes`` 64 MB,
``cache.max_entries`` 10,000) and the sandbox (200 seeded orders, rate limit off, its default request
log of 10,000 records) each run in their own process. ``--clients`` MCP clients (default 16, over
Streamable HTTP, in this process) call in a closed loop for 180 s (--quick 20 s):

* 20% ``orders_update`` (each client sets its own ``order_metadata`` key) over the 200 orders;
* 30% ``orders_list`` with varied pages (limit 10 or 20, offsets over the 200 orders, both sort
  orders, with or without a folder): pages of 20-50 KB, a new generation after every write;
* 50% ``orders_get`` over the 200 orders.

RSS (``VmRSS``) of both processes is sampled every 10 s (--quick: 5 s). Targets: the gateway ends at
<= idle + 100 MB (issue 16: it used to settle near 510 MB under this mix), and 0 errors.

Then the sandbox alone: raw OrderDesk requests (5 GETs to 1 GET + PUT of a whole order) until its
request log (a ring buffer; it used to keep 100,000 records) has wrapped 2.5 times, RSS sampled at
each multiple of the log size. Target: the last sample within 5 MB of the one taken when the log
first filled (it levels off). The full run uses the default log of 10,000 records; --quick 2,000.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from common import (
    GatewayProcess,
    SandboxProcess,
    header,
    machine,
    parse_quick,
    process_cpu,
    remove_file,
    rss_mb,
    summary,
    target,
    unique_prefix,
    write_config,
)

SEED_ORDERS = 200
WRITE, LIST = 0.20, 0.30
TARGET_GROWTH_MB = 100.0


def next_call(rng: random.Random, ids: list[str], client: int, n: int) -> tuple[str, dict[str, Any]]:
    r = rng.random()
    if r < WRITE:
        changes = {"order_metadata": {f"soak{client}": str(n)}}
        return "orders_update", {"order_id": rng.choice(ids), "changes": changes}
    if r < WRITE + LIST:
        limit = rng.choice([10, 20])
        args: dict[str, Any] = {
            "limit": limit,
            "offset": limit * rng.randrange(SEED_ORDERS // limit),
            "order": rng.choice(["asc", "desc"]),
        }
        if rng.random() < 0.3:
            args["folder_name"] = rng.choice(["New", "Prepared"])
        return "orders_list", args
    return "orders_get", {"order_id": rng.choice(ids)}


async def load(url: str, ids: list[str], clients: int, duration: float) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from mcp import Client

    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    errors: list[str] = []
    end_at = time.monotonic() + duration

    async def run(c: int, client: Any) -> None:
        rng = random.Random(7000 + c)
        n = 0
        while time.monotonic() < end_at:
            n += 1
            name, args = next_call(rng, ids, c, n)
            t = time.perf_counter()
            try:
                r = await client.call_tool(name, args)
                err = r.content[0].text[:160] if r.is_error else None
            except Exception as exc:  # a transport failure is an error the agent sees, too
                err = f"{type(exc).__name__}: {exc}"[:160]
            counts[name] = counts.get(name, 0) + 1
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
            if err:
                errors.append(f"{name}: {err}")

    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(Client(url)) for _ in range(clients)]
        await asyncio.gather(*(run(i, c) for i, c in enumerate(conns)))
    return {"counts": counts, "seconds": seconds, "errors": errors}


async def sandbox_ring(sb: Any, log_size: int) -> list[tuple[int, float]]:
    """Drive the sandbox directly until its log wrapped 2.5 times: (requests, RSS MB, log length) samples."""
    import aiohttp

    ids = await sb.order_ids()
    total = int(log_size * 2.5)
    step = log_size // 2
    done = 0
    samples: list[tuple[int, float]] = []
    async with aiohttp.ClientSession(headers=sb.headers()) as http:

        async def one(i: int) -> None:
            url = f"{sb.base_url}/orders/{ids[i % len(ids)]}"
            async with http.get(url) as r:
                order = (await r.json())["order"]
            if i % 5 == 0:
                order["email"] = f"soak{i}@example.com"
                async with http.put(url, json=order) as r:
                    await r.read()

        while done < total:
            await asyncio.gather(*(one(done + j) for j in range(step)))
            done += step
            samples.append((done, rss_mb(sb.pid)))
    return samples


async def main() -> None:
    args = parse_quick(
        __doc__.splitlines()[0],
        duration={"type": float, "default": None},
        clients={"type": int, "default": 16},
    )
    duration = args.duration or (20.0 if args.quick else 180.0)
    every = 5.0 if args.quick else 10.0
    print(
        f"soak benchmark ({'quick' if args.quick else 'full'}; {machine()}): {args.clients} clients, "
        f"{duration:g} s of 50% get / 30% list / 20% update over {SEED_ORDERS} orders"
    )
    samples: list[tuple[float, float, float]] = []
    log_size = 2_000 if args.quick else 10_000
    async with SandboxProcess(seed_orders=SEED_ORDERS, request_log_size=log_size) as sb:
        ids = await sb.order_ids()
        path = write_config(sb, unique_prefix("soak"))  # default cache settings (memory, 64 MB)
        try:
            async with GatewayProcess(path) as gp:
                await asyncio.sleep(1.0)
                idle_gw, idle_sb = rss_mb(gp.pid), rss_mb(sb.pid)
                header("RSS while under load (MB)")
                print(f"  {'t (s)':>6} {'gateway':>8} {'sandbox':>8}")
                print(f"  {0:6.0f} {idle_gw:8.1f} {idle_sb:8.1f}   (idle)")
                t0, cpu0 = time.monotonic(), (process_cpu(gp.pid), process_cpu(sb.pid), time.process_time())
                task = asyncio.create_task(load(gp.mcp_url, ids, args.clients, duration))
                while not task.done():
                    await asyncio.wait({task}, timeout=every)
                    t = time.monotonic() - t0
                    samples.append((t, rss_mb(gp.pid), rss_mb(sb.pid)))
                    print(f"  {t:6.0f} {samples[-1][1]:8.1f} {samples[-1][2]:8.1f}", flush=True)
                result = task.result()
                elapsed = time.monotonic() - t0
                end_gw, end_sb = rss_mb(gp.pid), rss_mb(sb.pid)
                cpu = (process_cpu(gp.pid), process_cpu(sb.pid), time.process_time())
                cpu_share = [(b - a) / elapsed * 100 for a, b in zip(cpu0, cpu, strict=True)]
                peak_gw = max(s[1] for s in samples)
                stderr = gp.stderr_text()
        finally:
            remove_file(path)
        await sb.clear_requests()
        ring = await sandbox_ring(sb, log_size)

    counts, errors = result["counts"], result["errors"]
    calls = sum(counts.values())
    grow_gw, grow_sb = end_gw - idle_gw, end_sb - idle_sb
    late = [s for s in samples if s[0] >= elapsed * 2 / 3]
    header("results")
    print(
        f"  {calls} calls in {elapsed:.0f} s ({calls / elapsed:.0f}/s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"; errors {len(errors)}"
    )
    print(
        "  mean latency: "
        + ", ".join(f"{k} {result['seconds'][k] / v * 1000:.1f} ms" for k, v in sorted(counts.items()))
    )
    for e in sorted(set(errors))[:3]:
        print(f"  error: {e}")
    print(
        "  CPU (% of one core): gateway {:.0f}%, sandbox {:.0f}%, the clients (this process) {:.0f}%".format(
            *cpu_share
        )
    )
    print(
        f"  gateway RSS idle {idle_gw:.1f} MB -> end {end_gw:.1f} MB (+{grow_gw:.1f} MB, peak {peak_gw:.1f}); "
        f"growth = {grow_gw / TARGET_GROWTH_MB:.2f}x the 100 MB allowance"
    )
    if late:
        spread = max(s[1] for s in late) - min(s[1] for s in late)
        print(f"  gateway RSS over the last third of the run varied by {spread:.1f} MB (levelled off: small)")
    print(f"  sandbox RSS idle {idle_sb:.1f} MB -> end {end_sb:.1f} MB (+{grow_sb:.1f} MB)")
    header(f"the sandbox alone, request log of {log_size} records")
    for n, mb in ring:
        print(f"  after {n:6d} upstream requests ({n / log_size:.1f}x the log): RSS {mb:.1f} MB")
    full = next(mb for n, mb in ring if n >= log_size)
    print(f"  ring full at {full:.1f} MB; at the end {ring[-1][1]:.1f} MB")
    if "Traceback" in stderr:
        print("  gateway stderr has a traceback:\n" + stderr[-1500:])
    target(
        "soak_gateway_rss",
        f"+{grow_gw:.1f} MB after {elapsed:.0f} s of mixed load with lists ({idle_gw:.1f} -> {end_gw:.1f} MB)",
        f"<= idle + {TARGET_GROWTH_MB:.0f} MB",
        grow_gw <= TARGET_GROWTH_MB,
    )
    target(
        "soak_sandbox_rss",
        f"{ring[-1][1]:.1f} MB after {ring[-1][0]} requests vs {full:.1f} MB when its {log_size}-record log "
        f"filled (idle {idle_sb:.1f} MB)",
        "levels off: within 5 MB",
        ring[-1][1] - full <= 5.0,
    )
    target("soak_errors", f"{len(errors)} errors in {calls} calls", "0 errors", not errors and calls > 0)
    summary(
        "soak",
        f"gateway {idle_gw:.1f} -> {end_gw:.1f} MB, sandbox {idle_sb:.1f} -> {end_sb:.1f} MB after "
        f"{elapsed:.0f} s, {calls} calls, {len(errors)} errors",
    )


if __name__ == "__main__":
    asyncio.run(main())
