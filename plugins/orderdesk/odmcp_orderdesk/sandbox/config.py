"""Sandbox configuration: stores, rate limit, latency, test-only modes, seeding, webhooks.

A plain mutable dataclass on purpose: the running app reads it on every request, so a test (or the
``POST /_sandbox/config`` admin endpoint) can flip ``rate_limit_enabled`` or ``latency_ms`` mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_STORE_ID = "1001"
DEFAULT_API_KEY = "sandbox-key"
DEFAULT_STORE_NAME = "Demo Store"
SECOND_STORE_ID = "2002"
SECOND_API_KEY = "sandbox-key-2"
SECOND_STORE_NAME = "Second Store"


def default_folders() -> dict[int, str]:
    """The four folders every new OrderDesk store starts with (notes §5.2); the first is the default."""
    return {1: "New", 2: "Prepared", 3: "Closed", 4: "Canceled"}


@dataclass
class StoreConfig:
    """One OrderDesk store: credentials, name and folders (folder ids are ints, first = default)."""

    store_id: str = DEFAULT_STORE_ID
    api_key: str = DEFAULT_API_KEY
    name: str = DEFAULT_STORE_NAME
    folders: dict[int, str] = field(default_factory=default_folders)
    #: Number of demo orders to seed; ``None`` uses ``SandboxConfig.seed_orders``.
    seed_orders: int | None = None
    #: Number of demo inventory items to seed; ``None`` uses ``SandboxConfig.seed_inventory``.
    seed_inventory: int | None = None
    #: The store's time zone (``settings.timezone``, notes §5.2); ``*_local`` date filters use it.
    timezone: str = "America/Los_Angeles"


def second_store() -> StoreConfig:
    """A second store with different folder ids, to catch clients that hard-code store 1001's ids."""
    return StoreConfig(
        store_id=SECOND_STORE_ID,
        api_key=SECOND_API_KEY,
        name=SECOND_STORE_NAME,
        folders={21: "New", 22: "Prepared", 23: "Closed", 24: "Canceled"},
        seed_orders=8,
        seed_inventory=5,
    )


@dataclass
class SandboxConfig:
    """Everything that shapes sandbox behaviour. Mutating it on a running sandbox takes effect at once."""

    stores: list[StoreConfig] = field(default_factory=lambda: [StoreConfig()])
    rate_limit_enabled: bool = True
    #: Leaky-bucket size and refill (notes §3: 20 and 3/s).
    capacity: float = 20.0
    refill_per_sec: float = 3.0
    #: Added to every OrderDesk API request (not admin requests) before it is processed.
    latency_ms: float = 0.0
    #: TEST-ONLY, NOT OrderDesk behaviour (notes §7: OrderDesk has no 409 and no conditional PUT): a
    #: ``PUT /orders/{id}`` whose body ``date_updated`` is missing or differs from the stored one answers
    #: 409. It only lets tests drive the host's conflict-retry protocol; ``date_updated`` has one-second
    #: resolution, so even this mode misses a second write in the same second.
    strict_concurrency: bool = False
    #: Share of orders (picked per order id from ``seed``, so the same orders every run) whose items'
    #: ``price`` and ``quantity`` are stored and returned as JSON strings (``"10"``, ``"2"``), as real
    #: orders sometimes are (notes §1.3). 0 = never, 1 = every order.
    string_numbers: float = 0.25
    #: Where responses without a message of their own put their timing (notes §2: both forms are
    #: documented): ``"documented"`` = ``"message": "Execution took …"`` on ``GET /orders`` and
    #: ``GET /orders/{id}`` (as the docs' examples show) and ``execution_time`` elsewhere;
    #: ``"message"`` = the message form everywhere; ``"execution_time"`` = never the message form.
    timing_style: str = "documented"
    #: Refuse a ``GET`` that carries a body, ``Content-Type`` or ``Content-Length`` (400), as the current
    #: docs ask clients not to send them (notes §1.2). Possibly stricter than OrderDesk: see assumptions.
    refuse_get_body: bool = True
    #: Seeds the demo data and the fault-probability RNG.
    seed: int = 7
    seed_orders: int = 36
    seed_inventory: int = 20
    #: Fixed "now" for seeded dates ("YYYY-MM-DD HH:MM:SS"); ``None`` = the current time, so seeded
    #: orders always look recent. Content is deterministic either way.
    seed_anchor: str | None = None
    #: Requests kept in the request log (a ring buffer: older ones are dropped, memory stays flat).
    request_log_size: int = 10_000
    #: When set, order changes are POSTed here like OrderDesk's "post order JSON" (notes §8.1).
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0

    @classmethod
    def multi_store(cls, **kwargs: object) -> SandboxConfig:
        """The default store 1001 plus store 2002 (key ``sandbox-key-2``)."""
        return cls(stores=[StoreConfig(), second_store()], **kwargs)  # type: ignore[arg-type]
