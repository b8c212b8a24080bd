"""A gateway replica for the two-process tests (run as a subprocess, not collected by pytest).

Usage: ``python replica_worker.py CONFIG.toml JOB_JSON``. The replica builds a Gateway from the TOML
file (plus the environment, like ``mcp-gateway serve``), connects an in-process MCP client, prints
``{"ready": ...}`` and waits for a line on stdin, so the test can start every replica at once. Then it
runs the job's ``orders_update`` calls concurrently and prints one JSON line with the results.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


async def main(config_path: str, job: dict[str, Any]) -> None:
    from odmcp.app import Gateway
    from odmcp.middleware import error_of
    from odmcp.testing import connect

    gw = Gateway.from_config(config_path)
    async with connect(gw) as client:
        backend = gw.cache.backend.name if gw.cache is not None else None
        print(json.dumps({"ready": True, "backend": backend, "lock": gw.config.mutations.lock}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        results = await asyncio.gather(
            *(
                client.call_tool(
                    "orders_update",
                    {"order_id": job["order_id"], "changes": {"order_metadata": {key: job["value"]}}},
                )
                for key in job["keys"]
            )
        )
        ended = time.time()
    out = [
        {
            "is_error": r.is_error,
            "attempts": (r.structured_content or {}).get("attempts"),
            "error": error_of(r) if r.is_error else None,
        }
        for r in results
    ]
    print(json.dumps({"results": out, "started": started, "ended": ended}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
