"""The ASGI limits in front of the app: the request cap and the body deadline, driven directly."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from odmcp.http_limits import ANONYMOUS_SCOPE_KEY, AcceptErrorThrottle, RequestLimits
from odmcp.metrics import Metrics


class App:
    """Records what it received; blocks until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(
    app: Any, path: str, chunks: list[bytes], delay: float = 0.0, method: str = "POST"
) -> list[Any]:
    sent: list[Any] = []
    queue = list(chunks)

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(3600)
        await asyncio.sleep(delay)
        chunk = queue.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await app(scope, receive, send)
    return sent


def limits(app: App, **kw: Any) -> RequestLimits:
    settings = {
        "max_concurrent": 2,
        "read_timeout": 0.3,
        "max_body_bytes": 1000,
        "metrics": Metrics(),
        "streams": "/mcp",
    }
    return RequestLimits(app, **{**settings, **kw})


async def test_requests_beyond_the_cap_get_503_and_healthz_is_exempt() -> None:
    app = App()
    guard = limits(app)
    held = [asyncio.create_task(call(guard, "/mcp", [b"{}"])) for _ in range(2)]
    await asyncio.sleep(0.05)
    refused = await call(guard, "/mcp", [b"{}"])
    assert refused[0]["status"] == 503 and (b"retry-after", b"1") in refused[0]["headers"]
    assert json.loads(refused[1]["body"])["message"].startswith("OVERLOADED: 2 requests are being served")
    health = asyncio.create_task(call(guard, "/healthz", [b""], method="GET"))
    stream = asyncio.create_task(call(guard, "/mcp", [b""], method="GET"))  # a session's SSE stream
    await asyncio.sleep(0.05)
    assert not health.done() and not stream.done()  # let through to the app despite the cap
    assert (await call(guard, "/mcp", [b"{}"], method="DELETE"))[0]["status"] == 503  # other methods count
    app.release.set()
    assert [r[0]["status"] for r in await asyncio.gather(*held, health, stream)] == [200] * 4
    assert guard.active == 0 and guard.metrics.value("http_refused_total", reason="busy") == 2


async def test_a_body_sent_in_time_reaches_the_app_whole() -> None:
    app = App()
    app.release.set()
    sent = await call(limits(app), "/mcp", [b"ab", b"cd", b"ef"], delay=0.05)
    assert sent[0]["status"] == 200 and app.bodies == [b"abcdef"]


async def test_a_body_that_drips_past_the_deadline_gets_408_and_never_reaches_the_app() -> None:
    app = App()
    guard = limits(app)
    sent = await call(guard, "/mcp", [b"a"] * 20, delay=0.05)  # 1 s for 20 bytes, deadline 0.3 s
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert "http.read_timeout" in json.loads(sent[1]["body"])["message"]
    assert app.bodies == [] and guard.active == 0


async def test_an_oversized_body_is_left_for_the_app_to_refuse() -> None:
    app = App()
    app.release.set()
    await call(limits(app, max_body_bytes=4), "/mcp", [b"abc", b"def", b"ghi"])
    assert app.bodies == [b"abcdefghi"]  # the first 6 bytes in one message, the rest as sent


def test_accept_errors_are_counted_into_one_warning_a_second(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        seen: list[Any] = []
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx["message"]))
        throttle = AcceptErrorThrottle(loop)
        throttle.install()
        err = OSError(24, "Too many open files")
        with caplog.at_level(logging.WARNING, logger="odmcp.http"):
            for _ in range(500):
                loop.call_exception_handler({"message": AcceptErrorThrottle.MESSAGE, "exception": err})
            loop.call_exception_handler({"message": "something else"})
        throttle.uninstall()
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "Too many open files" in lines[0] and "(1 in all)" in lines[0]
        assert throttle.total == 500 and throttle.count == 499
        assert seen == ["something else"]  # anything else goes to the previous handler
        assert loop.get_exception_handler() is not throttle
    finally:
        loop.close()


async def test_anonymous_requests_have_their_own_budget_and_never_take_a_signed_in_slot() -> None:
    app = App()
    guard = limits(app, max_concurrent=1, max_anonymous=1)

    async def anonymous() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/hooks", "headers": [], ANONYMOUS_SCOPE_KEY: True}
        await guard(scope, receive, send)
        return sent

    stranger = asyncio.create_task(anonymous())
    await asyncio.sleep(0.05)
    refused = await anonymous()
    assert refused[0]["status"] == 503
    assert "http.max_anonymous_requests" in json.loads(refused[1]["body"])["message"]
    signed_in = asyncio.create_task(call(guard, "/mcp", [b"{}"]))  # the stranger took none of its slots
    await asyncio.sleep(0.05)
    assert not signed_in.done() and guard.active == 1 and guard.anonymous == 1
    app.release.set()
    assert [r[0]["status"] for r in await asyncio.gather(stranger, signed_in)] == [200, 200]
    assert guard.metrics.value("http_refused_total", reason="busy_anonymous") == 1
