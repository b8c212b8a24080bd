"""The session table's bookkeeping, driven directly (the HTTP behaviour: tests/reliability)."""

from __future__ import annotations

import itertools
from typing import Any

from odmcp.config import Secret, TokenSettings
from odmcp.metrics import Metrics
from odmcp.middleware import PRINCIPAL_SCOPE_KEY
from odmcp.sessions import SWEEP_INTERVAL, SessionGuard

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
    now[0] = 10.0 + SWEEP_INTERVAL
    assert guard.count("alice") == 0 and guard.sessions == {}  # the table does not grow without bound
    assert await open_session(guard, alice) == 200
