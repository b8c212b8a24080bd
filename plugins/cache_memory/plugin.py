"""Entry point ``cache_memory``: registers the in-process cache backend as ``"memory"``."""

from __future__ import annotations

from collections.abc import Callable

from gateway import hookimpl
from plugins.cache_memory.backend import MemoryBackend


@hookimpl
def gateway_register_cache_backends(register: Callable[..., None]) -> None:
    register("memory", MemoryBackend.from_settings)
