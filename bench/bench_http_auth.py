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


async def token_check(rounds: int) -> float:
    """p50 of one request through the auth layer alone: static token vs OAuth (RS256, ES256), in ms."""
    import jwt
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from odmcp.config import OAuthSettings, Secret, TokenSettings
    from odmcp.http import BearerAuth, OAuthGate
    from odmcp.oauth import JwtVerifier

    header("the cost of a token check, per request (auth layer alone, in-process)")
    keys = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }

    def jwk(kid: str) -> dict[str, object]:
        pub = keys[kid].public_key()
        algo = jwt.algorithms.RSAAlgorithm if kid == "rsa" else jwt.algorithms.ECAlgorithm
        return {**algo.to_jwk(pub, as_dict=True), "kid": kid, "use": "sig"}

    async def certs(_request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk("rsa"), jwk("ec")]})

    app = web.Application()
    app.router.add_get("/certs", certs)
    async with TestServer(app, host="127.0.0.1") as idp:
        issuer, resource = str(idp.make_url("")), "https://mcp.example.com/mcp"
        settings = OAuthSettings(issuer=issuer, resource=resource, jwks_uri=str(idp.make_url("/certs")))

        async def answered(scope: object, receive: object, send: object) -> None:
            return None

        static = TokenSettings(name="bench", token=Secret(TOKEN))
        layers = {
            "static token": (BearerAuth(answered, [static], set()), TOKEN),
        }
        gate = OAuthGate(JwtVerifier(settings), resource)
        oauth = BearerAuth(answered, [static], set(), gate)
        now = int(time.time())
        for kid, alg in (("rsa", "RS256"), ("ec", "ES256")):
            claims = {
                "iss": issuer,
                "aud": resource,
                "sub": "bench",
                "exp": now + 3600,
                "scope": "orders:write",
            }
            layers[f"OAuth {alg}, cached JWKS"] = (
                oauth,
                jwt.encode(claims, keys[kid], algorithm=alg, headers={"kid": kid}),
            )

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b""}

        async def send(_message: object) -> None:
            return None

        results: dict[str, float] = {}
        for name, (layer, token) in layers.items():
            scope_base = {"type": "http", "method": "POST", "path": "/mcp"}
            headers = [(b"authorization", f"Bearer {token}".encode())]
            await layer({**scope_base, "headers": headers}, receive, send)  # warm: the key set is fetched
            lat = []
            for _ in range(rounds):
                scope = {**scope_base, "headers": headers}
                t0 = time.perf_counter()
                await layer(scope, receive, send)
                lat.append(time.perf_counter() - t0)
                assert "mcpgw.principal" in scope, name
            p50, p99 = p50_p99(lat)
            results[name] = p50
            print(f"{name:28s} p50 {ms(p50) * 1000:7.1f} us   p99 {ms(p99) * 1000:7.1f} us")
        worst = max(v for k, v in results.items() if k.startswith("OAuth"))
        target("oauth_token_check_p50", f"{ms(worst):.3f} ms", "<= 0.2 ms", worst <= 0.0002)
        print(f"JWKS fetches: {gate.verifier.fetches}")
        return worst


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()
    duration = args.duration or (5.0 if args.quick else 30.0)
    print(machine())
    check = await token_check(1000 if args.quick else 5000)
    served, p99 = await stallers(duration)
    summary(
        "http_auth",
        f"OAuth token check p50 {ms(check):.3f} ms; stallers: served {served:.1%}, p99 {ms(p99):.0f} ms",
    )


if __name__ == "__main__":
    asyncio.run(main())
