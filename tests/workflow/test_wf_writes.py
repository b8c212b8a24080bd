"""Issue 4: read your writes, idempotent create, confirmed delete and dry run, against the sandbox."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from mcp.types import ElicitResult

from odmcp.middleware import error_of
from odmcp.testing import connect

#: the shared Redis; a generous op timeout, so a busy machine does not turn these tests into fail-open ones
REDIS = {"cache.backend": "redis", "cache.redis_url": "redis://127.0.0.1:6379/0", "cache.op_timeout": 2.0}
BACKENDS = pytest.mark.parametrize("cache_overrides", [{}, REDIS], ids=["memory", "redis"])


def new_order(**extra: Any) -> dict[str, Any]:
    return {
        "order_items": [{"name": "Widget", "code": "W-1", "price": 9.5, "quantity": 2}],
        "shipping": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "address1": "1 Main St",
            "city": "Knoxville",
            "state": "TN",
            "postal_code": "37902",
            "country": "US",
        },
        "email": "ada@example.com",
        **extra,
    }


@pytest.fixture
def oid(orderdesk_sandbox: Any) -> str:
    return str(orderdesk_sandbox.orders()[0]["id"])


def gets_of(sandbox: Any, oid: str) -> int:
    return len(sandbox.requests(method="GET", path_regex=rf"^/orders/{oid}$"))


# --- read your writes ---------------------------------------------------------------------------


@BACKENDS
async def test_get_after_update_returns_the_new_state(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str, cache_overrides: dict[str, Any]
) -> None:
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        first = await client.call_tool("orders_get", {"order_id": oid})  # now cached
        assert "ryw" not in (first.structured_content["order"]["order_metadata"] or {})
        r = await client.call_tool(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"ryw": "1"}}}
        )
        assert not r.is_error
        again = await client.call_tool("orders_get", {"order_id": oid})
    assert again.structured_content["order"]["order_metadata"]["ryw"] == "1"
    assert again.structured_content["order"]["date_updated"] == orderdesk_sandbox.order(oid)["date_updated"]


async def test_read_your_writes_across_two_gateways_sharing_redis(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    shared = {**REDIS, "cache.prefix": f"test-ryw-{uuid.uuid4().hex[:12]}"}
    gw1, gw2 = gateway_factory(overrides=shared), gateway_factory(overrides=shared)
    async with connect(gw1) as c1, connect(gw2) as c2:
        await c1.call_tool("orders_get", {"order_id": oid})
        await c2.call_tool("orders_get", {"order_id": oid})  # served from the shared cache
        assert gets_of(orderdesk_sandbox, oid) == 1
        r = await c1.call_tool(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"replica": "one"}}}
        )
        assert not r.is_error
        seen = await c2.call_tool("orders_get", {"order_id": oid})
        # and the other way round
        r = await c2.call_tool(
            "orders_update", {"order_id": oid, "changes": {"order_metadata": {"replica": "two"}}}
        )
        assert not r.is_error
        seen_back = await c1.call_tool("orders_get", {"order_id": oid})
    assert seen.structured_content["order"]["order_metadata"]["replica"] == "one"
    assert seen_back.structured_content["order"]["order_metadata"]["replica"] == "two"


# --- idempotent create --------------------------------------------------------------------------


@BACKENDS
async def test_same_idempotency_key_and_body_create_one_order(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    count = len(orderdesk_sandbox.orders())
    key = f"idem-{uuid.uuid4().hex}"
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        a = await client.call_tool("orders_create", {"order": new_order(), "idempotency_key": key})
        b = await client.call_tool("orders_create", {"order": new_order(), "idempotency_key": key})
        other = await client.call_tool("orders_create", {"order": new_order(), "idempotency_key": key + "-x"})
    assert not a.is_error and not b.is_error and not other.is_error, (a, b, other)
    assert a.structured_content["order"]["id"] == b.structured_content["order"]["id"]
    assert other.structured_content["order"]["id"] != a.structured_content["order"]["id"]
    assert len(orderdesk_sandbox.orders()) == count + 2
    # the repeat never reached OrderDesk
    assert len(orderdesk_sandbox.requests(method="POST", path_prefix="/orders")) == 2


@BACKENDS
async def test_same_idempotency_key_with_another_body_is_a_validation_error(
    orderdesk_sandbox: Any, gateway_factory: Any, cache_overrides: dict[str, Any]
) -> None:
    count = len(orderdesk_sandbox.orders())
    key = f"idem-{uuid.uuid4().hex}"
    async with connect(gateway_factory(overrides=cache_overrides)) as client:
        a = await client.call_tool("orders_create", {"order": new_order(), "idempotency_key": key})
        b = await client.call_tool(
            "orders_create", {"order": new_order(email="other@example.com"), "idempotency_key": key}
        )
    assert not a.is_error
    assert error_of(b)["code"] == "VALIDATION"
    assert "idempotency_key" in error_of(b)["message"]
    assert len(orderdesk_sandbox.orders()) == count + 1
    assert len(orderdesk_sandbox.requests(method="POST", path_prefix="/orders")) == 1


async def test_idempotency_across_two_gateways_sharing_redis(
    orderdesk_sandbox: Any, gateway_factory: Any
) -> None:
    shared = {**REDIS, "cache.prefix": f"test-idem-{uuid.uuid4().hex[:12]}"}
    count = len(orderdesk_sandbox.orders())
    key = f"idem-{uuid.uuid4().hex}"
    async with (
        connect(gateway_factory(overrides=shared)) as c1,
        connect(gateway_factory(overrides=shared)) as c2,
    ):
        a, b = await asyncio.gather(
            c1.call_tool("orders_create", {"order": new_order(), "idempotency_key": key}),
            c2.call_tool("orders_create", {"order": new_order(), "idempotency_key": key}),
        )
        c = await c2.call_tool("orders_create", {"order": new_order(), "idempotency_key": key})
    assert not a.is_error and not b.is_error and not c.is_error, (a, b, c)
    ids = {r.structured_content["order"]["id"] for r in (a, b, c)}
    assert len(ids) == 1
    assert len(orderdesk_sandbox.orders()) == count + 1


# --- delete -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_delete_without_confirmation_deletes_nothing(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str, mode: str
) -> None:
    async with connect(gateway_factory(), mode=mode) as client:
        r = await client.call_tool("orders_delete", {"order_id": oid})
    assert error_of(r)["code"] == "CONFIRMATION_REQUIRED"
    assert orderdesk_sandbox.requests(method="DELETE") == []
    assert orderdesk_sandbox.order(oid) is not None


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_delete_with_confirm_true(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str, mode: str
) -> None:
    async with connect(gateway_factory(), mode=mode) as client:
        await client.call_tool("orders_get", {"order_id": oid})  # cached before the delete
        listed = await client.call_tool("orders_list", {"limit": 500})
        assert oid in {o["id"] for o in listed.structured_content["orders"]}
        r = await client.call_tool("orders_delete", {"order_id": oid, "confirm": True})
        assert not r.is_error, r.structured_content
        assert r.structured_content["deleted"] is True
        gone = await client.call_tool("orders_get", {"order_id": oid})
        listed = await client.call_tool("orders_list", {"limit": 500})
    assert error_of(gone)["code"] == "NOT_FOUND"
    assert oid not in {o["id"] for o in listed.structured_content["orders"]}
    assert orderdesk_sandbox.order(oid) is None
    assert len(orderdesk_sandbox.requests(method="DELETE")) == 1


def elicitation(answer: ElicitResult, asked: list[str]) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return answer

    return callback


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize(
    ("answer", "deleted", "why"),
    [
        (ElicitResult(action="accept", content={"confirm": True}), True, None),
        (ElicitResult(action="accept", content={"confirm": False}), False, "confirmation missing"),
        (ElicitResult(action="decline"), False, "declined"),
        (ElicitResult(action="cancel"), False, "declined"),
    ],
    ids=["accept", "accept-but-no", "decline", "cancel"],
)
async def test_delete_asks_through_elicitation(
    orderdesk_sandbox: Any,
    gateway_factory: Any,
    oid: str,
    mode: str,
    answer: ElicitResult,
    deleted: bool,
    why: str | None,
) -> None:
    asked: list[str] = []
    async with connect(
        gateway_factory(), mode=mode, elicitation_callback=elicitation(answer, asked)
    ) as client:
        # confirm=true is ignored when the client can ask the human
        r = await client.call_tool("orders_delete", {"order_id": oid, "confirm": not deleted})
    assert len(asked) == 1 and oid in asked[0]
    if deleted:
        assert not r.is_error, r.structured_content
        assert orderdesk_sandbox.order(oid) is None
        assert len(orderdesk_sandbox.requests(method="DELETE")) == 1
    else:
        err = error_of(r)
        assert err["code"] == "CONFIRMATION_REQUIRED"
        assert why in err["message"]
        assert orderdesk_sandbox.order(oid) is not None
        assert orderdesk_sandbox.requests(method="DELETE") == []


# --- dry run ------------------------------------------------------------------------------------


async def test_dry_run_returns_the_diff_and_writes_nothing(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    before = orderdesk_sandbox.order(oid)
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        r = await client.call_tool(
            "orders_update",
            {
                "order_id": oid,
                "dry_run": True,
                "changes": {"order_metadata": {"dry": "run"}, "shipping": {"company": "Dry Run Inc"}},
            },
        )
    assert not r.is_error, r.structured_content
    out = r.structured_content
    assert out["dry_run"] is True
    assert sorted(out["changed_fields"]) == ["order_metadata.dry", "shipping.company"]
    by_path = {c["path"]: c for c in out["changes"]}
    assert set(by_path) == {"order_metadata.dry", "shipping.company"}
    assert by_path["shipping.company"] == {
        "path": "shipping.company",
        "before": before["shipping"].get("company"),
        "after": "Dry Run Inc",
    }
    assert by_path["order_metadata.dry"]["after"] == "run"
    assert out["order"]["shipping"]["company"] == "Dry Run Inc"
    assert [(x.method, x.path) for x in orderdesk_sandbox.requests()] == [("GET", f"/orders/{oid}")]
    assert orderdesk_sandbox.order(oid) == before
