"""The session table's bookkeeping, driven directly (the HTTP behaviour: tests/reliability)."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import pytest

from odmcp.config import Secret, TokenSettings
from odmcp.metrics import Metrics
from odmcp.middleware import PRINCIPAL_SCOPE_KEY
from odmcp.sessions import EXPIRY_GRACE, SWEEP_INTERVAL, SessionGuard

IDS = (f"sid{i}" for i in itertools.count())


async def sdk(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for the SDK: every POST without a session id opens one."""
    headers = (
        [] if dict(scope["headers"]).get(b"mcp-session-id") else [(b"mcp-session-id", next(IDS).encode())]
    )
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def open_session(guard: SessionGuard, token: TokenSettings | None) -> int:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [], PRINCIPAL_SCOPE_KEY: token}
    await guard(scope, None, send)
    return int(sent[0]["status"])


async def test_idle_sessions_are_forgotten_with_or_without_tokens() -> None:
    now = [0.0]
    guard = SessionGuard(
        sdk, path="/mcp", max_per_token=2, idle_timeout=10.0, metrics=Metrics(), clock=lambda: now[0]
    )
    alice = TokenSettings(name="alice", token=Secret("a" * 20))
    assert [await open_session(guard, alice) for _ in range(3)] == [200, 200, 429]
    for _ in range(5):  # an unauthenticated (loopback) gateway: no per-token cap, still bookkept
        assert await open_session(guard, None) == 200
    assert len(guard.sessions) == 7 and guard.count(None) == 5 and guard.count("alice") == 2
    now[0] = 10.0 + EXPIRY_GRACE / 2  # the SDK has forgotten them; the table keeps them a grace longer
    assert guard.count("alice") == 2
    now[0] = 10.0 + EXPIRY_GRACE + 2 * SWEEP_INTERVAL
    assert guard.count("alice") == 0 and guard.sessions == {}  # the table does not grow without bound
    assert await open_session(guard, alice) == 200


async def request(
    guard: SessionGuard, token: TokenSettings | None, headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> list[Any]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/mcp", "headers": headers, PRINCIPAL_SCOPE_KEY: token}
    await guard(scope, None, send)
    return sent


async def test_a_doubled_routing_header_is_refused_before_anything_opens() -> None:
    guard = SessionGuard(sdk, path="/mcp", max_per_token=2, idle_timeout=10.0, metrics=Metrics())
    alice = TokenSettings(name="alice", token=Secret("a" * 20))
    for doubled in (
        [(b"mcp-protocol-version", b"2025-11-25"), (b"mcp-protocol-version", b"2026-07-28")],
        [(b"mcp-protocol-version", b"2026-07-28"), (b"Mcp-Protocol-Version", b"2025-11-25")],
        [(b"mcp-session-id", b"sid-x"), (b"mcp-session-id", b"sid-y")],
    ):
        sent = await request(guard, alice, doubled)
        assert sent[0]["status"] == 400
        body = json.loads(sent[1]["body"])
        assert body["error"]["message"].startswith("VALIDATION: the mcp-")
    assert guard.sessions == {} and guard.metrics.value("http_refused_total", reason="duplicate_header") == 3


async def test_every_session_handed_out_is_counted_whatever_the_headers_said() -> None:
    guard = SessionGuard(sdk, path="/mcp", max_per_token=2, idle_timeout=10.0, metrics=Metrics())
    alice = TokenSettings(name="alice", token=Secret("a" * 20))
    # a 2026-era header is not checked against the cap (no session expected), but the fake SDK opens
    # one anyway: it is counted, so the next legacy open is refused
    assert (await request(guard, alice, [(b"mcp-protocol-version", b"2026-07-28")]))[0]["status"] == 200
    assert (await request(guard, alice, []))[0]["status"] == 200
    assert guard.count("alice") == 2
    assert (await request(guard, alice, []))[0]["status"] == 429
    # a session the table had forgotten but the SDK still serves to its owner is counted again
    sid = next(iter(guard.sessions))
    guard._forget(sid)
    assert guard.count("alice") == 1
    legacy = [(b"mcp-session-id", sid.encode()), (b"mcp-protocol-version", b"2025-11-25")]
    assert (await request(guard, alice, legacy))[0]["status"] == 200
    assert guard.count("alice") == 2


async def test_a_full_table_answers_503_with_retry_after_and_refusals_are_logged_once_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = SessionGuard(
        sdk, path="/mcp", max_per_token=100, max_sessions=3, idle_timeout=10.0, metrics=Metrics()
    )
    tokens = [TokenSettings(name=f"t{i}", token=Secret(f"{i}" * 20)) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="odmcp.http"):
        assert [(await request(guard, t, []))[0]["status"] for t in tokens] == [200] * 3
        refused = [await request(guard, tokens[0], []) for _ in range(50)]
    assert {r[0]["status"] for r in refused} == {503}
    assert (b"retry-after", b"10") in refused[0][0]["headers"]
    assert "http.max_sessions" in json.loads(refused[0][1]["body"])["error"]["message"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 in all" in lines[0], lines
    assert guard.refusals.total["sessions_full"] == 50
