"""The in-process lock waits at most ``mutations.lock_wait``, then fails CONFLICT with nothing written.

Before, only the cross-replica lock had a bound: a writer queued behind a stuck holder in the same
process waited forever. Holders are released by events, never by sleeps; the only time that passes is
the bound under test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from odmcp.errors import Conflict, ErrorCode
from odmcp.locks import KeyedLocks
from odmcp.middleware import error_of
from odmcp.refs import Ref
from odmcp.route import lock_key
from odmcp.testing import connect

ORDER = "200001"
WAIT = 0.2


async def test_a_waiter_past_the_bound_gets_conflict_and_the_lock_is_left_clean() -> None:
    locks = KeyedLocks(wait=WAIT)
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    async with asyncio.timeout(5):  # a lock without a bound would hang here
        with pytest.raises(Conflict) as refused:
            async with locks.hold("k"):
                pytest.fail("entered a held lock")
    assert refused.value.code is ErrorCode.CONFLICT and refused.value.retryable
    assert refused.value.message == f"another writer held this object for more than {WAIT:g} s"
    async with locks.hold("other"):  # other keys are not affected
        pass
    release.set()
    await task
    assert len(locks) == 0  # the refused waiter left no count behind
    async with locks.hold("k"):  # and the key is free again
        assert len(locks) == 1


async def test_a_waiter_within_the_bound_gets_the_lock_in_turn() -> None:
    locks = KeyedLocks(wait=5.0)
    order: list[str] = []
    held = asyncio.Event()

    async def first() -> None:
        async with locks.hold("k"):
            held.set()
            await asyncio.sleep(0)  # let the second one queue up
            order.append("first")

    task = asyncio.create_task(first())
    await held.wait()
    async with locks.hold("k"):
        order.append("second")
    await task
    assert order == ["first", "second"] and len(locks) == 0


async def test_a_write_queued_behind_a_stuck_holder_fails_conflict_and_writes_nothing(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    gw = gateway_factory(overrides={"mutations.lock_wait": WAIT})
    before = orderdesk_sandbox.order(ORDER)
    args = {"order_id": ORDER, "changes": {"email": "queued@example.com"}}
    async with connect(gw) as client:
        async with gw.locks.hold(lock_key(gw, Ref("demo", "order", ORDER))), asyncio.timeout(5):
            refused = await client.call_tool("orders_update", args)
        writes = [r for r in orderdesk_sandbox.requests() if r.method != "GET"]
        assert orderdesk_sandbox.order(ORDER) == before
        again = await client.call_tool("orders_update", args)  # the lock is free: a retry goes through
    assert refused.is_error, refused.content[0].text
    err = error_of(refused)
    assert err["code"] == "CONFLICT" and err["retryable"] is True
    assert refused.content[0].text.startswith(
        f"CONFLICT: another writer held this object for more than {WAIT:g} s — "
    )
    assert writes == []
    assert not again.is_error, again.content[0].text
    assert orderdesk_sandbox.order(ORDER)["email"] == "queued@example.com"
