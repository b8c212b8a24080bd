"""One contract for every journal backend: the host's write route must not care which one it was given.

The sqlite run uses a file in ``tmp_path``; the Redis run uses the shared server on 127.0.0.1:6379 with a
fresh ``test-<uuid>`` prefix per test and deletes exactly the journal's keys afterwards (never KEYS,
FLUSHDB or SCAN over other prefixes).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from odmcp.journal import ChangeQuery, JobRecord, JournalBackend, WriteRecord, encode
from odmcp_cache_redis.journal import RedisJournal, client_for
from odmcp_journal_sqlite.backend import SqliteJournal

SHARED_REDIS = "redis://127.0.0.1:6379/0"
#: records are stamped around the real time: a backend may prune by age on its own as it writes
NOW = float(int(time.time()))


@dataclass
class Harness:
    """Builds backend instances on one storage (a file, or a Redis prefix): a new instance is a restart."""

    kind: str
    make: Callable[..., JournalBackend]
    opened: list[JournalBackend] = field(default_factory=list)

    async def open(self, **bounds: Any) -> JournalBackend:
        backend = self.make(**bounds)
        await backend.open()
        self.opened.append(backend)
        return backend


@pytest.fixture(params=["sqlite", "redis"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "sqlite":
        path = tmp_path / "state" / "journal.sqlite"  # a directory that does not exist yet
        h = Harness("sqlite", lambda **kw: SqliteJournal(path, **kw))
    else:
        prefix = f"test-{uuid.uuid4().hex[:12]}"

        def make(**kw: Any) -> RedisJournal:
            return RedisJournal(client_for(SHARED_REDIS), prefix=prefix, url=SHARED_REDIS, **kw)

        h = Harness("redis", make)
    try:
        yield h
    finally:
        for backend in h.opened:
            await backend.close()
        if h.kind == "redis":
            cleaner = h.make()
            assert isinstance(cleaner, RedisJournal)
            await cleaner.client.delete(*cleaner.keys)
            await cleaner.close()


def write(n: int, **kw: Any) -> WriteRecord:
    fields: dict[str, Any] = {
        "id": f"w{n:04d}",
        "call_id": f"call-{n}",
        "time": NOW + n,
        "caller": "alice",
        "tool": "orders_update",
        "store": "main",
        "kind": "order",
        "object_id": str(1000 + n),
        "action": "update",
    }
    fields.update(kw)
    return WriteRecord(**fields)


async def all_writes(j: JournalBackend) -> list[WriteRecord]:
    return await j.query(ChangeQuery(limit=10_000))


async def test_a_job_round_trips(harness: Harness) -> None:
    j = await harness.open()
    assert await j.get_job("k1") is None
    running = JobRecord(key="k1", fingerprint="fp", created=NOW, updated=NOW)
    await j.put_job(running)
    assert await j.get_job("k1") == running
    result = {
        "ok": 3,
        "failed": [{"id": "1002", "error": {"code": "UPSTREAM", "retryable": True}}],
        "ü": "日本",
    }
    finished = JobRecord(
        key="k1", fingerprint="fp", status="finished", result=result, created=NOW, updated=NOW + 5
    )
    await j.put_job(finished)
    assert await j.get_job("k1") == finished
    assert await j.get_job("k2") is None
    assert await all_writes(j) == []  # a job is not a write record


async def test_a_write_is_upserted_by_id_intent_then_outcome(harness: Harness) -> None:
    j = await harness.open()
    intent = write(1, object_id="", action="create", witness={"items": ["a"]}, job="job-1")
    await j.put_write(intent)
    assert await j.get_write(intent.id) == intent
    assert await j.query(ChangeQuery(states=["intent"])) == [intent]
    outcome = write(
        1,
        object_id="4242",
        action="create",
        witness={"items": ["a"]},
        job="job-1",
        state="applied",
        attempts=2,
        reconciled=True,
        before={"email": None},
        after={"email": "zoë@example.com"},
        extra={"created_id": "4242"},
    )
    await j.put_write(outcome)
    assert await j.get_write(intent.id) == outcome
    assert await all_writes(j) == [outcome]
    # the indexes moved with the record: the intent's values no longer find it
    assert await j.query(ChangeQuery(object_id="4242")) == [outcome]
    assert await j.query(ChangeQuery(object_id="")) == []
    assert await j.query(ChangeQuery(states=["intent"])) == []
    assert await j.query(ChangeQuery(job="job-1", states=["applied"])) == [outcome]
    assert await j.get_write("w9999") is None


def _population() -> list[WriteRecord]:
    callers = [None, "alice", "bob"]
    tools = ["orders_update", "orders_add_note_many", "shipments_add"]
    states = ["intent", "applied", "failed", "unknown"]
    recs = []
    for n in range(36):
        recs.append(
            write(
                n,
                caller=callers[n % 3],
                tool=tools[(n // 3) % 3],
                store="main" if n % 4 else "second",
                object_id=str(1000 + n % 5),
                job=None if n % 2 else f"job-{n % 6}",
                call_id=f"call-{n // 2}",
                state=states[n % 4],
            )
        )
    # two records at the same time: ties are ordered by id, newest (greatest) first
    recs.append(write(90, time=NOW + 7, object_id="1002"))
    return recs


QUERIES = {
    "none": ChangeQuery(),
    "store": ChangeQuery(store="second"),
    "object_id": ChangeQuery(object_id="1002"),
    "caller": ChangeQuery(caller="bob"),
    "tool": ChangeQuery(tool="shipments_add"),
    "job": ChangeQuery(job="job-2"),
    "call_id": ChangeQuery(call_id="call-7"),
    "since": ChangeQuery(since=NOW + 20),
    "states": ChangeQuery(states=["failed", "unknown"]),
    "no states": ChangeQuery(states=[]),
    "unknown value": ChangeQuery(caller="nobody"),
    "object and caller": ChangeQuery(object_id="1002", caller="alice"),
    "store and caller": ChangeQuery(store="main", caller="alice"),
    "caller since": ChangeQuery(caller="alice", since=NOW + 10),
    "tool and states": ChangeQuery(tool="orders_update", states=["applied"]),
    "every filter": ChangeQuery(
        store="main", object_id="1001", caller="alice", tool="orders_update", job=None, since=NOW
    ),
}


@pytest.mark.parametrize("name", list(QUERIES))
async def test_each_filter_finds_exactly_its_records_newest_first(harness: Harness, name: str) -> None:
    j = await harness.open()
    recs = _population()
    for rec in recs:
        await j.put_write(rec)
    q = QUERIES[name]
    expected = sorted((r for r in recs if q.matches(r)), key=lambda r: (r.time, r.id), reverse=True)
    got = await j.query(q)
    assert [r.id for r in got] == [r.id for r in expected][: q.limit]
    assert got == expected[: q.limit]
    if name not in ("no states", "unknown value"):
        assert expected, "the population must give each filter something to find"


@pytest.mark.parametrize("name", ["none", "caller", "store and caller", "states"])
async def test_limit_and_offset_page_through_every_record_once(harness: Harness, name: str) -> None:
    j = await harness.open()
    recs = _population()
    for rec in recs:
        await j.put_write(rec)
    whole = await j.query(msgspec_replace(QUERIES[name], limit=1000))
    pages = []
    for offset in itertools.count(0, 4):
        page = await j.query(msgspec_replace(QUERIES[name], limit=4, offset=offset))
        pages.extend(page)
        if len(page) < 4:
            break
    assert [r.id for r in pages] == [r.id for r in whole] and len(whole) >= 5
    assert await j.query(msgspec_replace(QUERIES[name], limit=2, offset=1)) == whole[1:3]
    assert await j.query(msgspec_replace(QUERIES[name], limit=0)) == []
    assert await j.query(msgspec_replace(QUERIES[name], offset=len(whole))) == []


def msgspec_replace(q: ChangeQuery, **changes: Any) -> ChangeQuery:
    import msgspec

    return msgspec.structs.replace(q, **changes)


async def test_prune_drops_records_older_than_the_retention(harness: Harness) -> None:
    j = await harness.open(retention=100.0)
    for n in range(10):
        await j.put_write(write(n * 20))  # NOW + 0, 20, ... 180
    await j.put_job(JobRecord(key="old", fingerprint="f", created=NOW, updated=NOW + 50))
    await j.put_job(JobRecord(key="new", fingerprint="f", created=NOW, updated=NOW + 150))
    # before NOW + 100: 0..80 and the job touched at +50 (a backend may have dropped some as it wrote)
    assert await j.prune(NOW + 200) <= 5 + 1
    assert [r.time - NOW for r in await all_writes(j)] == [180, 160, 140, 120, 100]
    assert await j.get_job("old") is None and await j.get_job("new") is not None
    assert await j.prune(NOW + 200) == 0


async def test_prune_keeps_the_newest_entries_within_max_entries(harness: Harness) -> None:
    j = await harness.open(max_entries=5)
    for n in range(8):
        await j.put_write(write(n))
    before = len(await all_writes(j))
    dropped = await j.prune(NOW + 10)
    assert [r.id for r in await all_writes(j)] == ["w0007", "w0006", "w0005", "w0004", "w0003"]
    assert dropped == before - 5  # a backend may also prune on its own as it writes; never below the bound
    # jobs count as entries too, and the oldest entry goes first whichever kind it is
    await j.put_job(JobRecord(key="k", fingerprint="f", created=NOW + 8, updated=NOW + 8))
    await j.prune(NOW + 10)
    assert len(await all_writes(j)) == 4 and await j.get_job("k") is not None


async def test_prune_keeps_the_journal_within_max_bytes(harness: Harness) -> None:
    recs = [write(n, after={"note": "x" * 400}) for n in range(10)]
    size = len(encode(recs[0]))
    j = await harness.open(max_bytes=size * 4 + size // 2)
    for rec in recs:
        await j.put_write(rec)
    await j.prune(NOW + 20)
    assert [r.id for r in await all_writes(j)] == ["w0009", "w0008", "w0007", "w0006"]
    # an upsert that grows a record counts its new size, not both: 3 + 2 records' worth, one must go
    await j.put_write(write(9, after={"note": "x" * 400 + "y" * size}))
    await j.prune(NOW + 20)
    assert [r.id for r in await all_writes(j)] == ["w0009", "w0008", "w0007"]


async def test_records_survive_close_and_reopen(harness: Harness) -> None:
    j = await harness.open()
    job = JobRecord(key="k", fingerprint="fp", status="finished", result={"n": 1}, created=NOW, updated=NOW)
    await j.put_job(job)
    rec = write(1, state="intent", witness={"count": 2})
    await j.put_write(rec)
    await j.close()
    again = await harness.open()  # a new instance and a new connection: what a restarted gateway gets
    assert await again.get_job("k") == job
    assert await again.get_write(rec.id) == rec
    assert await again.query(ChangeQuery(states=["intent"])) == [rec]
    done = write(1, state="applied", attempts=1)
    await again.put_write(done)
    assert await all_writes(again) == [done]


async def test_concurrent_writes_from_tasks_all_land(harness: Harness) -> None:
    j = await harness.open()

    async def one(n: int) -> None:
        await j.put_write(write(n, state="intent", job="bulk"))
        await asyncio.sleep(0)
        await j.put_write(write(n, state="applied", attempts=1, job="bulk"))

    await asyncio.gather(*(one(n) for n in range(200)))
    got = await j.query(ChangeQuery(job="bulk", limit=1000))
    assert len(got) == 200 and {r.state for r in got} == {"applied"}
    assert [r.id for r in got] == [f"w{n:04d}" for n in reversed(range(200))]
    if isinstance(j, RedisJournal):  # the byte count the bounds rely on matches the records held
        rec_key, _ix, bytes_key = j.keys[:3]
        sizes = [len(v) for v in (await j.client.hgetall(rec_key)).values()]
        assert int(await j.client.get(bytes_key)) == sum(sizes)


async def test_a_query_for_more_records_than_one_read_returns_them_all(harness: Harness) -> None:
    j = await harness.open()
    await asyncio.gather(*(j.put_write(write(n, job="big")) for n in range(1500)))
    got = await j.query(ChangeQuery(job="big", limit=2000))
    assert [r.id for r in got] == [f"w{n:04d}" for n in reversed(range(1500))]
    assert [r.id for r in await j.query(ChangeQuery(tool="orders_update", limit=1400, offset=50))] == [
        f"w{n:04d}" for n in reversed(range(50, 1450))
    ]
