"""Per-store leaky bucket, as OrderDesk documents it (notes §3): 20 tokens, refilled at 3 per second.

Tokens are fractional and refilled from a monotonic clock, so the bucket behaves the same however
requests are spaced. Every request costs one token; ``X-Tokens-Remaining`` reports the floor, and an
empty bucket tells the client how many whole seconds until one token is back (``X-Retry-After``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    remaining: int
    retry_after: int


class LeakyBucket:
    def __init__(
        self, capacity: float, refill_per_sec: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.refill_per_sec = refill_per_sec
        self.clock = clock
        self.tokens = capacity
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_sec)
        self.updated = now

    def take(self) -> Decision:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return Decision(True, math.floor(self.tokens), 0)
        missing = 1.0 - self.tokens
        wait = missing / self.refill_per_sec if self.refill_per_sec > 0 else 3600.0
        return Decision(False, 0, max(1, math.ceil(wait)))


class RateLimiter:
    """One bucket per store id; rebuilt when the configured capacity or refill rate changes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, LeakyBucket] = {}

    def take(self, key: str, capacity: float, refill_per_sec: float) -> Decision:
        bucket = self.buckets.get(key)
        if bucket is None or bucket.capacity != capacity or bucket.refill_per_sec != refill_per_sec:
            bucket = self.buckets[key] = LeakyBucket(capacity, refill_per_sec, self.clock)
        return bucket.take()

    def reset(self) -> None:
        self.buckets.clear()
