"""What only the Redis journal has: one hash slot (Redis Cluster), bounds kept by every put, and
``problems()`` naming the settings that would let Redis lose journal records.

Servers with other settings are started here on free ports (never the shared one) and stopped by PID.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from odmcp.journal import ChangeQuery, JobRecord, WriteRecord
from odmcp.testing import free_port
from odmcp_cache_redis.journal import RedisJournal, client_for

SHARED_REDIS = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def redis_server(tmp_path: Path, *args: str, port: int = 0) -> Iterator[int]:
    """A redis-server with ``args`` on a free port (or ``port`` again, with the files it left), its files
    in ``tmp_path``; killed (``SIGKILL``) by PID afterwards."""
    while not port or port > 55535:  # a cluster node also listens on port + 10000
        port = free_port()
    work = tmp_path / f"redis-{port}"
    work.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield port
    finally:
        proc.kill()
        proc.wait(5)


@contextlib.asynccontextmanager
async def journal_at(url: str, **kw: object) -> AsyncIterator[RedisJournal]:
    j = RedisJournal(client_for(url), prefix=f"test-{uuid.uuid4().hex[:12]}", url=url, **kw)  # type: ignore[arg-type]
    await j.open()
    try:
        yield j
    finally:
        await j.client.delete(*j.keys)
        await j.close()


def test_every_key_is_in_one_hash_slot_and_under_the_prefix() -> None:
    j = RedisJournal(client_for(SHARED_REDIS), prefix="mcpgw.prod-1")
    assert len(j.keys) == 9 and all(k.startswith("mcpgw.prod-1:journal:{mcpgw.prod-1}:") for k in j.keys)
    assert {key_slot(k.encode()) for k in j.keys} == {key_slot(b"mcpgw.prod-1")}


async def test_every_put_keeps_the_bounds_and_never_drops_what_it_wrote() -> None:
    now = time.time()
    async with journal_at(SHARED_REDIS, max_entries=3) as j:
        for n in range(10):
            await j.put_write(WriteRecord(id=f"w{n}", call_id="c", time=now + n))
            assert await j.get_write(f"w{n}") is not None
        assert [r.id for r in await j.query(ChangeQuery())] == ["w9", "w8", "w7"]
        assert await j.client.zcard(j.keys[3]) == 3 and await j.client.hlen(j.keys[0]) == 3
        # a record put with an old time is kept by its own put, and goes at the next prune
        await j.put_write(WriteRecord(id="late", call_id="c", time=now - 8 * 86_400))
        assert await j.get_write("late") is not None
        assert await j.prune(now) == 1 and await j.get_write("late") is None


async def test_a_put_is_one_round_trip_and_a_read_of_one_order_is_one_too() -> None:
    async with journal_at(SHARED_REDIS) as j:
        await j.put_write(WriteRecord(id="warm", call_id="c", time=time.time()))  # loads the script once
        await j.query(ChangeQuery(object_id="1"))
        sent: list[str] = []
        client: Any = j.client
        original = client.execute_command

        async def counted(*args: Any, **kw: Any) -> Any:
            sent.append(str(args[0]))
            return await original(*args, **kw)

        client.execute_command = counted
        try:
            for n in range(5):
                rec = WriteRecord(id=f"w{n}", call_id="c", object_id="1", time=time.time())
                await j.put_write(rec)
                await j.put_write(
                    WriteRecord(id=f"w{n}", call_id="c", object_id="1", time=rec.time, state="applied")
                )
            await j.put_job(JobRecord(key="k", fingerprint="f", updated=time.time()))
            assert sent == ["EVALSHA"] * 11
            sent.clear()
            assert len(await j.query(ChangeQuery(object_id="1"))) == 5 and sent == ["EVALSHA"]
        finally:
            client.execute_command = original


async def test_problems_on_the_shared_test_redis_name_the_missing_persistence() -> None:
    async with journal_at(SHARED_REDIS) as j:
        assert await j.problems() == [
            f'the journal\'s Redis at {SHARED_REDIS}: persistence is off (appendonly no, save ""): a Redis '
            "restart loses the journal; set appendonly yes (appendfsync everysec)"
        ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--appendonly", "yes", "--maxmemory-policy", "volatile-lru"], []),
        (["--appendonly", "yes", "--maxmemory-policy", "noeviction"], []),
        (["--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"], ["maxmemory-policy is allkeys-lru"]),
        (
            ["--save", "", "--appendonly", "no", "--maxmemory-policy", "allkeys-lfu"],
            ["allkeys-lfu", "persistence is off"],
        ),
        (["--save", "60 1", "--appendonly", "no"], ["only RDB snapshots are on"]),
        (["--rename-command", "CONFIG", ""], ["could not be read"]),
    ],
    ids=[
        "aof+volatile",
        "aof+noeviction",
        "allkeys-lru",
        "no persistence+allkeys-lfu",
        "rdb only",
        "no CONFIG",
    ],
)
async def test_problems_name_eviction_and_persistence_settings(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    with redis_server(tmp_path, *args) as port:
        async with journal_at(f"redis://127.0.0.1:{port}/0") as j:
            problems = await j.problems()
    assert len(problems) == len(expected), problems
    for problem, part in zip(problems, expected, strict=True):
        assert part in problem and problem.startswith(f"the journal's Redis at redis://127.0.0.1:{port}/0")
    if "allkeys" in str(expected):
        assert "set maxmemory-policy volatile-lru" in problems[0]


async def test_with_the_documented_settings_the_journal_survives_a_redis_crash(tmp_path: Path) -> None:
    persistent = ["--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "volatile-lru"]
    now = time.time()
    rec = WriteRecord(id="w1", call_id="c", object_id="42", time=now, state="intent", witness={"n": 1})
    job = JobRecord(key="k", fingerprint="f", created=now, updated=now)
    with redis_server(tmp_path, *persistent) as port:
        url = f"redis://127.0.0.1:{port}/0"
        j = RedisJournal(client_for(url), prefix="crash", url=url)
        await j.open()
        assert await j.problems() == []
        await j.put_write(rec)
        await j.put_job(job)
        await j.close()
    # the server was killed with SIGKILL; it starts again from the files it left
    with redis_server(tmp_path, *persistent, port=port):
        again = RedisJournal(client_for(url), prefix="crash", url=url)
        await again.open()
        try:
            assert await again.get_write("w1") == rec and await again.get_job("k") == job
            assert await again.query(ChangeQuery(object_id="42")) == [rec]
        finally:
            await again.close()


async def test_problems_of_a_redis_that_is_gone() -> None:
    url = f"redis://:secret-pw@127.0.0.1:{free_port()}/0"
    j = RedisJournal(client_for(url), prefix="gone", url=url, where="key journal.redis_url")
    try:
        [problem] = await j.problems()
    finally:
        await j.close()
    assert (
        problem.startswith("the journal's Redis at redis://:***@127.0.0.1:") and "does not answer" in problem
    )
    assert "secret-pw" not in problem and problem.endswith("check key journal.redis_url")


async def test_the_journal_works_on_a_redis_cluster(tmp_path: Path) -> None:
    """Three masters: every script names its keys, and all of them hash to one slot."""
    cluster = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(redis_server(tmp_path, *cluster)) for _ in range(3)]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while (
            "cluster_state:ok"
            not in subprocess.run(
                ["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.05)
        client = RedisCluster(host="127.0.0.1", port=ports[0])
        j = RedisJournal(client, prefix="fleet", max_entries=4)
        now = time.time()
        try:
            await j.open()
            for n in range(6):
                await j.put_write(WriteRecord(id=f"w{n}", call_id=f"c{n}", object_id="7", time=now + n))
            await j.put_job(JobRecord(key="k", fingerprint="f", updated=now + 10))
            assert [r.id for r in await j.query(ChangeQuery(object_id="7"))] == ["w5", "w4", "w3"]
            assert [r.id for r in await j.query(ChangeQuery(call_id="c4"))] == ["w4"]
            assert (await j.get_job("k")) == JobRecord(key="k", fingerprint="f", updated=now + 10)
            assert await j.prune(now + 8 * 86_400) == 4
            problems = await j.problems()
            assert len(problems) == 1 and "persistence is off" in problems[0]
        finally:
            await j.close()
