"""Entry point ``cache_memory``: registers the in-process cache backend as ``"memory"``.

While the gateway runs, a task frees expired entries every :data:`PURGE_INTERVAL` seconds, so an
idle gateway doesn't keep them until they are touched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from odmcp.api import hookimpl
from odmcp_cache_memory.backend import MemoryBackend

if TYPE_CHECKING:
    from odmcp.api import Gateway

PURGE_INTERVAL = 5.0
_TASK = "cache_memory.purge"


@hookimpl
def gateway_register_cache_backends(register: Callable[..., None]) -> None:
    register("memory", MemoryBackend.from_settings)


async def _purge_forever(backend: MemoryBackend) -> None:
    while True:
        await asyncio.sleep(PURGE_INTERVAL)
        await backend.purge_expired()


@hookimpl
def gateway_startup(gateway: Gateway) -> None:
    backend = gateway.cache.backend if gateway.cache is not None else None
    if isinstance(backend, MemoryBackend):
        gateway.state[_TASK] = asyncio.get_running_loop().create_task(_purge_forever(backend))


@hookimpl
async def gateway_shutdown(gateway: Gateway) -> None:
    task = gateway.state.pop(_TASK, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
