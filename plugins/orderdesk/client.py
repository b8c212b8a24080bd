"""The OrderDesk API v2 client: one instance per store, all sharing one aiohttp session.

What it takes care of, so no caller has to:

* **headers** — store id, API key, a unique User-Agent, ``Accept``; ``Content-Type`` only with a body
  (OrderDesk asks for none on GET). The key is revealed only while building the request headers and
  never reaches a message, a log line or a ``repr``.
* **envelope** — ``{"status": "success" | "error", ...}`` is unwrapped; ``"error"`` inside an HTTP 200
  is an error too. Payloads come back normalised by :mod:`plugins.orderdesk.wire`.
* **errors** — mapped to :mod:`gateway.errors` codes, keeping OrderDesk's own ``message`` and naming
  the operation: ``"OrderDesk GET /orders/123: Order Not Found"``.
* **pacing** — a :class:`~plugins.orderdesk.ratelimit.LeakyBucket` before every attempt, fed with
  ``X-Tokens-Remaining``; a 429 waits ``X-Retry-After`` and retries (for every method: a 429 was
  not processed).
* **retries** — GET/PUT/DELETE retry 5xx, timeouts, connection errors and unreadable JSON with capped
  exponential backoff and full jitter. A POST is never blindly repeated once it may have been
  processed: ``create_order`` looks the order up by ``source_id`` first (see there); the other
  POSTs check what they can and otherwise raise :class:`OutcomeUnknown`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import msgspec

from gateway.config import StoreSettings
from gateway.errors import (
    AuthError,
    Conflict,
    GatewayError,
    NotFound,
    RateLimited,
    UpstreamError,
    ValidationFailed,
)
from plugins.orderdesk.ids import check_id
from plugins.orderdesk.ratelimit import LeakyBucket
from plugins.orderdesk.settings import OrderDeskSettings
from plugins.orderdesk.wire import (
    normalize_inventory_item,
    normalize_order,
    normalize_order_item,
    normalize_shipment,
    sanitize_store,
    to_wire_inventory_item,
    to_wire_order,
    to_wire_order_item,
    to_wire_shipment,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

#: OrderDesk's default ``source_name`` for orders created without one.
DEFAULT_SOURCE_NAME = "Order Desk"
#: Prefix of the ``source_id`` generated for creates that bring none (see ``create_order``).
GENERATED_SOURCE_ID_PREFIX = "mcpgw-"
MAX_PAGE_SIZE = 500
#: OrderDesk caps a history note at 2,000 characters including date and user name.
MAX_NOTE_CHARS = 1800

# GET /orders filters OrderDesk documents; anything else is refused before a request is made.
ORDER_FILTERS = frozenset(
    {
        "folder_id",
        "folder_name",
        "source_id",
        "source_name",
        "email",
        "customer_id",
        "search_start_date",
        "search_end_date",
        "search_start_date_local",
        "search_end_date_local",
        "modified_start_date",
        "modified_end_date",
        "order_by",
        "order",
        "limit",
        "offset",
        "get_order_history",
        *(f"{who}_{what}" for who in ("customer", "shipping") for what in
          ("first_name", "last_name", "company", "address1", "phone")),
    }
)  # fmt: skip

_ENVELOPE_KEYS = ("status", "execution_time")
# How a per-entry result of /move-orders or /batch-shipments says it failed, when it has no
# explicit ``"status": "error"`` (the per-entry schema is not documented).
_ENTRY_FAILED = re.compile(r"not found|error|invalid|fail|could not|cannot|unable|not (moved|added)", re.I)
_AUTH_WORDS = re.compile(r"unauthori[sz]ed|api key|credential|forbidden", re.I)
_MAX_MESSAGE = 300


class OutcomeUnknown(UpstreamError):
    """A write may or may not have been applied: it timed out, lost its connection or got a 5xx
    after the body was sent. Repeating it blindly could apply it twice, hence not ``retryable``."""

    retryable = False
    default_hint = "The write may or may not have happened; check the current state before trying again."


def make_session(settings: OrderDeskSettings) -> aiohttp.ClientSession:
    """The one session per process that every store's client shares (call it inside the event loop).

    No default headers: credentials differ per store and ``Content-Type`` must only go with a body.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.max_connections),
        timeout=aiohttp.ClientTimeout(total=settings.request_timeout, connect=settings.connect_timeout),
    )


@dataclass(slots=True)
class _Attempt:
    """What one HTTP exchange came to, before retry policy is applied."""

    kind: Literal["ok", "fatal", "rate", "transient", "unsent"]
    body: JSON | None = None
    error: GatewayError | None = None
    #: for ``transient``/``unsent``: what went wrong, in words
    reason: str = ""
    retry_after: float | None = None


class OrderDeskClient:
    """Talks to one OrderDesk store. Every method returns unwrapped, normalised payloads."""

    def __init__(
        self,
        store: StoreSettings,
        session: aiohttp.ClientSession,
        settings: OrderDeskSettings,
        *,
        limiter: LeakyBucket | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._session = session
        self._settings = settings
        # The default bucket keeps real time even when ``sleep`` is faked: a fake sleep that does
        # not move the clock would make it spin.
        self._limiter = limiter if limiter is not None else LeakyBucket.from_settings(store.rate_limit)
        self._sleep = sleep
        self._rng = rng
        self._base = store.base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout, connect=settings.connect_timeout
        )
        refill = store.rate_limit.refill_per_sec
        self._refill_interval = 1.0 / refill if refill > 0 else 0.0

    def __repr__(self) -> str:
        return f"OrderDeskClient(store={self._store.name!r}, store_id={self._store.store_id!r})"

    @property
    def store_name(self) -> str:
        return self._store.name

    @property
    def limiter(self) -> LeakyBucket:
        return self._limiter

    # --- store -----------------------------------------------------------------------------

    async def test(self) -> JSON:
        """``GET /test``: checks the credentials; ``{"message": "Connection Successful", ...}``."""
        return _rest(await self._call("GET", "/test"))

    async def get_store(self) -> JSON:
        """Store settings and the ``folders`` map (folder-id string -> name), credentials removed."""
        env = await self._call("GET", "/store")
        return sanitize_store(_take(env, "store", "GET /store"))

    # --- orders ----------------------------------------------------------------------------

    async def list_orders(self, **filters: Any) -> JSON:
        """``GET /orders``: ``{orders, total_records, records_returned, offset, limit}``.

        Filters are OrderDesk's own query parameters (:data:`ORDER_FILTERS`); ``folder_id`` may be a
        list, booleans go out as ``1``/``0``, ``None`` values are left out.
        """
        unknown = sorted(set(filters) - ORDER_FILTERS)
        if unknown:
            raise ValidationFailed(
                f"unknown order filter {unknown[0]!r}; known: {', '.join(sorted(ORDER_FILTERS))}"
            )
        params = dict(filters)
        folder = params.get("folder_id")
        if folder is not None:
            folders = folder if isinstance(folder, (list, tuple)) else [folder]
            params["folder_id"] = [check_id("folder_id", f) for f in folders]
        _check_page(params.get("limit"), params.get("offset"))
        if params.get("order") is not None:
            order = str(params["order"]).upper()
            if order not in ("ASC", "DESC"):
                raise ValidationFailed(f"order must be ASC or DESC, got {params['order']!r}")
            params["order"] = order
        env = await self._call("GET", "/orders", params=params)
        orders = [normalize_order(o) for o in _dicts(env.get("orders"))]
        return {
            "orders": orders,
            "total_records": _as_int(env.get("total_records"), len(orders)),
            "records_returned": _as_int(env.get("records_returned"), len(orders)),
            "offset": _as_int(env.get("offset"), _as_int(params.get("offset"), 0)),
            "limit": _as_int(env.get("limit"), _as_int(params.get("limit"), 50)),
        }

    async def get_order(self, order_id: str | int) -> JSON:
        oid = check_id("order_id", order_id)
        env = await self._call("GET", f"/orders/{oid}")
        return normalize_order(_take(env, "order", f"GET /orders/{oid}"))

    async def create_order(self, order: Mapping[str, Any]) -> JSON:
        """``POST /orders`` -> the created order; safe to call again after an unclear failure.

        A create is never blindly re-sent. If the body has no ``source_id``, one is generated
        (``"mcpgw-" + 16 hex digits``) *before* the first attempt, so the order can always be found
        again. After a timeout, dropped connection or 5xx the client looks the order up by
        ``source_id`` + ``source_name`` and returns it if it exists; only if it does not is the POST
        repeated (after a backoff). If a repeat is rejected (OrderDesk refuses duplicates), one more
        lookup decides whether the first attempt had succeeded after all.
        """
        body = to_wire_order(dict(order), for_create=True)
        source_id = body.get("source_id")
        if source_id is None or (isinstance(source_id, str) and not source_id.strip()):
            source_id = body["source_id"] = GENERATED_SOURCE_ID_PREFIX + uuid.uuid4().hex[:16]
        source_id = str(source_id)
        source_name = str(body.get("source_name") or DEFAULT_SOURCE_NAME)
        retry = 0
        while True:
            try:
                env = await self._call("POST", "/orders", body=body)
            except OutcomeUnknown as exc:
                await self._sleep(self._backoff(retry))
                found = await self._confirm_order(exc, source_id, source_name)
                if found is not None:
                    log.info(
                        "OrderDesk POST /orders: found order %s after an unclear response", found.get("id")
                    )
                    return found
                if retry >= self._settings.max_retries:
                    raise OutcomeUnknown(
                        f"{exc.message}; no order with source_id {source_id!r} was found yet, so look it "
                        "up again before creating it anew",
                        source_id=source_id,
                    ) from None
                retry += 1
                continue
            except (ValidationFailed, Conflict) as exc:
                if retry == 0:
                    raise
                # A repeat was refused, perhaps as a duplicate of the first attempt after all.
                found = await self._confirm_order(exc, source_id, source_name)
                if found is not None:
                    return found
                raise
            if not isinstance(env.get("order"), dict):
                found = await self._find_order(source_id, source_name)
                if found is None:
                    raise UpstreamError("OrderDesk POST /orders: the response carries no order")
                return found
            return normalize_order(env["order"])

    async def update_order(self, order_id: str | int, order: Mapping[str, Any]) -> JSON:
        """``PUT /orders/{id}`` with the *full* order (OrderDesk blanks whatever is left out).

        Pass the complete order as read, changed where needed, items with their ids. Shipments and
        history are stripped (PUT cannot change them); empty maps go out as ``[]``.
        """
        oid = check_id("order_id", order_id)
        if order.get("id") not in (None, "") and str(order["id"]) != oid:
            raise ValidationFailed(f"order body has id {order['id']!r} but the update targets order {oid}")
        env = await self._call("PUT", f"/orders/{oid}", body=to_wire_order(dict(order)))
        if not isinstance(env.get("order"), dict):
            return await self.get_order(oid)
        return normalize_order(env["order"])

    async def delete_order(self, order_id: str | int) -> JSON:
        oid = check_id("order_id", order_id)
        return _rest(await self._call("DELETE", f"/orders/{oid}"))

    async def move_orders(
        self,
        order_ids: Sequence[str | int],
        *,
        folder_id: str | int | None = None,
        folder_name: str | None = None,
    ) -> JSON:
        """``POST /move-orders`` (runs the folder's rules) -> ``{message, results, failed}``.

        ``failed`` lists the order ids whose entry reports an error. If every entry failed, this
        raises NOT_FOUND / VALIDATION naming them instead.
        """
        if (folder_id is None) == (folder_name is None):
            raise ValidationFailed("give exactly one of folder_id or folder_name")
        if isinstance(order_ids, (str, bytes)) or not order_ids:
            raise ValidationFailed("order_ids must be a non-empty list of order ids")
        body: JSON = {"order_id_list": [int(check_id("order_ids", o)) for o in order_ids]}
        if folder_id is not None:
            body["destination_folder_id"] = int(check_id("folder_id", folder_id))
        else:
            body["destination_folder_name"] = folder_name
        env = await self._call("POST", "/move-orders", body=body)
        results = _list(env.get("results"))
        failed = _surface_entries("OrderDesk POST /move-orders", results, "order_id", "no order was moved")
        return {"message": env.get("message", ""), "results": results, "failed": failed}

    async def add_order_history(self, order_id: str | int, note: str, source_name: str = "API") -> JSON:
        """``POST /orders/{id}/order-history`` -> the order including ``order_history``."""
        oid = check_id("order_id", order_id)
        if not isinstance(note, str) or not note.strip():
            raise ValidationFailed("note must be a non-empty string")
        if len(note) > MAX_NOTE_CHARS:
            raise ValidationFailed(
                f"note is {len(note)} characters; OrderDesk keeps at most {MAX_NOTE_CHARS}"
            )
        env = await self._call(
            "POST", f"/orders/{oid}/order-history", body={"note": note, "source_name": source_name}
        )
        return normalize_order(_take(env, "order", f"POST /orders/{oid}/order-history"))

    # --- order items -----------------------------------------------------------------------

    async def list_order_items(self, order_id: str | int) -> list[JSON]:
        oid = check_id("order_id", order_id)
        env = await self._call("GET", f"/orders/{oid}/order-items")
        return [normalize_order_item(i) for i in _dicts(env.get("order_items"))]

    async def get_order_item(self, order_id: str | int, item_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/order-items/{check_id('item_id', item_id)}"
        return normalize_order_item(_take(await self._call("GET", path), "order_item", f"GET {path}"))

    async def add_order_item(self, order_id: str | int, item: Mapping[str, Any]) -> JSON:
        """``POST /orders/{id}/order-items`` -> ``{"message": "Order Item Added"}``; never re-sent."""
        path = f"/orders/{check_id('order_id', order_id)}/order-items"
        return await self._post_once(path, to_wire_order_item(dict(item)))

    async def update_order_item(
        self, order_id: str | int, item_id: str | int, item: Mapping[str, Any]
    ) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/order-items/{check_id('item_id', item_id)}"
        return _rest(await self._call("PUT", path, body=to_wire_order_item(dict(item))))

    async def delete_order_item(self, order_id: str | int, item_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/order-items/{check_id('item_id', item_id)}"
        return _rest(await self._call("DELETE", path))

    # --- shipments -------------------------------------------------------------------------

    async def list_shipments(self, order_id: str | int) -> list[JSON]:
        oid = check_id("order_id", order_id)
        env = await self._call("GET", f"/orders/{oid}/shipments")
        return [normalize_shipment(s) for s in _dicts(env.get("shipments"))]

    async def get_shipment(self, order_id: str | int, shipment_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/shipments/{check_id('shipment_id', shipment_id)}"
        return normalize_shipment(_take(await self._call("GET", path), "shipment", f"GET {path}"))

    async def add_shipment(self, order_id: str | int, shipment: Mapping[str, Any]) -> JSON:
        """``POST /orders/{id}/shipments`` -> ``{"message": "Shipment Added"}``; never re-sent.

        After an unclear failure the order's shipments are checked for the tracking number; if it
        is there the result is ``{"message", "shipment", "confirmed_by_lookup": True}``.
        """
        oid = check_id("order_id", order_id)
        tracking = str(shipment.get("tracking_number") or "").strip()

        async def confirm() -> JSON | None:
            if not tracking or tracking.lower() == "n/a":
                return None
            for s in await self.list_shipments(oid):
                if str(s.get("tracking_number", "")).strip() == tracking:
                    return {"message": "Shipment Added", "shipment": s, "confirmed_by_lookup": True}
            return None

        return await self._post_once(f"/orders/{oid}/shipments", to_wire_shipment(dict(shipment)), confirm)

    async def update_shipment(
        self, order_id: str | int, shipment_id: str | int, shipment: Mapping[str, Any]
    ) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/shipments/{check_id('shipment_id', shipment_id)}"
        return _rest(await self._call("PUT", path, body=to_wire_shipment(dict(shipment))))

    async def delete_shipment(self, order_id: str | int, shipment_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/shipments/{check_id('shipment_id', shipment_id)}"
        return _rest(await self._call("DELETE", path))

    async def batch_shipments(self, shipments: Sequence[Mapping[str, Any]]) -> list[JSON]:
        """``POST /batch-shipments`` (a raw JSON array) -> the per-entry ``results``, never re-sent.

        Entries that failed stay in the list with their ``status``/``message``; if all failed this
        raises VALIDATION / NOT_FOUND naming the orders.
        """
        if isinstance(shipments, Mapping) or not shipments:
            raise ValidationFailed("shipments must be a non-empty list")
        body = []
        for i, s in enumerate(shipments):
            if not isinstance(s, Mapping):
                raise ValidationFailed(f"shipments[{i}] must be an object")
            wire = to_wire_shipment(dict(s))
            # an integer, as in OrderDesk's own examples of this endpoint
            wire["order_id"] = int(check_id(f"shipments[{i}].order_id", s.get("order_id")))
            body.append(wire)
        env = await self._call("POST", "/batch-shipments", body=body)
        results = _list(env.get("results"))
        _surface_entries("OrderDesk POST /batch-shipments", results, "order_id", "no shipment was added")
        return results

    # --- inventory -------------------------------------------------------------------------

    async def list_inventory(
        self, limit: int = 50, offset: int = 0, code: str | Sequence[str] | None = None
    ) -> JSON:
        """``GET /inventory-items`` -> ``{inventory_items, total_records, records_returned}`` (ints)."""
        _check_page(limit, offset)
        params: JSON = {"limit": limit, "offset": offset, "code": code}
        env = await self._call("GET", "/inventory-items", params=params)
        items = [normalize_inventory_item(i) for i in _dicts(env.get("inventory_items"))]
        returned = _as_int(env.get("records_returned"), len(items))
        return {
            "inventory_items": items,
            # OrderDesk sends it as a string, and it has been seen as "0" next to 3 returned items.
            "total_records": max(_as_int(env.get("total_records"), returned), offset + returned),
            "records_returned": returned,
        }

    async def get_inventory_item(self, item_id: str | int) -> JSON:
        path = f"/inventory-items/{check_id('item_id', item_id)}"
        return normalize_inventory_item(_take(await self._call("GET", path), "inventory_item", f"GET {path}"))

    async def create_inventory_item(self, item: Mapping[str, Any]) -> JSON:
        """``POST /inventory-items`` -> ``{"message": "Inventory Item Added"}``; never re-sent.

        After an unclear failure the SKU (``code``, unique per store) is looked up instead.
        """
        code = str(item.get("code") or "").strip()

        async def confirm() -> JSON | None:
            if not code:
                return None
            for found in (await self.list_inventory(limit=MAX_PAGE_SIZE, code=code))["inventory_items"]:
                if str(found.get("code", "")) == code:
                    return {
                        "message": "Inventory Item Added",
                        "inventory_item": found,
                        "confirmed_by_lookup": True,
                    }
            return None

        return await self._post_once("/inventory-items", to_wire_inventory_item(dict(item)), confirm)

    async def update_inventory_item(self, item_id: str | int, item: Mapping[str, Any]) -> JSON:
        """``PUT /inventory-items/{id}``: a full replacement — fields left out are blanked."""
        path = f"/inventory-items/{check_id('item_id', item_id)}"
        return _rest(await self._call("PUT", path, body=to_wire_inventory_item(dict(item))))

    async def delete_inventory_item(self, item_id: str | int) -> JSON:
        path = f"/inventory-items/{check_id('item_id', item_id)}"
        return _rest(await self._call("DELETE", path))

    async def batch_update_inventory(self, items: Sequence[Mapping[str, Any]]) -> JSON:
        """``PUT /batch-inventory-items`` (a raw JSON array; each item is a full record with ``id``)."""
        if isinstance(items, Mapping) or not items:
            raise ValidationFailed("items must be a non-empty list")
        body = []
        for i, it in enumerate(items):
            if not isinstance(it, Mapping):
                raise ValidationFailed(f"items[{i}] must be an object")
            wire = to_wire_inventory_item(dict(it))
            wire["id"] = int(check_id(f"items[{i}].id", it.get("id")))
            body.append(wire)
        out = _rest(await self._call("PUT", "/batch-inventory-items", body=body))
        if isinstance(out.get("results"), list):
            out["failed"] = _surface_entries(
                "OrderDesk PUT /batch-inventory-items", out["results"], "id", "no inventory item was updated"
            )
        return out

    # --- transport -------------------------------------------------------------------------

    async def _post_once(
        self, path: str, body: Any, confirm: Callable[[], Awaitable[JSON | None]] | None = None
    ) -> JSON:
        """A POST that is not repeated after an unclear failure; ``confirm`` may still prove success."""
        try:
            return _rest(await self._call("POST", path, body=body))
        except OutcomeUnknown as exc:
            if confirm is None:
                raise
            await self._sleep(self._backoff(0))
            try:
                found = await confirm()
            except GatewayError as lookup:
                raise OutcomeUnknown(
                    f"{exc.message}; checking for it failed too ({lookup.message})"
                ) from None
            if found is None:
                raise OutcomeUnknown(f"{exc.message}; a check found no trace of it yet") from None
            return found

    async def _find_order(self, source_id: str, source_name: str) -> JSON | None:
        page = await self.list_orders(source_id=source_id, source_name=source_name, limit=50)
        orders: list[JSON] = page["orders"]
        for o in orders:
            name = str(o.get("source_name") or "")
            if str(o.get("source_id")) == source_id and (not name or name.lower() == source_name.lower()):
                return o
        return None

    async def _confirm_order(self, exc: GatewayError, source_id: str, source_name: str) -> JSON | None:
        try:
            return await self._find_order(source_id, source_name)
        except GatewayError as lookup:
            raise OutcomeUnknown(
                f"{exc.message}; looking the order up by source_id {source_id!r} failed too "
                f"({lookup.message})",
                source_id=source_id,
            ) from None

    def _backoff(self, retry: int) -> float:
        s = self._settings
        return min(s.backoff_cap, s.backoff_base * 2.0**retry) * self._rng()

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {
            "ORDERDESK-STORE-ID": self._store.store_id,
            "ORDERDESK-API-KEY": self._store.api_key.reveal(),
            "User-Agent": self._settings.user_agent,
            "Accept": "application/json",
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> JSON:
        """One logical request: pacing, retries and error mapping. Returns the success envelope."""
        op = f"OrderDesk {method} {path}"
        idempotent = method != "POST"
        data: bytes | None = None
        if body is not None:
            try:
                data = msgspec.json.encode(body)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValidationFailed(f"{op}: the body is not JSON-serialisable ({exc})") from None
        query = _query(params or {})
        retry = 0
        unclear = False  # an earlier attempt may have been applied
        while True:
            res = await self._attempt(method, path, query, data)
            if res.kind == "ok":
                assert res.body is not None
                return res.body
            if res.kind == "fatal":
                assert res.error is not None
                if method == "DELETE" and unclear and isinstance(res.error, NotFound):
                    # The earlier, unclear attempt did delete it; the goal is reached.
                    return {"message": f"{path} deleted (confirmed: a retry found it already gone)"}
                raise res.error
            if res.kind == "transient" and not idempotent:
                raise OutcomeUnknown(
                    f"{op}: {res.reason}; the outcome is unknown, check whether it was applied "
                    "before retrying"
                )
            if res.kind == "rate":
                wait = res.retry_after
                if wait is None:
                    wait = max(self._backoff(retry), self._refill_interval)
                self._limiter.penalize(wait)
                if wait > self._settings.max_retry_after or retry >= self._settings.max_retries:
                    raise RateLimited(
                        f"{op}: rate limited by OrderDesk (HTTP 429); retry in {wait:.1f} s",
                        retry_after=round(wait, 3),
                    )
            else:
                if retry >= self._settings.max_retries:
                    raise UpstreamError(f"{op}: {res.reason} (gave up after {retry + 1} attempts)")
                wait = self._backoff(retry)
                unclear = unclear or res.kind == "transient"
            log.debug("%s: %s; retry %d in %.2f s", op, res.reason or "rate limited", retry + 1, wait)
            await self._sleep(wait)
            retry += 1

    async def _attempt(self, method: str, path: str, query: dict[str, str], data: bytes | None) -> _Attempt:
        await self._limiter.acquire()
        op = f"OrderDesk {method} {path}"
        started = time.monotonic()
        outcome = "?"
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=query or None,
                data=data,
                headers=self._headers(data is not None),
                timeout=self._timeout,
                # A redirect would carry the API key header to wherever it points.
                allow_redirects=False,
            ) as resp:
                status, reason, headers = resp.status, resp.reason or "", resp.headers
                outcome = str(status)
                raw = await resp.read()
        except aiohttp.ClientSSLError as exc:
            outcome = type(exc).__name__
            return _Attempt("fatal", error=UpstreamError(f"{op}: TLS error ({type(exc).__name__})"))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection was never established, so nothing was sent: safe to retry any method.
            outcome = type(exc).__name__
            return _Attempt("unsent", reason=f"could not connect ({type(exc).__name__})")
        except TimeoutError:
            outcome = "timeout"
            return _Attempt(
                "transient", reason=f"no complete response within {self._settings.request_timeout} s"
            )
        except aiohttp.ClientError as exc:
            outcome = type(exc).__name__
            return _Attempt("transient", reason=f"connection failed ({type(exc).__name__})")
        finally:
            log.debug(
                "OrderDesk %s %s -> %s in %.3f s [store %s]",
                method,
                path,
                outcome,
                time.monotonic() - started,
                self._store.name,
            )
        self._observe(headers.get("X-Tokens-Remaining"))
        envelope = _decode(raw)
        if status == 429:
            return _Attempt("rate", retry_after=_retry_after(headers))
        if status >= 500 or status == 408:
            return _Attempt("transient", reason=f"HTTP {status} {reason}".strip())
        if 200 <= status < 300:
            if envelope is None:
                return _Attempt("transient", reason=f"unreadable JSON in an HTTP {status} response")
            if str(envelope.get("status", "")).lower() == "error":
                return _Attempt("fatal", error=self._status_error(op, envelope))
            return _Attempt("ok", body=envelope)
        message = self._message(envelope, f"HTTP {status} {reason}".strip())
        return _Attempt("fatal", error=_http_error(op, status, message))

    def _observe(self, header: str | None) -> None:
        if header is None:
            return
        try:
            self._limiter.observe(int(float(header)))
        except ValueError:
            log.debug("ignoring unreadable X-Tokens-Remaining header %r", header[:20])

    def _message(self, envelope: JSON | None, fallback: str) -> str:
        """OrderDesk's ``message``, trimmed, with the API key masked should it ever be echoed."""
        text = envelope.get("message") if envelope else None
        if not isinstance(text, str) or not text.strip():
            return fallback
        text = " ".join(text.split())[:_MAX_MESSAGE]
        key = self._store.api_key.reveal()
        return text.replace(key, "***") if key else text

    def _status_error(self, op: str, envelope: JSON) -> GatewayError:
        """An HTTP 200 whose body says ``"status": "error"``: classify by the message."""
        message = self._message(envelope, "OrderDesk reported an error")
        text = f"{op}: {message}"
        if "not found" in message.lower():
            return NotFound(text, http_status=200)
        if _AUTH_WORDS.search(message):
            return AuthError(text, http_status=200)
        return ValidationFailed(text, http_status=200)


# --- pure helpers ------------------------------------------------------------------------------


def _http_error(op: str, status: int, message: str) -> GatewayError:
    text = f"{op}: {message}"
    if status in (401, 403):
        return AuthError(text, http_status=status)
    if status == 404:
        return NotFound(text, http_status=status)
    if status == 409:
        return Conflict(text, http_status=status)
    if 400 <= status < 500:
        return ValidationFailed(text, http_status=status)
    # 1xx/3xx: redirects are not followed (they would carry the key elsewhere) and mean a wrong base_url.
    return UpstreamError(f"{text} (unexpected HTTP {status}; check base_url)", http_status=status)


def _decode(raw: bytes) -> JSON | None:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait after a 429: ``X-Retry-After`` (documented), else a standard ``Retry-After``."""
    for name in ("X-Retry-After", "Retry-After"):
        value = headers.get(name)
        if not value:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters as strings: ``None`` dropped, booleans ``1``/``0``, lists comma-joined."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def _check_page(limit: Any, offset: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500):
        raise ValidationFailed(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ValidationFailed(f"offset must be an integer >= 0, got {offset!r}")


def _take(envelope: JSON, key: str, what: str) -> JSON:
    """The payload object under ``key``; anything else means OrderDesk answered in a shape we don't know."""
    value = envelope.get(key)
    if not isinstance(value, dict):
        raise UpstreamError(f"OrderDesk {what}: the response carries no {key!r} object")
    return value


def _rest(envelope: JSON) -> JSON:
    """The envelope without ``status``/``execution_time`` (what message-only writes return)."""
    return {k: v for k, v in envelope.items() if k not in _ENVELOPE_KEYS}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[JSON]:
    """The objects of a payload list (a stray non-object entry can't be normalised and is skipped)."""
    return [v for v in _list(value) if isinstance(v, dict)]


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _entry_failed(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    status = entry.get("status")
    if isinstance(status, str) and status:
        return status.lower() == "error"
    if entry.get("error"):
        return True
    message = entry.get("message")
    return isinstance(message, str) and _ENTRY_FAILED.search(message) is not None


def _surface_entries(op: str, results: list[Any], id_key: str, none_done: str) -> list[str]:
    """Ids of entries that failed; raises when every entry failed (so nothing happened at all)."""
    failed = [e for e in results if _entry_failed(e)]
    if not failed or len(failed) < len(results):
        return [str(e.get(id_key)) for e in failed]
    listed = ", ".join(
        f"{e.get(id_key)} ({e.get('message') or e.get('error') or 'error'})" for e in failed[:20]
    )
    more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
    text = f"{op}: {none_done}: {listed}{more}"
    if all("not found" in str(e.get("message") or e.get("error") or "").lower() for e in failed):
        raise NotFound(text, results=results)
    raise ValidationFailed(text, results=results)
