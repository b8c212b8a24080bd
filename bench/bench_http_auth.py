"""HTTP authentication under load: unauthenticated stallers vs a signed-in client; the cost of a token check.

    .venv/bin/python bench/bench_http_auth.py [--quick] [--duration S]

* ``stallers`` - ``serve --transport http`` with a token, ``max_concurrent_requests = 32``, and the
  sandbox, in their own processes. 300 connections without a token each send request headers and 1
  byte of a 1,000-byte body, and reconnect as soon as they are let go; meanwhile one MCP client with
  the token lists tools in a closed loop for 30 s (quick: 5 s). Printed: the client's calls, share
  served, p50/p99, the 401s the stallers got per second, the gateway's CPU. Targets (issue 21): served
  >= 95 %, p99 < 1 s.
* ``token check`` - in-process, the auth layer alone in front of an app that answers at once: the time
  of one request with a static bearer token (``[[http.tokens]]``) vs an OAuth access token (RS256 and
  ES256) checked against a cached JWKS (``[http.oauth]``). Target (issue 25): OAuth p50 <= 0.2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

from common import (
    GatewayProcess,
    SandboxProcess,
    header,
    machine,
    ms,
    p50_p99,
    process_cpu,
    summary,
    target,
)

TOKEN = "tok-" + os.urandom(8).hex()


async def stallers(duration: float) -> tuple[float, float]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    header("300 unauthenticated stallers vs one signed-in MCP client")
    async with SandboxProcess() as sb:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "gw.toml"
            cfg.write_text(
                "[http]\nread_timeout = 5.0\nmax_concurrent_requests = 32\n"
                f'[[http.tokens]]\nname = "bench"\ntoken = "{TOKEN}"\n'
                f'[[stores]]\nname = "demo"\nstore_id = "{sb.store_id}"\napi_key = "{sb.config.stores[0].api_key}"\n'
                f'base_url = "{sb.base_url}"\ndefault = true\n'
            )
            async with GatewayProcess(str(cfg)) as gw:
                head = (
                    f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nContent-Type: application/json\r\n"
                    "Content-Length: 1000\r\n\r\n{"
                ).encode()
                stop = asyncio.Event()
                refusals = 0

                async def staller() -> None:
                    nonlocal refusals
                    while not stop.is_set():
                        try:
                            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
                        except OSError:
                            await asyncio.sleep(0.01)
                            continue
                        try:
                            writer.write(head)
                            with contextlib.suppress(OSError, TimeoutError):
                                data = await asyncio.wait_for(reader.read(), 10)
                                refusals += data.startswith(b"HTTP/1.1 401")
                        finally:
                            writer.close()

                tasks = [asyncio.create_task(staller()) for _ in range(300)]
                await asyncio.sleep(1.0)
                cpu0, t0 = process_cpu(gw.pid), time.monotonic()
                refused0 = refusals
                lat: list[float] = []
                failed = 0
                http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
                async with http, Client(streamable_http_client(gw.mcp_url, http_client=http)) as client:
                    while time.monotonic() - t0 < duration:
                        started = time.perf_counter()
                        try:
                            async with asyncio.timeout(5):
                                await client.list_tools()
                        except Exception:
                            failed += 1
                        lat.append(time.perf_counter() - started)
                elapsed = time.monotonic() - t0
                cpu = process_cpu(gw.pid) - cpu0
                stop.set()
                await asyncio.gather(*tasks)
    p50, p99 = p50_p99(lat)
    served = 1 - failed / max(1, len(lat))
    print(
        f"client calls {len(lat)}, served {served:.1%}, p50 {ms(p50):.1f} ms, p99 {ms(p99):.1f} ms; "
        f"401s to stallers {(refusals - refused0) / elapsed:.0f}/s; gateway CPU {cpu / elapsed:.0%} of a core"
    )
    target("stallers_served", f"{served:.1%}", ">= 95%", served >= 0.95)
    target("stallers_p99", f"{ms(p99):.0f} ms", "< 1000 ms", p99 < 1.0)
    return served, p99


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()
    duration = args.duration or (5.0 if args.quick else 30.0)
    print(machine())
    served, p99 = await stallers(duration)
    summary("http_auth", f"stallers: served {served:.1%}, p99 {ms(p99):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
