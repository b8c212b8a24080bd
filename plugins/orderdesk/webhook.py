"""``POST /webhooks/orderdesk``: OrderDesk's order posts, used to invalidate the cache at once.

OrderDesk posts form data with an ``order`` field holding the order JSON, plus the headers
``X-Order-Desk-Store-Id`` and ``X-Order-Desk-Hash`` = hex HMAC-SHA256 of that JSON keyed with the
store's API key. Answers as OrderDesk's own PHP client documents: 400 "No Data Found" /
"Invalid Order Data", 403 "Unauthorized Request". A bad signature changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.refs import Ref
from plugins.orderdesk.ids import ID_PATTERN
from plugins.orderdesk.wire import normalize_order

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("plugins.orderdesk.webhook")


def sign(order_json: str, api_key: str) -> str:
    return hmac.new(api_key.encode(), order_json.encode(), hashlib.sha256).hexdigest()


def webhook_handler(gateway: Gateway) -> Callable[[Request], Awaitable[Response]]:
    limit = gateway.config.http.max_body_bytes

    def answer(status: int, message: str, result: str) -> Response:
        gateway.metrics.inc("webhook_posts_total", result=result)
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
        store = next((s for s in gateway.config.stores if s.store_id == store_id), None)
        expected = sign(order_json, store.api_key.reveal()) if store else ""
        # compare even for an unknown store, so timing doesn't tell which store ids exist; bytes,
        # because compare_digest refuses non-ASCII str (a hostile header must get 403, not 500)
        matches = hmac.compare_digest((expected or "0" * 64).encode(), presented.encode("utf-8", "replace"))
        if not matches or store is None:
            log.warning("webhook: rejected a post with a bad signature or unknown store id")
            return answer(403, "Unauthorized Request", "bad_signature")
        try:
            order = msgspec.json.decode(order_json.encode())
        except msgspec.DecodeError:
            return answer(400, "Invalid Order Data", "bad_request")
        if not isinstance(order, dict) or not ID_PATTERN.fullmatch(str(order.get("id", ""))):
            return answer(400, "Invalid Order Data", "bad_request")
        order = normalize_order(order)
        ref = Ref(store.name, "order", str(order["id"]))
        fresh = order if gateway.config.section("orderdesk").webhook_caches_order else None
        if fresh is not None:
            # posts may arrive late or twice: never replace a newer cached order by an older post
            cached = await gateway.workflow.peek(ref)
            posted_at = str(order.get("date_updated", ""))
            if cached is not None and str(cached.get("date_updated", "")) > posted_at:
                fresh = None
        await gateway.workflow.invalidate(ref, lists=True, fresh=fresh)
        return answer(200, "Order Received", "ok")

    return handle
