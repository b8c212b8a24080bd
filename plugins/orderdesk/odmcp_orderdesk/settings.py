"""OrderDesk's configuration: what a ``[[stores]]`` entry holds for an OrderDesk store
(:class:`OrderDeskStore`: the host's fields plus the API key and base URL, and the ``ORDERDESK_*``
variables that define the default store), and the ``[orderdesk]`` section: how the HTTP client talks
to OrderDesk, shared by every store's client.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from odmcp.api import RateLimitSettings, Secret, StoreSettings

DEFAULT_BASE_URL = "https://app.orderdesk.me/api/v2"
#: the ``type`` of an OrderDesk ``[[stores]]`` entry (the default while no other store type is installed)
STORE_TYPE = "orderdesk"


class OrderDeskRateLimit(RateLimitSettings, forbid_unknown_fields=True, kw_only=True):
    """OrderDesk's limit per store: a burst of 20 requests, refilled at 3 per second."""

    capacity: int = 20
    refill_per_sec: float = 3.0
    enabled: bool = True


class OrderDeskStore(StoreSettings, forbid_unknown_fields=True, kw_only=True):
    """One OrderDesk store: ``store_id`` is OrderDesk's store id; its API key and API base URL."""

    STORE_TYPE: ClassVar[str] = STORE_TYPE
    ENV: ClassVar[dict[str, str]] = {
        "ORDERDESK_STORE_ID": "store_id",
        "ORDERDESK_API_KEY": "api_key",
        "ORDERDESK_BASE_URL": "base_url",
    }

    api_key: Secret
    base_url: str = DEFAULT_BASE_URL
    rate_limit: OrderDeskRateLimit = msgspec.field(default_factory=OrderDeskRateLimit)

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not self.api_key:
            out.append(("api_key", "must not be empty"))
        if not self.base_url.startswith(("http://", "https://")):
            out.append(("base_url", f"expected an http(s) URL, got {self.base_url!r}"))
        return out

    def warnings(self) -> list[tuple[str, str]]:
        if not self.base_url.rstrip("/").endswith("/api/v2"):
            return [
                (
                    "base_url",
                    f"{self.base_url!r} does not end in /api/v2, so every call would answer 404 "
                    f"(OrderDesk's is {DEFAULT_BASE_URL})",
                )
            ]
        return []


def orderdesk_store(store: StoreSettings) -> OrderDeskStore:
    """``store`` as the OrderDesk store it is (an entry of ``type = "orderdesk"``)."""
    if not isinstance(store, OrderDeskStore):
        raise TypeError(f"store {store.name!r} is not an OrderDesk store ({type(store).__name__})")
    return store


class OrderDeskSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Seconds allowed to open a TCP/TLS connection. Short, because a connect that never happened
    #: is safe to retry for every method, so failing fast costs little.
    connect_timeout: float = 5.0
    #: Total seconds for one attempt (connect, send, wait, read the body). Retries get a fresh budget.
    request_timeout: float = 20.0
    #: Retries after the first attempt (so ``max_retries + 1`` attempts at most) for 429s and, on
    #: GET/PUT/DELETE, for 5xx, timeouts, connection errors and unreadable JSON.
    max_retries: int = 4
    #: Seconds; retry ``n`` (from 0) sleeps ``min(backoff_cap, backoff_base * 2**n) * random()``
    #: ("full jitter", so many clients that failed together do not retry together).
    backoff_base: float = 0.25
    #: Upper bound, in seconds, of one backoff sleep before jitter.
    backoff_cap: float = 8.0
    #: Longest 429 ``X-Retry-After`` (seconds) the client sleeps through. A longer wait is returned
    #: to the caller as RATE_LIMITED at once: blocking a tool call for minutes helps no one.
    max_retry_after: float = 30.0
    #: Seconds one logical request may take in all: rate-limit waits, every attempt and backoff.
    #: A tool call never waits on OrderDesk for longer (then UPSTREAM; for a create, "outcome unknown").
    deadline: float = 60.0
    #: Seconds to let OrderDesk finish a create whose answer was lost before looking for the order
    #: (by source_id) instead of sending it again.
    create_settle: float = 1.0
    #: Sent on every request; OrderDesk asks integrations for a unique, identifying User-Agent.
    user_agent: str = "mcp-gateway-orderdesk/0.1 (+https://github.com/mcp-gateway)"
    #: Size of the shared connection pool (all stores together, one pool per process).
    max_connections: int = 20
    #: store the order posted to /webhooks/orderdesk as the fresh cached value (saves the next GET),
    #: but only over a strictly older cached copy; any other post only invalidates. Off by default:
    #: invalidating only is always correct, whatever order the posts arrive in
    webhook_caches_order: bool = False

    def __post_init__(self) -> None:
        # msgspec turns these ValueErrors into ValidationErrors, so the config loader reports the
        # file and key like any other type error.
        if self.connect_timeout <= 0 or self.request_timeout <= 0:
            raise ValueError("connect_timeout and request_timeout must be > 0 seconds")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base < 0 or self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_base must be >= 0 and backoff_cap >= backoff_base")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must be >= 0 seconds")
        if self.deadline <= 0:
            raise ValueError("deadline must be > 0 seconds")
        if self.create_settle < 0:
            raise ValueError("create_settle must be >= 0 seconds")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if not self.user_agent.strip():
            raise ValueError("user_agent must not be empty")
