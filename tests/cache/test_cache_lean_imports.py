"""Lean at rest: a gateway on the memory backend never imports redis-py, and imports aiohttp only for its
first upstream call; choosing Redis later in the same process still works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from odmcp.app import Gateway
    from odmcp.testing import connect

    STORE = {"name": "main", "store_id": "1", "api_key": "k", "base_url": "http://127.0.0.1:9/api/v2"}

    async def main():
        gw = Gateway.from_config(None, env={}, overrides={"stores": [STORE], "cache.backend": "memory"})
        async with connect(gw) as client:
            result = await client.call_tool("gateway_ping", {})
            assert not result.is_error, result
            assert gw.cache is not None and gw.cache.backend.name == "memory"
            print("at rest: aiohttp", "aiohttp" in sys.modules)
            result = await client.call_tool("orders_get", {"order_id": "1"})  # nobody listens on :9
            print("after a call:", result.content[0].text.split(":")[0], "aiohttp", "aiohttp" in sys.modules)
        loaded = sorted(m for m in sys.modules if m == "redis" or m.startswith(("redis.", "aiocache.backends.redis")))
        print("memory:", loaded or "none")
        prefix = f"lean-{uuid.uuid4().hex[:10]}"
        gw = Gateway.from_config(None, env={}, overrides={
            "stores": [STORE], "cache.backend": "redis", "cache.prefix": prefix,
            "cache.redis_url": "redis://127.0.0.1:6379/0"})
        await gw.startup()
        try:
            backend = gw.cache.backend
            key = prefix + ":probe"
            await backend.set(key, {"ok": 1}, 30.0)
            print("redis:", await backend.get(key))
            await backend.delete(key)
        finally:
            await gw.shutdown()

    asyncio.run(main())
    """
)


def test_at_rest_no_redis_py_nor_aiohttp_and_both_work_when_needed() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ORDERDESK_"))}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "at rest: aiohttp False",
        "after a call: UPSTREAM aiohttp True",
        "memory: none",
        "redis: {'ok': 1}",
    ]
