"""The journal's cost per write, with the embedded sqlite backend and with Redis.

    .venv/bin/python bench/bench_journal.py [--quick] [--redis-url URL]

Every write is journaled twice: its intent before the request is sent, then its outcome (an upsert of
the same record). A write's cost is the two ``put_write`` calls, measured back to back on a realistic
record (a bulk job's target: witness, before/after of three fields, about 700 B of JSON) in a journal
already holding ``FILL`` records (full: 100,000, the default ``max_entries``, so every later put runs at
the bound and the opportunistic prunes are included; quick: 10,000). Also measured: a ``changes_list``
query (newest 50 of one order, and of everything), and ``prune`` at the bound.

sqlite runs on the event loop (each put is a synchronous commit): its time per put is also how long it
blocks the loop. For Redis, every command the client sends is counted (a wrapper around
``execute_command``; a script call is one command), so "round trips per put" is exact whatever else
uses the server. Redis keys live under a fresh ``bench-...`` prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from common import header, machine, p50_p99, summary, target, unique_prefix

from odmcp.journal import ChangeQuery, JournalBackend, WriteRecord, encode
from odmcp_cache_redis.journal import RedisJournal, client_for
from odmcp_journal_sqlite.backend import SqliteJournal

ORDERS = 2_000  # objects the records spread over: a filtered query finds ~FILL/ORDERS of them


def record(n: int, now: float, state: str = "intent") -> WriteRecord:
    order = str(100_000 + n % ORDERS)
    rec = WriteRecord(
        id=f"{n:08d}-0f3c9a1e",
        call_id=f"req-{n // 10}",
        job=f"job-{n // 50:06d}",
        target=order,
        time=now + n * 1e-3,
        caller=("alice", "bob", "ops-bot")[n % 3],
        tool="orders_update_many",
        store="main",
        kind="order",
        object_id=order,
        action="update",
        state=state,  # type: ignore[arg-type]
        witness={"digest": "b3f1c2d4e5a6978812", "order_items": 3, "date_updated": "2026-12-01 10:11:12"},
        before={"shipping.city": "Zürich", "email": "old@example.com", "folder_id": 7},
        after={"shipping.city": "Bern", "email": "new@example.com", "folder_id": 9},
    )
    if state != "intent":
        rec.attempts, rec.extra = 1, {"upstream_status": 200}
    return rec


async def fill(j: JournalBackend, count: int, now: float) -> float:
    """Put ``count`` outcome records, letting the loop run between puts; return the seconds it took."""
    t0 = time.perf_counter()
    for n in range(count):
        await j.put_write(record(n, now, "applied"))
        await asyncio.sleep(0)
    return time.perf_counter() - t0


async def measure_writes(
    j: JournalBackend, start: int, count: int, now: float
) -> tuple[list[float], list[float], list[float]]:
    """(µs per write = intent + outcome, µs per put, CPU µs per write) for ``count`` new writes.

    The loop runs between two writes (as in a server), so work a backend does in the background runs
    too; the CPU time of this thread tells the backend's own cost from waiting for a core."""
    per_write: list[float] = []
    per_put: list[float] = []
    cpu: list[float] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for n in range(start, start + count):
        c0, t0 = cpu_clock(), clock()
        await j.put_write(record(n, now, "intent"))
        t1 = clock()
        await j.put_write(record(n, now, "applied"))
        t2, c2 = clock(), cpu_clock()
        per_put += [(t1 - t0) / 1000, (t2 - t1) / 1000]
        per_write.append((t2 - t0) / 1000)
        cpu.append((c2 - c0) / 1000)
        await asyncio.sleep(0)
    return per_write, per_put, cpu


async def timed(fn: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        await fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


async def queries(j: JournalBackend, rounds: int) -> tuple[float, float, int]:
    """p50 ms of the newest 50 of one order (random), and of the whole journal; records found per order."""
    rng = random.Random(7)
    found = len(await j.query(ChangeQuery(object_id="100042", limit=1000)))
    by_order = await timed(
        lambda: j.query(ChangeQuery(object_id=str(100_000 + rng.randrange(ORDERS)))), rounds
    )
    newest = await timed(lambda: j.query(ChangeQuery(limit=50)), rounds)
    return p50_p99(by_order)[0], p50_p99(newest)[0], found


def show(name: str, per_write: list[float], per_put: list[float], cpu: list[float]) -> None:
    w50, w99 = p50_p99(per_write)
    p50, p99 = p50_p99(per_put)
    c50, c99 = p50_p99(cpu)
    print(
        f"{name:8s} per write (intent + outcome): p50 {w50:7.1f} µs  p99 {w99:8.1f} µs  max {max(per_write):8.1f} µs"
    )
    print(f"{name:8s} per put:                      p50 {p50:7.1f} µs  p99 {p99:8.1f} µs")
    print(
        f"{name:8s} CPU per write (this thread):  p50 {c50:7.1f} µs  p99 {c99:8.1f} µs  max {max(cpu):8.1f} µs"
    )


async def bench_sqlite(fill_count: int, writes: int, now: float) -> dict[str, Any]:
    header(f"sqlite: {fill_count:,} records, then {writes:,} writes")
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        j = SqliteJournal(Path(tmp) / "journal.sqlite", max_entries=fill_count)
        await j.open()
        try:
            took = await fill(j, fill_count, now)
            print(f"fill: {fill_count / took:,.0f} puts/s ({took:.1f} s)")
            await j.settled()
            per_write, per_put, cpu = await measure_writes(j, fill_count, writes, now)
            show("sqlite", per_write, per_put, cpu)
            over = sum(w > 1000 for w in per_write)
            print(f"writes over 1 ms: {over} of {writes} (CPU over 1 ms: {sum(c > 1000 for c in cpu)})")
            by_order, newest, found = await queries(j, 200)
            print(
                f"query newest 50 of one order ({found} records each): p50 {by_order:.2f} ms; newest 50: {newest:.2f} ms"
            )
            await j.settled()
            t0 = time.perf_counter()
            dropped = await j.prune(time.time())
            prune_ms = (time.perf_counter() - t0) * 1000
            pages, page_size = (
                j.db.execute(f"PRAGMA {x}").fetchone()[0] for x in ("page_count", "page_size")
            )
            size = pages * page_size / 2**20
            print(
                f"prune at the bound (in a thread): {prune_ms:.1f} ms ({dropped} dropped); file {size:.1f} MiB"
            )
        finally:
            await j.close()
    return {
        "write_p50": p50_p99(per_write)[0],
        "write_p99": p50_p99(per_write)[1],
        "cpu_p99": p50_p99(cpu)[1],
        "query": by_order,
    }


async def bench_redis(url: str, fill_count: int, writes: int, now: float) -> dict[str, Any] | None:
    header(f"redis ({url}): {fill_count:,} records, then {writes:,} writes")
    j = RedisJournal(client_for(url), prefix=unique_prefix("journal"), max_entries=fill_count, url=url)
    try:
        await j.open()
    except Exception as err:
        print(f"(Redis skipped: {err})")
        await j.close()
        return None
    client: Any = j.client
    sent = 0
    original = client.execute_command

    async def counted(*args: Any, **kw: Any) -> Any:
        nonlocal sent
        sent += 1
        return await original(*args, **kw)

    client.execute_command = counted
    try:
        took = await fill(j, fill_count, now)
        print(f"fill: {fill_count / took:,.0f} puts/s ({took:.1f} s)")
        sent = 0
        per_write, per_put, cpu = await measure_writes(j, fill_count, writes, now)
        trips = sent / len(per_put)
        show("redis", per_write, per_put, cpu)
        print(f"round trips per put: {trips:.3f} ({sent} commands for {len(per_put)} puts)")
        by_order, newest, found = await queries(j, 200)
        print(
            f"query newest 50 of one order ({found} records each): p50 {by_order:.2f} ms; newest 50: {newest:.2f} ms"
        )
        t0 = time.perf_counter()
        dropped = await j.prune(time.time())
        print(f"prune at the bound: {(time.perf_counter() - t0) * 1000:.1f} ms ({dropped} dropped)")
        used = sum([await client.memory_usage(key, samples=0) or 0 for key in j.keys])
        json_bytes = int(await client.get(j.keys[2]))
        print(
            f"Redis memory of the journal: {used / 2**20:.1f} MiB for {await client.hlen(j.keys[0]):,} records"
            f" holding {json_bytes / 2**20:.1f} MiB of JSON ({used / json_bytes:.2f}x)"
        )
    finally:
        client.execute_command = original
        await client.delete(*j.keys)
        await j.close()
    return {"write_p50": p50_p99(per_write)[0], "trips": trips, "query": by_order}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 records and 1,000 writes")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    fill_count, writes = (10_000, 1_000) if args.quick else (100_000, 5_000)
    now = time.time()
    print(machine())
    print(f"record: {len(encode(record(0, now, 'applied')))} B of JSON (outcome)")
    lite = await bench_sqlite(fill_count, writes, now)
    red = await bench_redis(args.redis_url, fill_count, writes, now)

    target(
        "journal_sqlite_write",
        f"p50 {lite['write_p50']:.0f} µs, p99 {lite['write_p99']:.0f} µs (CPU p99 {lite['cpu_p99']:.0f} µs)"
        " per write (intent + outcome)",
        "<= 1 ms per write",
        lite["write_p50"] <= 1000,
    )
    target(
        "journal_sqlite_query",
        f"p50 {lite['query']:.2f} ms (newest 50 of one order, {fill_count:,} records)",
        "<= 5 ms",
        lite["query"] <= 5,
    )
    text = f"sqlite {lite['write_p50']:.0f} µs/write"
    if red is not None:
        target("journal_redis_round_trips", f"{red['trips']:.3f} per put", "1 per put", red["trips"] <= 1.0)
        target(
            "journal_redis_query",
            f"p50 {red['query']:.2f} ms (newest 50 of one order, {fill_count:,} records)",
            "<= 5 ms",
            red["query"] <= 5,
        )
        text += f", redis {red['write_p50']:.0f} µs/write at {red['trips']:.2f} round trips per put"
    summary("bench_journal", text)


if __name__ == "__main__":
    asyncio.run(main())
