"""Entry point ``cache_redis``: registers the shared Redis cache backend as ``"redis"``."""

from __future__ import annotations

from collections.abc import Callable

from gateway import hookimpl
from plugins.cache_redis.backend import RedisBackend


@hookimpl
def gateway_register_cache_backends(register: Callable[..., None]) -> None:
    register("redis", RedisBackend.from_settings)
