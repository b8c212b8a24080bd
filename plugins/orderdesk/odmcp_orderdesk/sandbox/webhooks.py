"""OrderDesk's "post order JSON" to a URL (notes §8.1), so receivers can be tested end to end.

Each changed order is POSTed form-encoded with one field, ``order`` = the order JSON, plus headers
``X-Order-Desk-Store-Id`` and ``X-Order-Desk-Hash``. The hash is what the official PHP client's
``validatePostedJson()`` checks (notes §8.1): ``hash_hmac('sha256', rawurldecode($_POST['order']),
api_key)``, i.e. hex HMAC-SHA256 keyed with the store's API key over the order JSON with its
percent-escapes decoded (``%20`` -> space; ``+`` stays ``+``). For JSON without ``%`` that is the JSON
itself. Posts are fire-and-forget tasks so a slow receiver never slows the API; :meth:`close` awaits or
cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import msgspec

from .config import SandboxConfig
from .state import Order, StoreState


def sign(order_json: str, api_key: str) -> str:
    """The ``X-Order-Desk-Hash`` value for ``order_json``: HMAC-SHA256 of ``rawurldecode(order_json)``."""
    return hmac.new(api_key.encode(), unquote_to_bytes(order_json), hashlib.sha256).hexdigest()


class WebhookPoster:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.tasks: set[asyncio.Task[None]] = set()
        #: One entry per attempted post: url, store_id, order_id, status (0 on failure), error, ts.
        self.deliveries: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None

    def notify(self, store: StoreState, order: Order) -> None:
        """Schedule a post of ``order`` (snapshotted now) if a webhook URL is configured."""
        url = self.config.webhook_url
        if not url:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (pure-Python use): nothing can be posted
        payload = msgspec.json.encode(order).decode()
        task = loop.create_task(self._post(url, store, order["id"], payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(self, url: str, store: StoreState, order_id: str, payload: str) -> None:
        record: dict[str, Any] = {
            "url": url,
            "store_id": store.store_id,
            "order_id": order_id,
            "ts": time.time(),
        }
        headers = {"X-Order-Desk-Store-Id": store.store_id, "X-Order-Desk-Hash": sign(payload, store.api_key)}
        try:
            if self._session is None or self._session.closed:
                timeout = aiohttp.ClientTimeout(total=self.config.webhook_timeout_s)
                self._session = aiohttp.ClientSession(timeout=timeout)
            async with self._session.post(url, data={"order": payload}, headers=headers) as resp:
                await resp.read()
                record.update(status=resp.status, error=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.update(status=0, error=repr(exc))
        self.deliveries.append(record)

    async def drain(self, wait_s: float = 5.0) -> None:
        """Wait until every scheduled post has finished (or ``wait_s`` seconds pass)."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=wait_s)

    async def close(self, grace_s: float = 1.0) -> None:
        """Give pending posts ``grace_s`` to finish, cancel the rest, close the HTTP session."""
        await self.drain(grace_s)
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
