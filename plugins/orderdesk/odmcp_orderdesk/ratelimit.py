"""OrderDesk's rate limit: one bucket per upstream store (20 requests, refilled at 3 per second).

The bucket itself is the host's (:mod:`odmcp.ratelimit`): an in-process GCRA bucket, or with a shared
cache backend one bucket for the whole fleet. This module only names the store's bucket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odmcp.api import LeakyBucket, RateLimiter
from odmcp_orderdesk.settings import OrderDeskStore

if TYPE_CHECKING:
    from odmcp.api import Gateway

__all__ = ["LeakyBucket", "RateLimiter", "store_limiter"]


def store_limiter(gateway: Gateway, store: OrderDeskStore) -> RateLimiter:
    """The bucket of ``store``'s upstream store: OrderDesk meters per store id, whatever the config
    entry is called, so two entries for one store share it (and so does every replica on Redis)."""
    return gateway.rate_limiter(f"orderdesk|{store.base_url.rstrip('/')}|{store.store_id}", store.rate_limit)
