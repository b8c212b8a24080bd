"""Issue 4, two processes sharing Redis: the Redis lock keeps concurrent updates from two replicas.

Each replica is ``tests/workflow/replica_worker.py`` in its own Python process, configured through a
TOML file (the API key through ``{"$env" = ...}``) and pointed at the sandbox running in this process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from odmcp.testing import delete_redis_prefix

WORKER = Path(__file__).with_name("replica_worker.py")
REDIS_URL = "redis://127.0.0.1:6379/0"


def write_config(
    path: Path, sandbox: Any, prefix: str, *, lock: bool, backend: str, lock_lease: float = 5.0
) -> Path:
    path.write_text(
        f"""
[[stores]]
name = "demo"
store_id = "{sandbox.store_id}"
api_key = {{"$env" = "REPLICA_TEST_API_KEY"}}
base_url = "{sandbox.base_url}"
default = true

[stores.rate_limit]
enabled = false

[cache]
backend = "{backend}"
redis_url = "{REDIS_URL}"
op_timeout = 2.0
prefix = "{prefix}"

[mutations]
lock = {str(lock).lower()}
backoff = [0.01, 0.02]
jitter = 0.0
lock_wait = 20.0
lock_lease = {lock_lease}

[orderdesk]
request_timeout = 5.0
""",
        encoding="utf-8",
    )
    return path


async def run_replicas(
    tmp_path: Path,
    sandbox: Any,
    order_id: str,
    *,
    lock: bool,
    backend: str = "redis",
    updates: int = 10,
    lock_lease: float = 5.0,
) -> list[dict[str, Any]]:
    """Start two replicas sharing one Redis prefix, release them together, return their reports."""
    prefix = f"test-2p-{uuid.uuid4().hex[:12]}"
    config = write_config(
        tmp_path / "gateway.toml", sandbox, prefix, lock=lock, backend=backend, lock_lease=lock_lease
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}
    env["REPLICA_TEST_API_KEY"] = sandbox.api_key
    procs: list[asyncio.subprocess.Process] = []
    try:
        for n in range(2):
            job = {"order_id": order_id, "keys": [f"p{n}k{i}" for i in range(updates)], "value": f"from-{n}"}
            with open(tmp_path / f"replica{n}.err", "wb") as err:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        str(WORKER),
                        str(config),
                        json.dumps(job),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=err,
                        env=env,
                    )
                )
        for n, p in enumerate(procs):
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 30)
            assert line, (tmp_path / f"replica{n}.err").read_text()
            ready = json.loads(line)
            assert ready == {"ready": True, "backend": backend, "lock": lock}
        for p in procs:  # release both at once
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        reports = []
        for n, p in enumerate(procs):
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 30)
            assert line, (tmp_path / f"replica{n}.err").read_text()
            reports.append(json.loads(line))
            assert await asyncio.wait_for(p.wait(), 10) == 0
        return reports
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        if backend == "redis":
            delete_redis_prefix(REDIS_URL, prefix)


@pytest.mark.sandbox(latency_ms=20)
async def test_two_replicas_sharing_redis_lose_no_update(orderdesk_sandbox: Any, tmp_path: Path) -> None:
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    orderdesk_sandbox.clear_requests()
    reports = await run_replicas(tmp_path, orderdesk_sandbox, oid, lock=True)

    for report in reports:
        assert [r["is_error"] for r in report["results"]] == [False] * 10, report
    # the replicas really ran at the same time
    assert max(r["started"] for r in reports) < min(r["ended"] for r in reports)
    meta = orderdesk_sandbox.order(oid)["order_metadata"]
    for n in range(2):
        for i in range(10):
            assert meta.get(f"p{n}k{i}") == f"from-{n}", sorted(meta)
    methods = [
        r.method
        for r in orderdesk_sandbox.requests(path_prefix=f"/orders/{oid}")
        if r.path == f"/orders/{oid}"
    ]
    assert methods == ["GET", "PUT"] * 20  # serialised across both processes


@pytest.mark.sandbox(latency_ms=400)
async def test_a_slow_holder_keeps_a_short_lease_lock(orderdesk_sandbox: Any, tmp_path: Path) -> None:
    """Each attempt (GET + PUT at 400 ms each) outlasts the 0.6 s lease: the renewal (every lease/3)
    keeps the lock with its holder, so the replicas stay serialised and lose nothing.

    On a loaded machine a renewal can come too late and the lease lapses mid-attempt (issue 19: the
    holder then wrote anyway and an update was lost while every call said success). The fence makes
    that holder send nothing: its call ends CONFLICT ("nothing was written", retryable). So: every
    update that answered success is upstream, every other one answered that error and is absent, and
    no PUT was built from a snapshot older than the PUT before it."""
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    orderdesk_sandbox.clear_requests()
    reports = await run_replicas(tmp_path, orderdesk_sandbox, oid, lock=True, updates=3, lock_lease=0.6)
    meta = orderdesk_sandbox.order(oid)["order_metadata"]
    lapsed = 0
    for n, report in enumerate(reports):
        for i, r in enumerate(report["results"]):
            if not r["is_error"]:
                assert meta.get(f"p{n}k{i}") == f"from-{n}", (n, i, sorted(meta))
                assert r["attempts"] == 1  # never two writers at once
            else:
                lapsed += 1
                assert r["error"]["code"] == "CONFLICT" and r["error"]["retryable"], r
                assert "lapsed" in r["error"]["message"] and "nothing was written" in r["error"]["message"]
                assert f"p{n}k{i}" not in meta
    puts = [
        set(r.json["order_metadata"])
        for r in orderdesk_sandbox.requests(method="PUT", path_prefix=f"/orders/{oid}")
        if r.path == f"/orders/{oid}"
    ]
    assert len(puts) == 6 - lapsed
    assert all(before <= after for before, after in itertools.pairwise(puts)), puts
    assert lapsed < 6, reports  # the renewal keeps the lease with a live holder


@pytest.mark.sandbox(latency_ms=20)
@pytest.mark.parametrize(
    ("lock", "backend"), [(False, "redis"), (True, "memory")], ids=["lock-off", "no-shared-lock"]
)
async def test_two_replicas_without_a_shared_lock_lose_updates(
    orderdesk_sandbox: Any, tmp_path: Path, lock: bool, backend: str
) -> None:
    """The controls: with ``mutations.lock = false``, or with only per-process locks (memory cache),
    the same run loses updates, so the Redis lock is what keeps them."""
    oid = str(orderdesk_sandbox.orders()[0]["id"])
    reports = await run_replicas(tmp_path, orderdesk_sandbox, oid, lock=lock, backend=backend)
    for report in reports:
        assert not any(r["is_error"] for r in report["results"]), report
    meta = orderdesk_sandbox.order(oid)["order_metadata"]
    kept = [(n, i) for n in range(2) for i in range(10) if meta.get(f"p{n}k{i}") == f"from-{n}"]
    assert len(kept) < 20
