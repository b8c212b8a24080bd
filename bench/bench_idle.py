"""Idle RSS: the gateway at rest against a bare SDK server, measured in the same run.

    .venv/bin/python bench/bench_idle.py [--quick]

Both serve Streamable HTTP, with the sandbox in its own process: the gateway is ``python -m odmcp
serve --transport http --config F`` (memory cache backend, the default; Hypercorn), the floor is a
trivial ``MCPServer`` with one tool under uvicorn (the SDK alone, as its docs run it). RSS is ``VmRSS`` from
``/proc/<pid>/status``, 1 s after the server first answers (``/healthz``; the floor's ``/mcp``), before
any MCP call. The two are measured alternately, ``ROUNDS`` times each (quick: 2), and the medians are
compared: target ``gateway <= floor + 12 MB``.

For context (no target) the same processes are measured again 0.5 s after their first MCP call (the
gateway: ``orders_get`` of a seeded order, which opens the OrderDesk client and imports aiohttp; the
floor: its ``ping`` tool), since a gateway at rest defers what only a call needs.

Also printed, from a fresh interpreter: RSS after each import of the gateway's stack, and whether the
memory-backend gateway at rest imported redis-py (never: aiocache 0.12.3's package ``__init__`` would)
or aiohttp (only the OrderDesk client's first use does).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
from typing import Any

import aiohttp
from common import (
    PY,
    ROOT,
    GatewayProcess,
    SandboxProcess,
    clean_env,
    free_port,
    header,
    machine,
    parse_quick,
    remove_file,
    rss_mb,
    summary,
    target,
    unique_prefix,
    write_config,
)

ROUNDS = 3
BUDGET_MB = 12.0

#: the SDK floor: a trivial MCPServer (one tool) on Streamable HTTP under uvicorn, nothing else
FLOOR_SERVER = """
import sys, uvicorn
from mcp.server.mcpserver import MCPServer
server = MCPServer("floor")
@server.tool()
async def ping() -> dict:
    return {"ok": True}
uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
#: RSS after each import step of the gateway's stack, then what a memory-backend gateway loaded
IMPORT_LADDER = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
print(f"python {rss():.1f}")
for name in sys.argv[1:]:
    importlib.import_module(name)
    print(f"{name} {rss():.1f}")
from odmcp.app import Gateway
from odmcp.server import build_server
store = {"name": "s", "store_id": "1", "api_key": "k", "base_url": "http://127.0.0.1:9/api/v2"}
build_server(Gateway.from_config(None, env={}, overrides={"stores": [store]}))
print(f"gateway+server (memory backend) {rss():.1f}")
at_rest = {name: name in sys.modules for name in ("redis", "aiohttp")}
import aiohttp
print(f"aiohttp (the first upstream call) {rss():.1f}")
print("imported at rest:", ", ".join(f"{name} {seen}" for name, seen in at_rest.items()))
"""
LADDER = [
    "mcp.server.mcpserver",
    "odmcp.cli",
    "odmcp.app",
    "odmcp_cache_memory.plugin",
    "odmcp_orderdesk.plugin",
    "odmcp.http",
    "odmcp.http_server",
]


async def first_call(url: str, tool: str, arguments: dict[str, Any]) -> None:
    from mcp import Client

    async with Client(url) as client:
        result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    await asyncio.sleep(0.5)


async def floor_rss() -> tuple[float, float]:
    """RSS (MB) of the trivial SDK server: idle (1 s after it answers) and after its first call."""
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-c", FLOOR_SERVER, str(port)],
        cwd=ROOT,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(400):
                try:
                    async with s.get(
                        f"http://127.0.0.1:{port}/mcp", timeout=aiohttp.ClientTimeout(total=1)
                    ) as r:
                        await r.read()
                        break
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        idle = rss_mb(proc.pid)
        await first_call(f"http://127.0.0.1:{port}/mcp", "ping", {})
        return idle, rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def gateway_rss(config_path: str, order_id: str) -> tuple[float, float]:
    async with GatewayProcess(config_path) as gp:
        await asyncio.sleep(1.0)
        idle = rss_mb(gp.pid)
        await first_call(gp.mcp_url, "orders_get", {"order_id": order_id})
        return idle, rss_mb(gp.pid)


def import_ladder() -> list[str]:
    out = subprocess.run(
        [PY, "-c", IMPORT_LADDER, *LADDER],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.splitlines() or [f"(ladder failed: {out.stderr.strip()[-300:]})"]


async def main() -> None:
    args = parse_quick(__doc__.splitlines()[0])
    rounds = 2 if args.quick else ROUNDS
    print(f"idle RSS benchmark ({machine()}): serve --transport http (memory backend) vs a bare MCPServer")
    gateway: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    async with SandboxProcess() as sb:
        order_id = (await sb.order_ids())[0]
        path = write_config(sb, unique_prefix("idle"))
        try:
            for i in range(rounds):
                gateway.append(await gateway_rss(path, order_id))
                floor.append(await floor_rss())
                (gi, gw), (fi, fw) = gateway[-1], floor[-1]
                print(
                    f"  round {i + 1}: idle: gateway {gi:.1f} MB, SDK floor {fi:.1f} MB; "
                    f"after the first call: gateway {gw:.1f} MB, SDK floor {fw:.1f} MB"
                )
        finally:
            remove_file(path)
    header("where the idle RSS goes (fresh interpreter, cumulative RSS after each step)")
    prev = None
    for line in import_ladder():
        name, _, value = line.rpartition(" ")
        try:
            mb = float(value)
        except ValueError:
            print(f"  {line}")
            continue
        print(f"  {name:34s} {mb:6.1f} MB" + (f"  (+{mb - prev:.1f})" if prev is not None else ""))
        prev = mb
    g, f = statistics.median(x[0] for x in gateway), statistics.median(x[0] for x in floor)
    gw, fw = statistics.median(x[1] for x in gateway), statistics.median(x[1] for x in floor)
    header("results")
    print(f"  median idle RSS: gateway {g:.1f} MB, SDK floor {f:.1f} MB: +{g - f:.1f} MB ({g / f:.2f}x)")
    print(
        f"  median RSS after the first call (no target): gateway {gw:.1f} MB, SDK floor {fw:.1f} MB: "
        f"+{gw - fw:.1f} MB ({gw / fw:.2f}x)"
    )
    target(
        "idle_rss_vs_sdk",
        f"gateway {g:.1f} MB vs bare MCPServer {f:.1f} MB: +{g - f:.1f} MB ({g / f:.2f}x)",
        f"<= floor + {BUDGET_MB:.0f} MB",
        g <= f + BUDGET_MB,
    )
    summary(
        "idle",
        f"gateway {g:.1f} MB, SDK floor {f:.1f} MB (+{g - f:.1f} MB, {g / f:.2f}x); after one call "
        f"+{gw - fw:.1f} MB; {rounds} rounds",
    )


if __name__ == "__main__":
    asyncio.run(main())
