"""Helpers shared by the sandbox tests (a uniquely named module, importable thanks to rootdir prepend)."""

from __future__ import annotations

from typing import Any

import aiohttp
from multidict import CIMultiDictProxy


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """``(status, parsed JSON body, headers)`` for one request."""
    async with session.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


def new_order(**overrides: Any) -> dict[str, Any]:
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
    body.update(overrides)
    return body
