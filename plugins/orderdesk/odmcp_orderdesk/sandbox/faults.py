"""Fault injection: make chosen requests fail the way a real network and a real OrderDesk can.

A rule matches on method + path regex (+ store id) and fires ``times`` times and/or with a seeded
``probability``. Its action is an error status with a body, a delay (to trip client timeouts), a
malformed JSON body, or a dropped connection. ``after_apply`` runs the real handler first, so the
write IS applied before the response is delayed, replaced or dropped: the "did my create go through?"
ambiguity that tests of no-duplicate-create logic need.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class FaultRule:
    """One fault. Only the first matching, firing rule applies to a request."""

    #: HTTP method to match (after ``X-HTTP-Method-Override``), or ``"*"``.
    method: str = "*"
    #: Regex searched (``re.search``) in the path relative to the base (``/orders/123``) and in the
    #: full path (``/api/v2/orders/123``); ``""`` matches everything.
    path: str = ""
    store_id: str | None = None
    #: Fire at most this many times (``None`` = unlimited).
    times: int | None = None
    #: Let this many matching requests through before firing (e.g. spare a snapshot read and fail the
    #: re-read after a write: a deterministic interleaving).
    skip: int = 0
    #: Fire with this probability (seeded RNG); ``None`` = always.
    probability: float | None = None
    #: Respond with this status and ``body`` (JSON; default an OrderDesk error envelope).
    status: int | None = None
    body: Any = None
    #: Send this text verbatim instead of ``body``.
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: ``X-Retry-After`` seconds for a 429 (default: 1, or what is left of a storm).
    retry_after: int | None = None
    #: Sleep this long before responding (before the handler unless ``after_apply``).
    delay_ms: float = 0.0
    #: Answer 200 with a truncated JSON body.
    malformed_json: bool = False
    #: Close the connection without any response.
    drop: bool = False
    #: Apply the request first, then delay / replace / drop the response.
    after_apply: bool = False
    #: After a delay before the handler, apply the request even if its client has gone meanwhile (a
    #: server that finishes what it received, as a real one may): a slow write that outlives its sender.
    apply_when_gone: bool = False
    #: Rule expires this many seconds after being added.
    duration_s: float | None = None
    name: str = ""
    id: int = 0
    fired: int = 0
    #: matching requests let through so far (see ``skip``)
    skipped: int = 0
    expires_at: float | None = None
    _pattern: re.Pattern[str] = field(default=re.compile(""), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        self.method = self.method.upper()

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, rel_path: str, full_path: str, store_id: str) -> bool:
        if self.method not in ("*", method):
            return False
        if self.store_id is not None and self.store_id != store_id:
            return False
        return bool(self._pattern.search(rel_path) or self._pattern.search(full_path))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


RULE_FIELDS = {
    f.name for f in fields(FaultRule) if f.init and f.name not in ("id", "fired", "skipped", "expires_at")
}


class FaultInjector:
    def __init__(self, seed: int = 0, clock: Any = time.monotonic) -> None:
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed)
        self.clock = clock
        self._next_id = 0

    def add(self, rule: FaultRule | None = None, **kwargs: Any) -> FaultRule:
        """Add ``rule`` (or build one from ``kwargs``, the :class:`FaultRule` fields) and return it."""
        if rule is None:
            unknown = set(kwargs) - RULE_FIELDS
            if unknown:
                raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
            rule = FaultRule(**kwargs)
        self._next_id += 1
        rule.id = self._next_id
        if rule.duration_s is not None:
            rule.expires_at = self.clock() + rule.duration_s
        self.rules.append(rule)
        return rule

    def storm_429(self, duration_s: float, retry_after: int | None = None, path: str = "") -> FaultRule:
        """Answer every API request with 429 for ``duration_s`` seconds."""
        return self.add(
            status=429, duration_s=duration_s, retry_after=retry_after, path=path, name="storm_429"
        )

    def remove(self, rule: FaultRule | int) -> None:
        rule_id = rule if isinstance(rule, int) else rule.id
        self.rules = [r for r in self.rules if r.id != rule_id]

    def clear(self) -> None:
        self.rules.clear()

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def remaining_s(self, rule: FaultRule) -> float:
        return 0.0 if rule.expires_at is None else max(0.0, rule.expires_at - self.clock())

    def match(self, method: str, rel_path: str, full_path: str, store_id: str) -> FaultRule | None:
        """The first rule that matches and decides to fire (its ``fired`` count is incremented)."""
        if not self.rules:
            return None
        now = self.clock()
        self.rules = [r for r in self.rules if r.expires_at is None or r.expires_at > now]
        for rule in self.rules:
            if rule.exhausted or not rule.matches(method, rel_path, full_path, store_id):
                continue
            if rule.skipped < rule.skip:
                rule.skipped += 1
                continue
            if rule.probability is not None and self.rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None
