"""Stalled connections against ``serve --transport http`` with a lowered descriptor limit (256).

Clients that send half a request (and never the rest) are closed after ``http.read_timeout`` (2 s
here), a well-behaved client keeps being answered, and when the stall exhausts the descriptors the
gateway neither spins nor floods its log: one warning per second or so, with a count. Loopback only;
every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import ServeProcess, serve_process

TOKEN = "tok-" + os.urandom(8).hex()
READ_TIMEOUT = 2.0
FD_LIMIT = 256


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, base_url: str) -> AsyncIterator[ServeProcess]:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[http]
read_timeout = {READ_TIMEOUT}

[[stores]]
name = "demo"
store_id = "1001"
api_key = "sandbox-key"
base_url = "{base_url}"
default = true
""")
    env = {"GATEWAY_HTTP_TOKEN": TOKEN}
    async with serve_process(cfg, env=env, preexec_fn=_limit_descriptors) as gw:
        yield gw


async def stall(
    port: int, payload: bytes, connect_within: float = 2.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Open a connection and send ``payload`` (half a request); None if the server did not take it."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), connect_within)
    except (OSError, TimeoutError):
        return None
    with contextlib.suppress(OSError):
        writer.write(payload)
        await writer.drain()
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent before."""
    try:
        data = await asyncio.wait_for(reader.read(), seconds)
        return True, data
    except (TimeoutError, OSError):
        return False, b""


async def healthy(url: str, within: float) -> float:
    """Seconds until ``GET /healthz`` answers 200 (fails the test after ``within``)."""
    start = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.5)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        return time.monotonic() - start
            assert time.monotonic() - start < within, f"/healthz did not answer within {within} s"
            await asyncio.sleep(0.1)


async def mcp_ping(url: str) -> int:
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}'
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.post(url + "/mcp", data=body, headers=headers) as r,
    ):
        await r.read()
        return r.status


async def test_stalled_requests_are_closed_and_others_are_served(orderdesk_sandbox, tmp_path) -> None:
    async with gateway(tmp_path, orderdesk_sandbox.base_url) as gw:
        header = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor"  # half a header, no token
        body = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            'Content-Length: 5000\r\n\r\n{"jsonrpc": "2.0", "id": 1, "meth'
        ).encode()
        started = time.monotonic()
        conns = [await stall(gw.port, header) for _ in range(140)] + [
            await stall(gw.port, body) for _ in range(10)
        ]
        try:
            assert all(c is not None for c in conns)
            # a normal client is answered while 150 connections hang
            assert await mcp_ping(gw.url) == 200
            assert await healthy(gw.url, within=1.0) < 1.0
            results = await asyncio.gather(*(closed_within(c[0], READ_TIMEOUT + 3) for c in conns if c))
            elapsed = time.monotonic() - started
            assert all(closed for closed, _ in results), sum(not c for c, _ in results)
            assert elapsed < READ_TIMEOUT + 4
            # half a header: closed without a word; half a body: 408 naming the setting
            assert {data for _, data in results[:140]} == {b""}
            assert all(
                data.startswith(b"HTTP/1.1 408") and b"http.read_timeout" in data for _, data in results[140:]
            )
        finally:
            for c in conns:
                if c:
                    c[1].close()
        assert await mcp_ping(gw.url) == 200
        assert len(gw.stderr()) < 2000, gw.stderr()
        assert TOKEN not in gw.stderr()


async def test_descriptor_exhaustion_neither_spins_nor_floods_the_log(orderdesk_sandbox, tmp_path) -> None:
    async with gateway(tmp_path, orderdesk_sandbox.base_url) as gw:
        header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # never finished
        cpu0 = gw.cpu_seconds()
        started = time.monotonic()
        conns = await asyncio.gather(
            *(stall(gw.port, header, connect_within=3.0) for _ in range(FD_LIMIT + 150))
        )
        held = [c for c in conns if c is not None]
        try:
            assert len(held) > FD_LIMIT  # more than the gateway can accept: the rest wait in the backlog
            await asyncio.sleep(1.5)  # exhausted: accept() fails with EMFILE meanwhile
            # the stalled ones are closed after read_timeout, and service resumes by itself
            recovered = await healthy(gw.url, within=READ_TIMEOUT + 6)
            assert await mcp_ping(gw.url) == 200
            window = time.monotonic() - started
            cpu = gw.cpu_seconds() - cpu0
        finally:
            for c in held:
                c[1].close()
        stderr = gw.stderr()
        warnings = [ln for ln in stderr.splitlines() if "cannot accept connections" in ln]
        assert warnings, stderr[-2000:]  # the exhaustion was real, and said so
        assert "Too many open files" in warnings[0] and "accept() attempts failed" in warnings[0]
        assert len(warnings) <= window + 2, warnings
        assert "Traceback" not in stderr and len(stderr) < 5000, stderr[-2000:]
        assert cpu < 0.5 * window, f"{cpu:.2f} s CPU in {window:.1f} s (recovered after {recovered:.1f} s)"


async def test_unauthenticated_stallers_take_no_slot_from_a_signed_in_client(
    orderdesk_sandbox, tmp_path
) -> None:
    """300 connections without a token, each sending headers and 1 byte of a 1,000-byte body and
    reconnecting as soon as they are let go, while a client with a token lists tools through the MCP
    SDK over and over. Each staller is answered 401 from its headers, before it takes one of the 32
    request slots or is waited for; the client is served (>= 95 %, p99 < 1 s)."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[http]
read_timeout = 5.0
max_concurrent_requests = 32

[[stores]]
name = "demo"
store_id = "1001"
api_key = "sandbox-key"
base_url = "{orderdesk_sandbox.base_url}"
default = true
""")
    async with serve_process(cfg, env={"GATEWAY_HTTP_TOKEN": TOKEN}) as gw:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{"
        ).encode()
        stop = asyncio.Event()
        answers: list[bytes] = []

        async def staller() -> None:
            while not stop.is_set():
                conn = await stall(gw.port, head)
                if conn is None:
                    continue
                try:
                    _closed, data = await closed_within(conn[0], 6.0)
                    answers.append(data[:12])
                finally:
                    conn[1].close()

        began = time.monotonic()
        stallers = [asyncio.create_task(staller()) for _ in range(300)]
        await asyncio.sleep(0.5)  # all 300 are in
        timings: list[float] = []
        failures: list[str] = []
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            async with http, Client(streamable_http_client(gw.url + "/mcp", http_client=http)) as client:
                for _ in range(40):
                    started = time.monotonic()
                    try:
                        async with asyncio.timeout(5):
                            tools = await client.list_tools()
                        assert tools.tools
                    except Exception as err:  # a refusal surfaces as an error of the client
                        failures.append(type(err).__name__)
                    timings.append(time.monotonic() - started)
        finally:
            stop.set()
            await asyncio.gather(*stallers)  # each ends once its connection is answered
        window = time.monotonic() - began
        timings.sort()
        p99 = timings[int(len(timings) * 0.99) - 1]
        served = 1 - len(failures) / len(timings)
        assert served >= 0.95 and p99 < 1.0, (served, failures[:5], p99)
        assert len(answers) >= 300 and {a[:12] for a in answers} == {b"HTTP/1.1 401"}, set(answers)
        assert "Traceback" not in gw.stderr() and TOKEN not in gw.stderr()
        # refusals are logged one line a second, with a count; not one line each
        assert gw.stderr().count("refused a request: missing bearer token") <= window + 2
