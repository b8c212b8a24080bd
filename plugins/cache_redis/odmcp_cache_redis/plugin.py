"""Entry point ``cache_redis``: registers the shared Redis cache backend and the shared journal, both as
``"redis"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from odmcp.api import hookimpl

if TYPE_CHECKING:
    from odmcp.api import CacheBackend, Config, JournalBackend, JournalSettings


def _create(settings: Any) -> CacheBackend:
    # Imported on use, so choosing the memory backend never imports redis-py (the memory backend also
    # keeps aiocache 0.12.3's package import from loading it; see plugins/cache_memory/backend.py).
    from odmcp_cache_redis.backend import RedisBackend

    return RedisBackend.from_settings(settings)


@hookimpl
def gateway_register_cache_backends(register: Callable[..., None]) -> None:
    register("redis", _create)


def _create_journal(settings: JournalSettings, config: Config) -> JournalBackend:
    from odmcp_cache_redis.journal import RedisJournal  # on use, like the cache backend

    return RedisJournal.from_settings(settings, config)


@hookimpl
def gateway_register_journal_backends(register: Callable[..., None]) -> None:
    register("redis", _create_journal)
