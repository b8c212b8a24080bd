"""Edges of the write path: audit failures after a write, lock behaviour on a flaky Redis,
multi-round calls in the audit log, and a start-up that fails half-way."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from mcp import types

from odmcp import hookimpl
from odmcp.audit import AuditError
from odmcp.middleware import error_of
from odmcp.testing import connect


async def test_an_audit_line_lost_after_the_write_keeps_the_real_result(
    gateway_factory: Any,
    orderdesk_sandbox: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw = gateway_factory()

    def broken(record: dict[str, Any]) -> None:
        raise AuditError("audit log write failed: disk full")

    async with connect(gw) as client:
        monkeypatch.setattr(gw.audit, "write", broken)
        with caplog.at_level(logging.ERROR, logger="odmcp.calls"):
            result = await client.call_tool(
                "orders_update", {"order_id": "200001", "changes": {"email": "a@b.co"}}
            )
    assert not result.is_error  # the PUT happened: saying "refused" would invite a duplicate retry
    assert len(orderdesk_sandbox.requests(method="PUT")) == 1
    assert "audit line lost for orders.update" in caplog.text


async def test_the_shared_lock_is_tried_even_after_a_slow_read(gateway_factory: Any, redis_url: str) -> None:
    gw = gateway_factory(
        overrides={"cache.backend": "redis", "cache.redis_url": redis_url, "cache.op_timeout": 2.0}
    )
    async with connect(gw) as client:
        taken: list[str] = []
        real_lock = gw.cache.backend.lock

        def spy(key: str, lease: float, wait: float) -> Any:
            taken.append(key)
            return real_lock(key, lease, wait)

        gw.cache.backend.lock = spy
        gw.cache._mark_down("get", TimeoutError())  # one slow read marks the cache down for reads
        result = await client.call_tool(
            "orders_update", {"order_id": "200002", "changes": {"email": "x@y.co"}}
        )
    assert not result.is_error and len(taken) == 1 and taken[0].endswith(":order:200002")


@pytest.mark.parametrize("old_key", [None, False], ids=["default", "deprecated-require_shared_lock-false"])
async def test_writes_refuse_while_the_shared_lock_is_unavailable(
    gateway_factory: Any, orderdesk_sandbox: Any, own_redis: Any, old_key: bool | None
) -> None:
    overrides: dict[str, Any] = {"cache.backend": "redis", "cache.redis_url": own_redis.url}
    if old_key is not None:  # an older file still loads; the key no longer turns the refusal off
        overrides["mutations.require_shared_lock"] = old_key
    gw = gateway_factory(overrides=overrides)
    async with connect(gw) as client:
        own_redis.stop()
        refused = await client.call_tool(
            "orders_update", {"order_id": "200003", "changes": {"email": "x@y.co"}}
        )
        read = await client.call_tool("orders_get", {"order_id": "200003"})
    err = error_of(refused)
    assert err["code"] == "UNAVAILABLE" and err["retryable"] is True
    assert "shared lock is unavailable" in err["message"] and "nothing was written" in err["message"]
    assert not read.is_error and orderdesk_sandbox.requests(method="PUT") == []


async def test_writes_can_opt_out_to_local_locks_while_the_shared_lock_is_unavailable(
    gateway_factory: Any, orderdesk_sandbox: Any, own_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_factory(
        overrides={
            "cache.backend": "redis",
            "cache.redis_url": own_redis.url,
            "mutations.local_locks_when_shared_unavailable": True,
        }
    )
    async with connect(gw) as client:
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="odmcp.locks"):
            result = await client.call_tool(
                "orders_update", {"order_id": "200003", "changes": {"email": "x@y.co"}}
            )
    assert not result.is_error
    assert orderdesk_sandbox.order("200003")["email"] == "x@y.co"
    assert "taken in this process only" in caplog.text


async def test_an_elicitation_round_is_not_audited_as_a_delete(gateway_factory: Any, tmp_path: Any) -> None:
    async def accept(ctx: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"confirm": True})

    gw = gateway_factory()
    async with connect(gw, mode="auto", elicitation_callback=accept) as client:
        result = await client.call_tool("orders_delete", {"order_id": "200004"})
    assert not result.is_error and result.structured_content["deleted"] is True
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(x["tool"], x["outcome"]) for x in lines] == [("orders.delete", "ok")]


class FailingStartup:
    def __init__(self) -> None:
        self.fail = True

    @hookimpl
    def gateway_startup(self) -> None:
        if self.fail:
            raise RuntimeError("cannot reach the licence server")


async def test_a_failed_start_up_releases_what_it_opened_and_can_be_retried(gateway_factory: Any) -> None:
    plugin = FailingStartup()
    gw = gateway_factory(plugins=[plugin])
    with pytest.raises(Exception, match="FailingStartup"):
        await gw.startup()
    assert gw.cache is None and "orderdesk" not in gw.state  # nothing left open
    plugin.fail = False
    async with connect(gw) as client:
        assert not (await client.call_tool("orders_get", {"order_id": "200001"})).is_error
