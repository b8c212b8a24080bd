"""``changes_list`` over 10,000 journaled changes, filtered by order: p50 <= 5 ms, with the sqlite journal
and with the Redis journal.

    .venv/bin/python bench/bench_changes.py [--quick] [--changes N]

The journal is filled with realistic records (an order update of three fields, its witness: the order
snapshot as the write route journals it) spread over 500 orders (20 per order), then ``changes_list``
is called for random orders: the host function the tool runs (``odmcp.changes.list_changes``: the
journal query, the grants, the entries with their revertibility) and the tool itself through an
in-process MCP client. No store is contacted. Redis keys live under a fresh ``bench-...`` prefix and
are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REDIS_URL, header, ms, p50_p99, summary, target

from odmcp.app import Gateway
from odmcp.changes import ChangeFilter, list_changes
from odmcp.journal import WriteRecord
from odmcp.testing import connect, delete_redis_prefix

ORDERS = 500
GOAL_MS = 5.0


def _record(n: int, now: float) -> WriteRecord:
    oid = str(300000 + n % ORDERS)
    snapshot = {
        "id": oid,
        "email": f"c{n}@example.com",
        "shipping_method": "Ground",
        "folder_id": 1,
        "shipping": {"first_name": "Jane", "last_name": "Doe", "city": "San Jose", "postal_code": "95131"},
        "order_items": [
            {"id": str(900000 + n), "name": "Widget", "code": "W-1", "price": 12.5, "quantity": 2}
        ],
        "order_metadata": {"note": "x" * 200},
    }
    before = {"email": snapshot["email"], "shipping_method": "Ground", "shipping.city": "San Jose"}
    after = {"email": f"new{n}@example.com", "shipping_method": "Overnight", "shipping.city": "Austin"}
    intended = {**snapshot, "email": after["email"], "shipping_method": "Overnight"}
    return WriteRecord(
        id=uuid.uuid4().hex,
        call_id=uuid.uuid4().hex,
        target=oid,
        time=now - 3600 + n * 0.1,
        caller=f"agent-{n % 7}",
        tool="orders.update",
        store="demo",
        kind="order",
        object_id=oid,
        action="update",
        state="applied",
        witness={"snapshot": snapshot, "intended": intended},
        before=before,
        after=after,
        attempts=1,
    )


async def one_backend(backend: str, n_changes: int, calls: int) -> tuple[float, float, float, float]:
    tmp = tempfile.mkdtemp(prefix="bench-changes-")
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    overrides: dict[str, Any] = {
        "stores": [
            {"name": "demo", "store_id": "1001", "api_key": "k", "base_url": "http://127.0.0.1:9/api/v2"}
        ],
        "cache.backend": "memory",
        "gateway.toolsets": ["all"],  # the changes toolset is opt-in
        "journal.backend": backend,
        "journal.path": str(Path(tmp) / "journal.sqlite"),
        "journal.redis_url": REDIS_URL,
        "journal.prefix": prefix,
    }
    gw = Gateway.from_config(None, env={}, overrides=overrides)
    try:
        async with connect(gw) as client:
            journal = gw.journal
            assert journal is not None
            now = time.time()
            t0 = time.perf_counter()
            for n in range(n_changes):
                await journal.put_write(_record(n, now))
            fill = time.perf_counter() - t0
            print(f"{backend}: {n_changes} changes journaled in {fill:.1f} s", flush=True)
            rng = random.Random(7)
            direct, tool = [], []
            for _ in range(calls):
                oid = str(300000 + rng.randrange(ORDERS))
                t = time.perf_counter()
                out = await list_changes(gw, None, ChangeFilter(object_id=oid, limit=20))
                direct.append(time.perf_counter() - t)
                assert len(out["changes"]) == n_changes // ORDERS and out["changes"][0]["object"]["id"] == oid
                t = time.perf_counter()
                r = await client.call_tool("changes_list", {"order_id": oid})
                tool.append(time.perf_counter() - t)
                assert not r.is_error
        d50, d99 = p50_p99(direct)
        t50, t99 = p50_p99(tool)
        return ms(d50), ms(d99), ms(t50), ms(t99)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if backend == "redis":
            delete_redis_prefix(REDIS_URL, prefix)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--changes", type=int, default=10_000)
    args = ap.parse_args()
    calls = 100 if args.quick else 300
    header(f"changes_list filtered by order over {args.changes} journaled changes ({ORDERS} orders)")
    parts = []
    for backend in ("sqlite", "redis"):
        d50, d99, t50, t99 = await one_backend(backend, args.changes, calls)
        print(
            f"{backend}: list_changes p50 {d50:.2f} ms p99 {d99:.2f} ms; "
            f"changes_list tool (in-process MCP) p50 {t50:.2f} ms p99 {t99:.2f} ms",
            flush=True,
        )
        target(f"changes_list_{backend}_p50", f"{d50:.2f} ms", f"<= {GOAL_MS:g} ms", d50 <= GOAL_MS)
        parts.append(f"{backend} p50 {d50:.2f} ms (tool {t50:.2f} ms)")
    summary("bench_changes", "; ".join(parts))


if __name__ == "__main__":
    asyncio.run(main())
