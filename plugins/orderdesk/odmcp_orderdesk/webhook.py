"""``POST /webhooks/orderdesk``: OrderDesk's order posts, used to invalidate the cache at once.

OrderDesk posts form data with an ``order`` field holding the order JSON, plus the headers
``X-Order-Desk-Store-Id`` and ``X-Order-Desk-Hash``. The hash is checked the way OrderDesk's own PHP
client checks it (notes §8.1): ``hash_hmac('sha256', rawurldecode($_POST['order']), api_key)``, i.e.
hex HMAC-SHA256 keyed with the store's API key over the order JSON with its percent-escapes decoded
(``%20`` -> space; unlike form decoding, ``+`` stays ``+``). The plain JSON is accepted too (the two
differ only for orders whose JSON contains ``%``, e.g. a note saying "50%25 off"). Answers as that
client documents: 400 "No Data Found" / "Invalid Order Data", 403 "Unauthorized Request". A bad
signature changes nothing.

A valid post always invalidates the order and the store's order lists, under the order's canonical id
(leading zeros stripped, :func:`odmcp_orderdesk.ids.check_id`, as every tool does). With
``[orderdesk] webhook_caches_order = true`` the posted order is also stored as the fresh cached value,
but only when the cache holds a strictly older version of it (an earlier ``date_updated``), checked and
written under the order's lock: a post may arrive late, twice, or after the order was moved or deleted,
and ``date_updated`` has one-second resolution, so any other case (nothing cached, the same second, a
newer cached copy, the lock busy) only invalidates, and the next read asks OrderDesk.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote_to_bytes

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from odmcp.api import GatewayError, Ref, lock_key
from odmcp_orderdesk.ids import ID_PATTERN, check_id
from odmcp_orderdesk.settings import STORE_TYPE, orderdesk_store
from odmcp_orderdesk.wire import normalize_order

if TYPE_CHECKING:
    from odmcp.api import Gateway

log = logging.getLogger("odmcp_orderdesk.webhook")

#: seconds a post waits for the order's lock before it settles for invalidating
LOCK_WAIT_S = 1.0
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def sign(order_json: str, api_key: str) -> str:
    """OrderDesk's ``X-Order-Desk-Hash`` for ``order_json``: HMAC-SHA256 of ``rawurldecode(order_json)``."""
    return hmac.new(api_key.encode(), unquote_to_bytes(order_json), hashlib.sha256).hexdigest()


def sign_plain(order_json: str, api_key: str) -> str:
    """HMAC-SHA256 of the order JSON as posted (the same as :func:`sign` unless it contains ``%``)."""
    return hmac.new(api_key.encode(), order_json.encode(), hashlib.sha256).hexdigest()


def _verified(order_json: str, api_key: str | None, presented: str) -> bool:
    """Whether ``presented`` is either accepted form of the hash; constant time, even without a key."""
    given = presented.encode("utf-8", "replace")  # compare_digest refuses non-ASCII str: bytes
    key = api_key if api_key is not None else ""
    # both forms are always computed and compared, so timing doesn't tell which store ids exist
    decoded = hmac.compare_digest(sign(order_json, key).encode(), given)
    plain = hmac.compare_digest(sign_plain(order_json, key).encode(), given)
    return api_key is not None and (decoded or plain)


def _older(cached: dict[str, Any], posted: dict[str, Any]) -> bool:
    """True when ``cached`` is strictly older than ``posted`` by ``date_updated`` (well-formed only)."""
    was, now = str(cached.get("date_updated", "")), str(posted.get("date_updated", ""))
    return bool(_TIMESTAMP.match(was) and _TIMESTAMP.match(now)) and was < now


async def _take_posted(gateway: Gateway, ref: Ref, order: dict[str, Any]) -> bool:
    """Cache ``order`` if a strictly older version is cached, else invalidate; True when cached."""
    wf = gateway.workflow
    try:
        async with asyncio.timeout(LOCK_WAIT_S), gateway.locks.hold(lock_key(gateway, ref)):
            cached = await wf.peek(ref)
            fresh = order if cached is not None and _older(cached, order) else None
            await wf.invalidate(ref, lists=True, fresh=fresh)
            return fresh is not None
    except (TimeoutError, GatewayError):
        # the order is being written right now (or the shared lock is unavailable): don't guess
        await wf.invalidate(ref, lists=True)
        return False


def webhook_handler(gateway: Gateway) -> Callable[[Request], Awaitable[Response]]:
    limit = gateway.config.http.max_body_bytes
    gateway.metrics.describe("webhook_posts_total", "Order posts received on /webhooks/orderdesk by result.")

    def answer(status: int, message: str, result: str, cached: str | None = None) -> Response:
        if cached is None:
            gateway.metrics.inc("webhook_posts_total", result=result)
        else:  # a verified post: did it refresh the cache ("yes") or only invalidate ("no")?
            gateway.metrics.inc("webhook_posts_total", result=result, cached=cached)
        return JSONResponse(
            {"status": "error" if status >= 400 else "success", "message": message}, status_code=status
        )

    async def handle(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return answer(413, "Payload Too Large", "too_large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return answer(413, "Payload Too Large", "too_large")
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        order_json = (fields.get("order") or [""])[0]
        if not order_json:
            return answer(400, "No Data Found", "bad_request")
        store_id = request.headers.get("x-order-desk-store-id", "")
        presented = request.headers.get("x-order-desk-hash", "")
        store = next((s for s in gateway.config.stores_of(STORE_TYPE) if s.store_id == store_id), None)
        if (
            not _verified(order_json, orderdesk_store(store).api_key.reveal() if store else None, presented)
            or store is None
        ):
            log.warning("webhook: rejected a post with a bad signature or unknown store id")
            return answer(403, "Unauthorized Request", "bad_signature")
        try:
            order = msgspec.json.decode(order_json.encode())
        except msgspec.DecodeError:
            return answer(400, "Invalid Order Data", "bad_request")
        if not isinstance(order, dict) or not ID_PATTERN.fullmatch(str(order.get("id", ""))):
            return answer(400, "Invalid Order Data", "bad_request")
        order = normalize_order(order)
        order.pop("order_history", None)  # GET /orders/{id} doesn't carry it: neither does the cache
        # one id, one key: "007" is order 7 (ids.py), so the post drops the key the tools use
        order["id"] = check_id("id", order["id"])
        ref = Ref(store.name, "order", order["id"])
        cached = False
        if gateway.config.section("orderdesk").webhook_caches_order:
            cached = await _take_posted(gateway, ref, order)
        else:
            await gateway.workflow.invalidate(ref, lists=True)
        return answer(200, "Order Received", "ok", cached="yes" if cached else "no")

    return handle
