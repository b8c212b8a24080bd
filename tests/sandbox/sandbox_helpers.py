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
