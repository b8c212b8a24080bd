"""The OrderDesk plugin's pytest kit: opt in with ``pytest_plugins = ["odmcp_orderdesk.testing"]``.

It loads the host's kit (``odmcp.testing``) too, and gives its ``gateway_factory`` and
``gateway_client`` a running OrderDesk sandbox as their store.

Fixtures:

* ``orderdesk_sandbox`` - a running OrderDesk sandbox on a free loopback port (rate limit off unless
  the test is marked ``@pytest.mark.sandbox(rate_limit_enabled=True, ...)``; the marker's keywords
  are ``SandboxConfig`` fields, plus ``multi_store=True``). ``orderdesk_sandbox.requests(...)`` is the
  upstream request log.
* ``gateway_overrides`` - the config that points every sandbox store at it (what ``gateway_factory``
  starts from).

Helpers: ``sandbox_overrides(sandbox, ...)`` (that config, for code outside pytest: benchmarks) and
``new_order(**fields)`` (a valid create body for ``orders_create`` or ``POST /orders``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest_plugins = ["odmcp.testing"]

try:  # the kit needs pytest-asyncio; without it the plugin stays inert instead of breaking pytest
    import pytest_asyncio
except ImportError:  # pragma: no cover
    pytest_asyncio = None  # type: ignore[assignment]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox(**config): SandboxConfig fields for orderdesk_sandbox")
    # imported here, once pytest has loaded the host's kit itself (so it rewrote its asserts)
    from odmcp.api import ISOLATED_ENV_PREFIXES

    if "ORDERDESK_" not in ISOLATED_ENV_PREFIXES:  # serve_process: a developer's own store stays out
        ISOLATED_ENV_PREFIXES.append("ORDERDESK_")


def sandbox_overrides(
    sandbox: Any, *, prefix: str | None = None, audit_path: str | None = None
) -> dict[str, Any]:
    """Config overrides that point every configured sandbox store at ``sandbox``, tuned for tests."""
    stores = []
    for i, s in enumerate(sandbox.config.stores):
        stores.append(
            {
                "name": "demo" if i == 0 else f"store{i + 1}",
                "type": "orderdesk",
                "store_id": s.store_id,
                "api_key": s.api_key,
                "base_url": sandbox.base_url,
                "default": i == 0,
                "rate_limit": {"enabled": bool(sandbox.config.rate_limit_enabled)},
            }
        )
    out: dict[str, Any] = {
        "stores": stores,
        "mutations.backoff": [0.01, 0.02, 0.04],
        # the sandbox never applies a request after its client has gone: no need to wait for one
        "mutations.reconcile_settle": 0.05,
        "mutations.jitter": 0.0,
        "orderdesk": {
            "request_timeout": 3.0,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "create_settle": 0.05,
        },
    }
    if prefix:
        out["cache.prefix"] = prefix
    if audit_path:
        out["audit.path"] = audit_path
    return out


def new_order(**fields: Any) -> dict[str, Any]:
    """A complete, valid new order (two items, a US shipping address); ``fields`` replace top-level fields."""
    body: dict[str, Any] = {
        "source_id": "T-1",
        "source_name": "Order Desk",
        "email": "jane@example.com",
        "shipping_method": "Ground",
        "shipping_total": 5,
        "tax_total": 1.5,
        "shipping": {
            "first_name": "Jane",
            "last_name": "Doe",
            "address1": "1 Main St",
            "city": "San Jose",
            "state": "CA",
            "postal_code": "95131",
            "country": "US",
        },
        "order_items": [
            {"name": "Widget", "code": "W-1", "price": 12.5, "quantity": 2, "weight": 0.5},
            {"name": "Gadget", "code": "G-1", "price": "3", "variation_list": {"Size": "L"}},
        ],
    }
    body.update(fields)
    return body


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def orderdesk_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        from odmcp_orderdesk.sandbox.config import SandboxConfig
        from odmcp_orderdesk.sandbox.server import Sandbox

        marker = request.node.get_closest_marker("sandbox")
        kwargs: dict[str, Any] = {"rate_limit_enabled": False}
        kwargs.update(marker.kwargs if marker else {})
        multi = kwargs.pop("multi_store", False)
        config = SandboxConfig.multi_store(**kwargs) if multi else SandboxConfig(**kwargs)
        async with Sandbox(config) as sandbox:
            yield sandbox

    @pytest.fixture
    def gateway_overrides(orderdesk_sandbox: Any) -> dict[str, Any]:
        return sandbox_overrides(orderdesk_sandbox)
