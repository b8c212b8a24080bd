"""What a write tool says is what happened: no needless writes, no "nothing was written" after a write,
OUTCOME_UNKNOWN (never "retry") when even a re-read can't tell, idempotent creates after an unclear
answer, and a content precondition that catches an edit made in the same second."""

from __future__ import annotations

import asyncio
from typing import Any

from odmcp import hookimpl
from odmcp.middleware import error_of
from odmcp.testing import connect

TUNING = {
    "orderdesk": {"request_timeout": 0.5, "create_settle": 0.05, "max_retries": 2},
    "mutations.reconcile_settle": 0.1,
}


def _writes(sandbox: Any) -> list[Any]:
    return [r for r in sandbox.requests() if r.method != "GET"]


async def test_a_folder_only_change_sends_only_the_move(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_update", {"order_id": "200001", "changes": {"folder_id": 2}})
    assert not result.is_error, result.content[0].text
    assert [(r.method, r.path) for r in _writes(orderdesk_sandbox)] == [("POST", "/move-orders")]
    assert str(orderdesk_sandbox.order("200001")["folder_id"]) == "2"
    assert result.structured_content["changed_fields"] == ["folder_id"]


async def test_a_change_to_the_current_values_sends_nothing_and_says_so(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    email = orderdesk_sandbox.order("200002")["email"]
    async with connect(gateway_factory()) as c:
        result = await c.call_tool("orders_update", {"order_id": "200002", "changes": {"email": email}})
    assert not result.is_error
    assert result.structured_content["changed_fields"] == []
    assert "nothing was sent" in result.structured_content["message"]
    assert _writes(orderdesk_sandbox) == []


async def test_a_missing_destination_folder_is_refused_before_any_write(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    before = orderdesk_sandbox.order("200003")["email"]
    async with connect(gateway_factory()) as c:
        result = await c.call_tool(
            "orders_update", {"order_id": "200003", "changes": {"email": "x@example.com", "folder_id": 999}}
        )
        moved = await c.call_tool("orders_move", {"order_ids": ["200003"], "folder_name": "Nope"})
    err = error_of(result)
    assert err["code"] == "VALIDATION" and "folder_id 999" in err["message"] and "New" in err["message"]
    assert error_of(moved)["code"] == "VALIDATION"
    assert _writes(orderdesk_sandbox) == []
    assert orderdesk_sandbox.order("200003")["email"] == before


async def test_a_failed_move_after_an_applied_put_says_exactly_what_was_written(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(
        method="POST",
        path=r"^/move-orders$",
        status=400,
        body={"status": "error", "message": "Folder locked"},
    )
    async with connect(gateway_factory()) as c:
        await c.call_tool("orders_get", {"order_id": "200004"})  # cached: the next read must not use it
        result = await c.call_tool(
            "orders_update", {"order_id": "200004", "changes": {"email": "moved@example.com", "folder_id": 3}}
        )
        again = await c.call_tool("orders_get", {"order_id": "200004"})
    err = error_of(result)
    assert err["code"] == "VALIDATION"
    assert "applied: the field changes (email)" in err["message"]
    assert "NOT applied: the move to folder 3" in err["message"]
    assert "nothing was written" not in result.content[0].text
    assert err["retryable"] is False  # the same call again would apply the written part twice
    assert orderdesk_sandbox.order("200004")["email"] == "moved@example.com"
    assert again.structured_content["order"]["email"] == "moved@example.com"


async def test_an_update_still_in_flight_is_outcome_unknown_never_retryable(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    # the PUT is held before OrderDesk works on it, past the client's timeout and the re-read: from the
    # gateway's side nobody can know whether it will land (the sandbox drops it once the client is gone)
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/200005$", delay_ms=1500, times=1)
    async with connect(gateway_factory(overrides=TUNING)) as c:
        await c.call_tool("orders_get", {"order_id": "200005"})
        result = await c.call_tool(
            "orders_update",
            {"order_id": "200005", "changes": {"order_items": [{"name": "LATE", "quantity": 1}]}},
        )
        err = error_of(result)
        assert err["code"] == "OUTCOME_UNKNOWN" and err["retryable"] is False
        assert "orders_get" in err["hint"] and "order_items" in err["message"]
        assert result.content[0].text.startswith("OUTCOME_UNKNOWN: ")
        await asyncio.sleep(1.5)  # the held PUT is settled upstream
        again = await c.call_tool("orders_get", {"order_id": "200005"})
    names = [i["name"] for i in orderdesk_sandbox.order("200005")["order_items"]]
    # the next read shows upstream truth, whatever it turned out to be
    assert [i["name"] for i in again.structured_content["order"]["order_items"]] == names


async def test_a_note_still_in_flight_tells_how_to_check(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    orderdesk_sandbox.add_fault(method="POST", path=r"^/orders/200006/order-history$", delay_ms=1500, times=1)
    async with connect(gateway_factory(overrides=TUNING)) as c:
        result = await c.call_tool("orders_add_note", {"order_id": "200006", "note": "slow note"})
        await asyncio.sleep(1.5)
        again = await c.call_tool("orders_get", {"order_id": "200006", "include_history": True})
    err = error_of(result)
    assert err["code"] == "OUTCOME_UNKNOWN" and err["retryable"] is False
    assert "include_history" in err["hint"]
    notes = [h["note"] for h in again.structured_content["order"]["order_history"]]
    upstream = [h["note"] for h in orderdesk_sandbox.order("200006", with_history=True)["order_history"]]
    assert notes == upstream


async def test_orders_list_returns_history_when_asked(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    async with connect(gateway_factory()) as c:
        await c.call_tool("orders_add_note", {"order_id": "200007", "note": "listed note"})
        plain = await c.call_tool("orders_list", {"limit": 50})
        full = await c.call_tool("orders_list", {"limit": 50, "include_history": True})
    assert all("order_history" not in o for o in plain.structured_content["orders"])
    mine = next(o for o in full.structured_content["orders"] if o["id"] == "200007")
    assert "listed note" in [h["note"] for h in mine["order_history"]]


async def test_a_create_retried_with_its_key_after_an_unclear_first_attempt_returns_the_order(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    # the POST is applied but answered 500, and the re-read that would settle it fails too (the
    # snapshot read, a search by the key's source_id inside the lock, goes through)
    orderdesk_sandbox.add_fault(method="POST", path=r"^/orders$", after_apply=True, status=500, times=1)
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders$", status=500, times=3, skip=1)
    order = {
        "shipping": {"first_name": "Ada", "last_name": "L", "address1": "1 Main", "city": "London"},
        "order_items": [{"name": "Engine", "price": 100, "quantity": 1}],
    }
    args = {"order": order, "idempotency_key": "retry-after-unclear-1"}
    async with connect(gateway_factory(overrides=TUNING)) as c:
        first = await c.call_tool("orders_create", args)
        assert error_of(first)["code"] == "OUTCOME_UNKNOWN" and error_of(first)["retryable"] is False
        second = await c.call_tool("orders_create", args)
    assert not second.is_error, second.content[0].text
    created = [o for o in orderdesk_sandbox.orders() if o["source_id"].startswith("mcpgw-")]
    assert len(created) == 1 and second.structured_content["order"]["id"] == created[0]["id"]


class SameSecondEditor:
    """Edits the order in "the OrderDesk UI" right after the gateway's first fetch, keeping the same
    ``date_updated`` (two edits within one second)."""

    def __init__(self, sandbox: Any, order_id: str) -> None:
        self.sandbox, self.order_id, self.done = sandbox, order_id, False

    @hookimpl(tryfirst=True)
    def gateway_merge(self, ref: Any, current: dict[str, Any]) -> None:
        if self.done or ref.id != self.order_id:
            return None
        self.done = True
        store = self.sandbox.state.store(self.sandbox.store_id)
        self.sandbox.edit_order(self.sandbox.store_id, self.order_id, {"shipping_method": "UI edit"})
        store.orders[self.order_id]["date_updated"] = current["date_updated"]
        return None


async def test_the_precondition_catches_an_edit_made_in_the_same_second(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    editor = SameSecondEditor(orderdesk_sandbox, "200008")
    gw = gateway_factory(plugins=[editor], overrides={"mutations.precondition": True})
    async with connect(gw) as c:
        result = await c.call_tool(
            "orders_update", {"order_id": "200008", "changes": {"email": "p@example.com"}}
        )
    assert not result.is_error, result.content[0].text
    assert editor.done and result.structured_content["attempts"] == 2
    stored = orderdesk_sandbox.order("200008")
    assert stored["shipping_method"] == "UI edit" and stored["email"] == "p@example.com"  # both kept
