"""Issue 4, conflicts: 409s and precondition failures are retried with a fresh fetch and the
configured backoff; other errors are not retried.

OrderDesk itself has no 409 (notes §7): the 409s here are injected faults or the sandbox's test-only
``strict_concurrency`` mode, standing in for a backend that has optimistic concurrency, to exercise the
host's conflict protocol. Edits made outside the gateway are caught by the precondition tests below."""

from __future__ import annotations

from typing import Any

import pytest

from odmcp import hookimpl
from odmcp.config import MutationSettings, load_config
from odmcp.middleware import error_of
from odmcp.testing import connect


def order_log(sandbox: Any, oid: str) -> list[tuple[str, int]]:
    """(method, status) of every request on exactly ``/orders/<oid>``, oldest first."""
    return [
        (r.method, r.status)
        for r in sandbox.requests(path_prefix=f"/orders/{oid}")
        if r.path == f"/orders/{oid}"
    ]


def meta_change(key: str, value: str) -> dict[str, Any]:
    return {"order_metadata": {key: value}}


async def update(client: Any, oid: str, changes: dict[str, Any], **extra: Any) -> Any:
    return await client.call_tool("orders_update", {"order_id": oid, "changes": changes, **extra})


@pytest.fixture
def oid(orderdesk_sandbox: Any) -> str:
    return str(orderdesk_sandbox.orders()[0]["id"])


# --- retries on 409 ---------------------------------------------------------------------------


@pytest.mark.sandbox(strict_concurrency=True)
async def test_two_409s_then_success_on_attempt_3(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{oid}$", status=409, times=2, name="conflict")
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        r = await update(client, oid, meta_change("retried", "yes"))

    assert not r.is_error, r.structured_content
    assert r.structured_content["attempts"] == 3
    assert r.structured_content["changed_fields"] == ["order_metadata.retried"]
    # a fresh GET before each PUT; the test-only strict mode accepted the last PUT: it carried the
    # current date_updated
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200), ("PUT", 409)] * 2 + [
        ("GET", 200),
        ("PUT", 200),
    ]
    assert orderdesk_sandbox.order(oid)["order_metadata"]["retried"] == "yes"


class EditInTheUi:
    """A plugin that lets "someone in the OrderDesk UI" edit the order right after the gateway fetched it
    (between fetch and upload), the first ``times`` times an update merges."""

    def __init__(self, sandbox: Any, changes: dict[str, Any], times: int = 1) -> None:
        self.sandbox = sandbox
        self.changes = changes
        self.times = times
        self.merges = 0

    @hookimpl(tryfirst=True)
    def gateway_merge(self, ref: Any, current: dict[str, Any], changes: dict[str, Any]) -> None:
        self.merges += 1
        if self.merges <= self.times:
            changes = {
                k: {**v, "_n": str(self.merges)} if k == "order_metadata" else v
                for k, v in self.changes.items()
            }
            self.sandbox.edit_order(self.sandbox.store_id, ref.id, changes)
        return None  # let the real merge run


@pytest.mark.sandbox(strict_concurrency=True)
async def test_a_409_from_the_test_only_strict_mode_after_a_ui_edit_is_retried(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    """The test-only strict mode (not OrderDesk behaviour) answers 409 because the UI edit changed
    date_updated (the seeded order was last changed earlier); the retry keeps both changes."""
    ui = EditInTheUi(orderdesk_sandbox, {"shipping": {"company": "Edited In The UI"}})
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory(plugins=[ui])) as client:
        r = await update(client, oid, meta_change("agent", "change"))
    assert not r.is_error, r.structured_content
    assert r.structured_content["attempts"] == 2
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200), ("PUT", 409), ("GET", 200), ("PUT", 200)]
    final = orderdesk_sandbox.order(oid)
    assert final["shipping"]["company"] == "Edited In The UI"
    assert final["order_metadata"]["agent"] == "change"


# --- exhaustion ---------------------------------------------------------------------------------


async def test_permanent_409_gives_conflict_after_exactly_the_configured_attempts(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{oid}$", status=409)
    before = orderdesk_sandbox.order(oid)
    orderdesk_sandbox.clear_requests()
    gw = gateway_factory(overrides={"mutations.attempts": 4})
    async with connect(gw) as client:
        r = await update(client, oid, meta_change("never", "applied"))

    assert r.is_error
    err = error_of(r)
    assert err["code"] == "CONFLICT"
    assert err["retryable"] is True
    assert err["details"]["attempts"] == 4
    assert "4 attempts" in err["message"]
    assert err["hint"]  # tells the caller what to do
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200), ("PUT", 409)] * 4
    assert orderdesk_sandbox.order(oid) == before
    assert gw.metrics.value("mutation_conflicts_total") == 4
    assert gw.metrics.value("mutation_attempts_total") == 4


# --- backoff ------------------------------------------------------------------------------------


def test_default_mutation_settings_follow_the_spec() -> None:
    cfg = load_config(None, env={})
    assert cfg.mutations.attempts == 5
    assert cfg.mutations.backoff == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert 0 < cfg.mutations.jitter < 1
    assert cfg.mutations.precondition is False
    assert cfg.mutations.lock is True
    assert MutationSettings().backoff == [0.5, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(("rng", "factor"), [(0.5, 1.0), (0.0, 0.8), (1.0, 1.2)])
async def test_backoff_schedule_with_injected_sleep(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str, rng: float, factor: float
) -> None:
    """Nothing really sleeps: the recorded delays are the configured schedule (jitter 0.2 scaled by rng)."""
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{oid}$", status=409)
    gw = gateway_factory(
        overrides={"mutations.backoff": [0.5, 1, 2, 4, 8], "mutations.jitter": 0.2, "mutations.attempts": 7},
        sleep=fake_sleep,
        rng=lambda: rng,
    )
    async with connect(gw) as client:
        r = await update(client, oid, meta_change("x", "y"))
    assert error_of(r)["code"] == "CONFLICT"
    # one sleep between attempts (none after the last); the last backoff value repeats
    assert delays == pytest.approx([b * factor for b in (0.5, 1, 2, 4, 8, 8)])


async def test_default_backoff_and_attempts_with_injected_sleep(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    orderdesk_sandbox.add_fault(method="PUT", path=rf"^/orders/{oid}$", status=409)
    # drop the kit's test-speed mutation settings: the product defaults apply
    defaults = MutationSettings()
    gw = gateway_factory(
        overrides={"mutations.backoff": defaults.backoff, "mutations.jitter": defaults.jitter},
        sleep=fake_sleep,
        rng=lambda: 0.5,
    )
    async with connect(gw) as client:
        r = await update(client, oid, meta_change("x", "y"))
    assert error_of(r)["details"]["attempts"] == 5
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert [m for m, _ in order_log(orderdesk_sandbox, oid)].count("PUT") == 5


# --- other errors are not retried ----------------------------------------------------------------


async def test_not_found_is_not_retried(orderdesk_sandbox: Any, gateway_factory: Any) -> None:
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        r = await update(client, "987654321", meta_change("a", "b"))
    assert error_of(r)["code"] == "NOT_FOUND"
    assert [(x.method, x.status) for x in orderdesk_sandbox.requests(path_prefix="/orders")] == [("GET", 404)]


async def test_validation_error_after_fetch_is_not_retried(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        r = await update(client, oid, {"order_items": [{"id": "999999999", "quantity": 2}]})
    assert error_of(r)["code"] == "VALIDATION"
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200)]
    assert orderdesk_sandbox.requests(method="PUT") == []


async def test_upstream_validation_error_on_put_is_not_retried(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    orderdesk_sandbox.add_fault(
        method="PUT",
        path=rf"^/orders/{oid}$",
        status=400,
        body={"status": "error", "message": "Invalid field"},
    )
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        r = await update(client, oid, meta_change("a", "b"))
    assert error_of(r)["code"] == "VALIDATION"
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200), ("PUT", 400)]


# --- precondition: writers outside the gateway -------------------------------------------------


async def test_precondition_detects_a_ui_edit_between_fetch_and_upload(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    ui = EditInTheUi(orderdesk_sandbox, {"shipping": {"company": "Edited In The UI"}})
    orderdesk_sandbox.clear_requests()
    gw = gateway_factory(plugins=[ui], overrides={"mutations.precondition": True})
    async with connect(gw) as client:
        r = await update(client, oid, meta_change("agent", "change"))
    assert not r.is_error, r.structured_content
    assert r.structured_content["attempts"] == 2
    # attempt 1: fetch, precondition re-read (changed) -> conflict; attempt 2: fetch, re-read, upload
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200)] * 4 + [("PUT", 200)]
    assert gw.metrics.value("mutation_conflicts_total") == 1
    final = orderdesk_sandbox.order(oid)
    assert final["shipping"]["company"] == "Edited In The UI"
    assert final["order_metadata"]["agent"] == "change"


async def test_without_precondition_the_ui_edit_is_overwritten(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    """The control for the test above: OrderDesk has no 409, so the UI edit is silently lost."""
    ui = EditInTheUi(orderdesk_sandbox, {"shipping": {"company": "Edited In The UI"}})
    async with connect(gateway_factory(plugins=[ui])) as client:
        r = await update(client, oid, meta_change("agent", "change"))
    assert not r.is_error
    assert r.structured_content["attempts"] == 1
    final = orderdesk_sandbox.order(oid)
    assert final["shipping"]["company"] != "Edited In The UI"
    assert final["order_metadata"]["agent"] == "change"


async def test_precondition_gives_conflict_when_the_ui_keeps_editing(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    # every edit changes the content (the precondition compares content, not date_updated)
    ui = EditInTheUi(orderdesk_sandbox, {"order_metadata": {"ui": "busy"}}, times=99)
    orderdesk_sandbox.clear_requests()
    gw = gateway_factory(plugins=[ui], overrides={"mutations.precondition": True, "mutations.attempts": 3})
    async with connect(gw) as client:
        r = await update(client, oid, meta_change("agent", "change"))
    assert error_of(r)["code"] == "CONFLICT"
    assert error_of(r)["details"]["attempts"] == 3
    assert orderdesk_sandbox.requests(method="PUT") == []
    assert "agent" not in orderdesk_sandbox.order(oid)["order_metadata"]


async def test_precondition_passes_when_nothing_changed(
    orderdesk_sandbox: Any, gateway_factory: Any, oid: str
) -> None:
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory(overrides={"mutations.precondition": True})) as client:
        r = await update(client, oid, meta_change("agent", "change"))
    assert r.structured_content["attempts"] == 1
    assert order_log(orderdesk_sandbox, oid) == [("GET", 200), ("GET", 200), ("PUT", 200)]
