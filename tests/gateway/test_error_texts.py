"""Issue 14: errors a model can act on. Each code's text, as a client receives it: one line,
``CODE: what was wrong — what to do``, message and hint always separated, argument names as sent,
expected type and received value (cut short), no pydantic class names, no documentation URLs."""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, Field

from odmcp import hookimpl
from odmcp.errors import ErrorCode
from odmcp.middleware import error_of
from odmcp.testing import connect, free_port
from odmcp.tools import ToolTable

pytestmark = pytest.mark.sandbox(rate_limit_enabled=False)
LINE = re.compile(r"^(?P<code>[A-Z_]+): (?P<message>[^\n]+?) — (?P<hint>[^\n]+)$")
#: a write held upstream past the client's timeout and the re-read
UNCLEAR = {"orderdesk": {"request_timeout": 0.5, "max_retries": 2}, "mutations.reconcile_settle": 0.1}


def actionable(result: Any, code: str) -> tuple[str, str]:
    """The result's error text is one actionable line of ``code``; returns (message, hint)."""
    assert result.is_error
    text = result.content[0].text
    err = error_of(result)
    match = LINE.match(text)
    assert match, text
    assert match["code"] == err["code"] == code, text
    assert (match["message"], match["hint"]) == (err["message"], err["hint"]), text
    for noise in ("http://", "https://", "pydantic", "Arguments", "Traceback", "input_value", "type="):
        assert noise not in text, (noise, text)
    return match["message"], match["hint"]


async def test_validation_names_the_argument_the_type_and_the_value(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        limit = await c.call_tool("orders_list", {"limit": "two"})
        union = await c.call_tool("orders_list", {"fields": 5})
        nested = await c.call_tool(
            "shipments_add_many", {"shipments": [{"order_id": "1", "weight": "heavy"}]}
        )
        long = await c.call_tool("orders_update", {"order_id": "200001", "changes": "x" * 100})
        unknown = await c.call_tool("orders_get", {"order_id": "200001", "orderId": "1"})
        date = await c.call_tool("orders_list", {"search_start_date": "yesterday"})
    hint = "Fix the named argument (the input schema says what it takes) and call again; nothing was written."
    assert actionable(limit, "VALIDATION") == ("argument 'limit' should be an integer, got \"two\"", hint)
    assert (
        actionable(union, "VALIDATION")[0]
        == "argument 'fields' should be 'summary' or 'full' or an array, got 5"
    )
    assert actionable(nested, "VALIDATION")[0] == (
        "argument 'shipments[0].tracking_number' is required; "
        "argument 'shipments[0].weight' should be a number, got \"heavy\""
    )
    assert actionable(long, "VALIDATION")[0] == (
        "argument 'changes' should be an object, got \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."
    )
    assert actionable(unknown, "VALIDATION")[0] == "unknown argument 'orderId'; did you mean 'order_id'?"
    assert actionable(date, "VALIDATION")[0] == (
        "argument 'search_start_date' should be a UTC date 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS', "
        'got "yesterday"'
    )


async def test_a_length_bound_counts_characters_in_text_and_items_in_lists(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    """pydantic says "items" for a string bound checked after another validator (the idempotency key's
    ``min_length`` follows its cap): a string's length is in characters, whatever pydantic's words."""
    table = ToolTable()

    @table.tool("pages.rename", title="Rename a page", read_only=True)
    async def pages_rename(
        title: Annotated[str, AfterValidator(str.strip), Field(max_length=5)],
        slug: Annotated[str, Field(min_length=1)] = "x",
        tags: Annotated[list[str] | None, Field(min_length=2)] = None,
    ) -> dict[str, Any]:
        """Rename a page."""
        return {}

    class Pages:
        @hookimpl
        def gateway_register_tools(self, register: Any) -> None:
            table.register_into(register)

    order = {"order_items": [{"name": "W"}], "shipping": {"company": "Acme"}}
    async with connect(gateway_factory(plugins=[Pages()])) as c:
        key = await c.call_tool("orders_create", {"order": order, "idempotency_key": "abc"})
        title = await c.call_tool("pages_rename", {"title": "A longer title"})
        slug = await c.call_tool("pages_rename", {"title": "ok", "slug": ""})
        tags = await c.call_tool("pages_rename", {"title": "ok", "tags": ["a"]})
        ids = await c.call_tool("orders_move", {"order_ids": [], "folder_id": 2})
    assert actionable(key, "VALIDATION")[0] == (
        "argument 'idempotency_key' should have at least 8 characters, got \"abc\""
    )
    assert actionable(title, "VALIDATION")[0] == (
        "argument 'title' should have at most 5 characters, got \"A longer title\""
    )
    assert actionable(slug, "VALIDATION")[0] == "argument 'slug' should have at least 1 character, got \"\""
    assert actionable(tags, "VALIDATION")[0] == "argument 'tags' should have at least 2 items, got [\"a\"]"
    assert actionable(ids, "VALIDATION")[0] == "argument 'order_ids' should have at least 1 item, got []"
    assert orderdesk_sandbox.requests() == []


async def test_not_found_says_which_tool_shows_the_ids(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        order = await c.call_tool("orders_get", {"order_id": "999999"})
        item = await c.call_tool("inventory_get", {"item_id": "1"})
    assert actionable(order, "NOT_FOUND") == (
        "OrderDesk GET /orders/999999: Order Not Found",
        "Check the id (orders_list shows the ones that exist) and try again.",
    )
    assert (
        actionable(item, "NOT_FOUND")[1]
        == "Check the id (inventory_list shows the ones that exist) and try again."
    )


async def test_conflict_after_every_attempt(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/200002$", status=409)
    async with connect(gateway_factory(overrides={"mutations.attempts": 2})) as c:
        result = await c.call_tool("orders_update", {"order_id": "200002", "changes": {"email": "c@d.ef"}})
    message, hint = actionable(result, "CONFLICT")
    assert message.startswith("order 200002 changed during each of 2 attempts; nothing was lost but your ")
    assert hint == "Fetch the object again, check the change still makes sense, then retry."


async def test_rate_limited_and_upstream(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200003$", status=429, retry_after=7)
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200004$", status=500)
    async with connect(gateway_factory(overrides={"orderdesk": {"max_retries": 0}})) as c:
        limited = await c.call_tool("orders_get", {"order_id": "200003"})
        down = await c.call_tool("orders_get", {"order_id": "200004"})
    assert actionable(limited, "RATE_LIMITED") == (
        "OrderDesk GET /orders/200003: rate limited by OrderDesk (HTTP 429); retry in 7.0 s",
        "The upstream rate limit is exhausted; wait a few seconds and retry.",
    )
    message, hint = actionable(down, "UPSTREAM")
    assert message.startswith("OrderDesk GET /orders/200004: ") and "gave up after 1 attempts" in message
    assert hint == "The upstream service failed or timed out; retry later."


async def test_auth_read_only_and_confirmation(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="GET", path=r"^/orders/200005$", status=401)
    async with connect(gateway_factory()) as c:
        auth = await c.call_tool("orders_get", {"order_id": "200005"})
        confirm = await c.call_tool("orders_delete", {"order_id": "200006"})
    async with connect(gateway_factory(overrides={"gateway.read_only": True})) as c:
        read_only = await c.call_tool("orders_delete", {"order_id": "200006", "confirm": True})
    message, hint = actionable(auth, "AUTH")
    assert message.startswith("OrderDesk GET /orders/200005: ")
    assert hint == "Check the credentials or the caller's grants."
    assert actionable(confirm, "CONFIRMATION_REQUIRED") == (
        "order 200006 was not deleted: confirmation missing",
        "Ask the user; if they agree, call again with confirm=true.",
    )
    assert actionable(read_only, "READ_ONLY") == (
        "orders.delete changes data and the gateway is in read-only mode",
        "The gateway runs in read-only mode; ask an operator to unset GATEWAY_READ_ONLY.",
    )


async def test_outcome_unknown_tells_how_to_check(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    orderdesk_sandbox.add_fault(method="PUT", path=r"^/orders/200007$", delay_ms=1500, times=1)
    async with connect(gateway_factory(overrides=UNCLEAR)) as c:
        result = await c.call_tool("orders_update", {"order_id": "200007", "changes": {"email": "u@n.kn"}})
    message, hint = actionable(result, "OUTCOME_UNKNOWN")
    assert "email" in message
    assert hint.startswith("Do not repeat it blindly: call orders_get for order 200007 and check the fields")


async def test_unavailable_says_nothing_was_written_and_may_be_retried(
    gateway_factory: Any, orderdesk_sandbox: Any
) -> None:
    # a Redis cache configured for the fleet's lock, and no Redis listening: a write can't be serialised
    dead = f"redis://127.0.0.1:{free_port()}/0"
    before = orderdesk_sandbox.order("200008")["email"]
    gw = gateway_factory(
        overrides={"cache.backend": "redis", "cache.redis_url": dead, "cache.op_timeout": 0.2}
    )
    async with connect(gw) as c:
        result = await c.call_tool("orders_update", {"order_id": "200008", "changes": {"email": "u@n.av"}})
    message, hint = actionable(result, "UNAVAILABLE")
    assert "shared lock is unavailable" in message and "nothing was written" in message
    assert error_of(result)["retryable"] is True and hint
    assert orderdesk_sandbox.order("200008")["email"] == before
    assert not [r for r in orderdesk_sandbox.requests() if r.method != "GET"]


async def test_internal_hides_the_detail(gateway_factory: Any) -> None:
    class Crasher:
        @hookimpl
        def gateway_register_tools(self, register: Any) -> None:
            async def boom() -> dict[str, Any]:
                """Always fails. Cost: 0 requests."""
                raise RuntimeError("secret internal detail")

            register(boom, name="test.boom", read_only=True, store_scoped=False)

    async with connect(gateway_factory(plugins=[Crasher()])) as c:
        result = await c.call_tool("test_boom", {})
    assert actionable(result, "INTERNAL") == (
        "test.boom failed unexpectedly (RuntimeError)",
        "This is a gateway bug or a plugin failure; the server log has details.",
    )


#: the test above that checks each code's text
CHECKED = {
    "VALIDATION": test_validation_names_the_argument_the_type_and_the_value,
    "NOT_FOUND": test_not_found_says_which_tool_shows_the_ids,
    "CONFLICT": test_conflict_after_every_attempt,
    "RATE_LIMITED": test_rate_limited_and_upstream,
    "UPSTREAM": test_rate_limited_and_upstream,
    "AUTH": test_auth_read_only_and_confirmation,
    "READ_ONLY": test_auth_read_only_and_confirmation,
    "CONFIRMATION_REQUIRED": test_auth_read_only_and_confirmation,
    "OUTCOME_UNKNOWN": test_outcome_unknown_tells_how_to_check,
    "UNAVAILABLE": test_unavailable_says_nothing_was_written_and_may_be_retried,
    "INTERNAL": test_internal_hides_the_detail,
}


@pytest.mark.parametrize("code", [c.value for c in ErrorCode])
def test_every_code_has_its_text_checked(code: str) -> None:
    assert code in CHECKED, f"add a test of the {code} text"
    assert f'"{code}"' in inspect.getsource(CHECKED[code])
