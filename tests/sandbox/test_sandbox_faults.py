"""Fault injection: counted and probabilistic errors, delays, malformed JSON, drops, after_apply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
from sandbox_helpers import call

from odmcp_orderdesk.sandbox import Sandbox
from odmcp_orderdesk.testing import new_order


async def eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    """Poll until ``check()`` is true: the server keeps working after a client gave up."""
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_counted_status_fault_then_normal(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    rule = sbx.add_fault(method="GET", path=r"^/orders$", status=503, times=2, name="flaky")
    url = sbx.base_url + "/orders"
    statuses = [(await call(http, "GET", url))[0] for _ in range(3)]
    assert statuses == [503, 503, 200] and rule.fired == 2
    status, body, headers = await call(http, "GET", sbx.base_url + "/test")
    assert status == 200  # other paths untouched
    assert [r.fault for r in sbx.requests()] == ["flaky", "flaky", None, None]

    sbx.add_fault(path="/store", status=409, body={"status": "error", "message": "custom"}, times=1)
    status, body, _ = await call(http, "GET", sbx.base_url + "/store")
    assert status == 409 and body == {"status": "error", "message": "custom"}
    sbx.add_fault(path="/store", status=429, retry_after=7, times=1)
    status, body, headers = await call(http, "GET", sbx.base_url + "/store")
    assert status == 429 and headers["X-Retry-After"] == "7" and body["message"] == "Too Many Requests"


async def test_store_scoped_and_probabilistic_faults_are_seeded(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    sbx.add_fault(store_id="2002", status=500)
    assert (await call(http, "GET", sbx.base_url + "/test"))[0] == 200
    sbx.clear_faults()

    async def pattern() -> list[int]:
        sbx.reset()
        sbx.add_fault(path="/test", status=502, probability=0.5)
        return [(await call(http, "GET", sbx.base_url + "/test"))[0] for _ in range(30)]

    first = await pattern()
    assert 5 < first.count(502) < 25 and set(first) == {200, 502}
    assert await pattern() == first


async def test_delay_before_apply_times_out_and_is_not_applied(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    sbx.add_fault(method="POST", path="^/orders$", delay_ms=150, times=1)
    timeout = aiohttp.ClientTimeout(total=0.05)
    with pytest.raises(asyncio.TimeoutError):
        await call(
            http, "POST", sbx.base_url + "/orders", json=new_order(source_id="SLOW-1"), timeout=timeout
        )
    await eventually(lambda: len(sbx.requests(method="POST")) == 1)
    assert sbx.requests(method="POST")[0].status == 0
    assert not any(o["source_id"] == "SLOW-1" for o in sbx.orders())


async def test_after_apply_timeout_leaves_exactly_one_order(
    sbx: Sandbox, http: aiohttp.ClientSession
) -> None:
    sbx.add_fault(method="POST", path="^/orders$", delay_ms=150, after_apply=True, times=1)
    body = new_order(source_id="AMBIG-1")
    with pytest.raises(asyncio.TimeoutError):
        await call(
            http, "POST", sbx.base_url + "/orders", json=body, timeout=aiohttp.ClientTimeout(total=0.05)
        )
    created = [o for o in sbx.orders() if o["source_id"] == "AMBIG-1"]
    assert len(created) == 1  # the write landed although the client saw a timeout
    status, resp, _ = await call(http, "POST", sbx.base_url + "/orders", json=body)  # a naive retry
    assert status == 400 and created[0]["id"] in resp["message"]
    await eventually(lambda: len(sbx.requests(method="POST")) == 2)


async def test_drop_and_malformed_json(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    order = sbx.orders()[0]
    url = f"{sbx.base_url}/orders/{order['id']}"
    sbx.add_fault(method="GET", path=r"^/orders/\d+$", malformed_json=True, times=1)
    async with http.get(url) as resp:
        assert resp.status == 200
        with pytest.raises(ValueError):
            await resp.json()

    # aiohttp transparently retries an idempotent request (GET/PUT/DELETE) once after a disconnect,
    # so a drop must fire twice to reach the caller.
    sbx.add_fault(method="PUT", path=r"^/orders/\d+$", drop=True, times=2)
    changed = {**order, "email": "dropped@example.com"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "PUT", url, json=changed)
    assert sbx.order(order["id"])["email"] == order["email"]  # type: ignore[index]

    sbx.add_fault(method="PUT", path=r"^/orders/\d+$", drop=True, after_apply=True, times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "PUT", url, json=changed)
    assert sbx.order(order["id"])["email"] == "dropped@example.com"  # type: ignore[index]
    assert [r.status for r in sbx.requests(method="PUT")] == [0, 0, 0, 0]
    sbx.add_fault(method="POST", path="^/orders$", drop=True, after_apply=True, times=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):  # POST is not retried by aiohttp
        await call(http, "POST", sbx.base_url + "/orders", json=new_order(source_id="DROP-1"))
    assert [o["source_id"] for o in sbx.orders()].count("DROP-1") == 1
    status, _, _ = await call(http, "GET", url)  # the client recovers on a new connection
    assert status == 200


async def test_storm_429_expires(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    sbx.storm_429(0.3)
    status, _, headers = await call(http, "GET", sbx.base_url + "/test")
    assert status == 429 and headers["X-Retry-After"] == "1"
    await asyncio.sleep(0.35)
    assert (await call(http, "GET", sbx.base_url + "/test"))[0] == 200
    assert sbx.faults.rules == []


async def test_admin_fault_endpoints(sbx: Sandbox, http: aiohttp.ClientSession) -> None:
    async with aiohttp.ClientSession() as admin:
        rule = {"method": "GET", "path": "/store", "status": 502, "times": 1}
        status, body, _ = await call(admin, "POST", sbx.admin_url + "/faults", json=rule)
        assert status == 200 and body["fault"]["status"] == 502
        assert (await call(http, "GET", sbx.base_url + "/store"))[0] == 502
        _, body, _ = await call(admin, "GET", sbx.admin_url + "/faults")
        assert body["faults"][0]["fired"] == 1
        status, _, _ = await call(admin, "POST", sbx.admin_url + "/faults", json={"bogus": 1})
        assert status == 400
        status, _, _ = await call(admin, "POST", sbx.admin_url + "/faults", json={"path": "(["})
        assert status == 400
        await call(admin, "POST", sbx.admin_url + "/faults", json={"status": 500})
        await call(admin, "DELETE", sbx.admin_url + "/faults")
        assert (await call(http, "GET", sbx.base_url + "/store"))[0] == 200
        status, body, _ = await call(admin, "POST", sbx.admin_url + "/storm-429", json={"duration_s": 5})
        assert (await call(http, "GET", sbx.base_url + "/store"))[0] == 429
        await call(admin, "DELETE", f"{sbx.admin_url}/faults/{body['fault']['id']}")
        assert (await call(http, "GET", sbx.base_url + "/store"))[0] == 200
