"""Bulk: hundreds of orders in one tool call against OrderDesk's real leaky bucket (20 + 3/s).

    .venv/bin/python bench/bench_bulk.py [--quick]

The sandbox runs in its own process with its rate limit on; the gateway is in-process (memory cache).
Measured in one run:

* ``orders_update_many`` of N orders (one GET + one PUT each = 2N requests): elapsed vs the physical
  limit (2N - 20) / 3 s (target <= 1.1x), the longest gap between progress notifications (target
  <= 2 s), and the latency of one ``orders_get`` issued while the job runs (target <= 2 s);
* ``shipments_add_many`` of N shipments vs N single ``shipments_add`` calls: upstream requests
  (target <= 1/10);
* ``orders_update_many`` of N orders that each gain an item, with 5% of the PUTs answered 500 after
  they were applied and 5% timing out after they were applied: every order reported with its true
  outcome, 0 lost, 0 applied twice;
* model round trips: 1 bulk call vs N single calls.

N = 100 (--quick: 30).
"""

from __future__ import annotations

import asyncio
import time

from common import SandboxProcess, build_gateway, header, machine, parse_quick, summary, target, unique_prefix

CAPACITY = 20
REFILL = 3.0


async def main() -> None:
    from odmcp.testing import connect

    args = parse_quick(__doc__.splitlines()[0])
    n = 30 if args.quick else 100
    print(f"bulk benchmark ({'quick' if args.quick else 'full'}; {machine()}): N = {n}")
    async with SandboxProcess(rate_limit_enabled=True, seed_orders=max(2 * n + 5, 36)) as sb:
        ids = await sb.order_ids()
        gw = build_gateway(sb, unique_prefix("bulk"), {"orderdesk": {"request_timeout": 2.0}})
        async with connect(gw) as c:
            # --- 1. a paced job, its progress, and a single get meanwhile --------------------------
            beats: list[float] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                beats.append(time.perf_counter())

            await sb.clear_requests()
            t0 = time.perf_counter()
            job = asyncio.create_task(
                c.call_tool(
                    "orders_update_many",
                    {"order_ids": ids[:n], "changes": {"order_metadata": {"bulk_bench": "1"}}},
                    progress_callback=on_progress,
                )
            )
            await asyncio.sleep(min(10.0, n / 6))  # the burst is gone; the job runs at the refill rate
            g0 = time.perf_counter()
            single = await c.call_tool("orders_get", {"order_id": ids[-1]})
            get_latency = time.perf_counter() - g0
            report = (await job).structured_content
            elapsed = time.perf_counter() - t0
            log = await sb.requests()
            accepted = [r for r in log if r["status"] != 429]
            throttled = len(log) - len(accepted)
            limit = max(0.0, (len(accepted) - CAPACITY) / REFILL)
            gaps = [b - a for a, b in zip([t0, *beats], beats, strict=False)]
            max_gap = max(gaps) if gaps else float("inf")

            # --- 2. batched shipments vs single calls ----------------------------------------------
            await sb.set_config(rate_limit_enabled=False)
            await sb.clear_requests()
            ships = [
                {"order_id": oid, "tracking_number": f"BB-{oid}", "carrier_code": "UPS"} for oid in ids[:n]
            ]
            batched = await c.call_tool("shipments_add_many", {"shipments": ships})
            batch_requests = len(await sb.requests())
            await sb.clear_requests()
            for oid in ids[n : 2 * n]:
                await c.call_tool(
                    "shipments_add", {"order_id": oid, "shipment": {"tracking_number": f"BS-{oid}"}}
                )
            single_requests = len(await sb.requests())

            # --- 3. unclear answers in the middle of a job -----------------------------------------
            await sb._admin(
                "POST", "/faults", json={"method": "PUT", "path": r"^/orders/\d+$", "after_apply": True,
                                         "status": 500, "probability": 0.05, "name": "5xx-after"},
            )  # fmt: skip
            await sb._admin(
                "POST", "/faults", json={"method": "PUT", "path": r"^/orders/\d+$", "after_apply": True,
                                         "delay_ms": 3000, "probability": 0.05 / 0.95, "name": "timeout-after"},
            )  # fmt: skip
            chaos = await c.call_tool(
                "orders_update_many",
                {"order_ids": ids[:n], "changes": {"order_items": [{"name": "BULK-BENCH", "quantity": 1}]}},
            )
            await sb._admin("DELETE", "/faults")
            fired = [r for r in await sb.requests() if r.get("fault")]
            counts = []
            for oid in ids[:n]:
                order = await sb.order(oid)
                counts.append(sum(1 for i in order["order_items"] if i.get("name") == "BULK-BENCH"))
            chaos_report = chaos.structured_content or {}
            told_ok = {e["target"] for e in chaos_report.get("results", []) if e["outcome"] == "ok"}

    header("results")
    print(f"  update job: {report['totals']}; {len(accepted)} upstream requests, {throttled} answered 429")
    print(
        f"  elapsed {elapsed:.2f} s; physical limit ({len(accepted)} - {CAPACITY}) / {REFILL:g} = {limit:.2f} s"
    )
    print(f"  progress notifications: {len(beats)}, longest gap {max_gap:.2f} s")
    print(
        f"  orders_get during the job: {get_latency * 1000:.0f} ms ({'ok' if not single.is_error else 'error'})"
    )
    print(f"  shipments: batch {batched.structured_content['totals']} in {batch_requests} requests; "
          f"{n} single calls took {single_requests} requests")  # fmt: skip
    print(f"  faults fired: {len(fired)}; outcomes {chaos_report.get('totals')}; "
          f"orders with the item once: {counts.count(1)}, twice: {sum(c > 1 for c in counts)}, "
          f"missing: {counts.count(0)}")  # fmt: skip
    ratio = elapsed / limit if limit else float("nan")
    target("bulk_elapsed", f"{elapsed:.1f} s vs limit {limit:.1f} s ({ratio:.2f}x)", "<= 1.1x", ratio <= 1.1)
    target("bulk_429s", f"{throttled} upstream 429s", "0", throttled == 0)
    target("bulk_progress_gap", f"longest gap {max_gap:.2f} s", "<= 2 s", max_gap <= 2.0)
    target(
        "bulk_single_get",
        f"{get_latency * 1000:.0f} ms",
        "<= 2000 ms",
        get_latency <= 2.0 and not single.is_error,
    )
    share = batch_requests / single_requests if single_requests else float("nan")
    target(
        "bulk_shipments_requests",
        f"{batch_requests} vs {single_requests} ({share:.3f})",
        "<= 1/10",
        share <= 0.1,
    )
    truthful = all((counts[i] == 1) == (oid in told_ok) for i, oid in enumerate(ids[:n])) and all(
        c <= 1 for c in counts
    )
    target(
        "bulk_unclear_outcomes",
        f"{len(fired)} faults; lost {counts.count(0) - (n - len(told_ok))}, doubled {sum(c > 1 for c in counts)}",
        "every outcome true, 0 lost, 0 twice",
        truthful and len(told_ok) == n,
    )
    target("bulk_round_trips", f"1 call vs {n} calls", "1 vs N", True)
    summary(
        "bulk",
        f"N={n}: {elapsed:.1f} s vs {limit:.1f} s ({ratio:.2f}x), gap {max_gap:.2f} s, get {get_latency * 1000:.0f} ms, "
        f"shipments {batch_requests}/{single_requests} requests, unclear: {chaos_report.get('totals')}",
    )


if __name__ == "__main__":
    asyncio.run(main())
