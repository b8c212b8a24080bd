"""The OrderDesk API v2 client: one instance per store, all sharing one aiohttp session.

The endpoint methods live here; headers, envelope, error mapping, pacing and retries are done by
:class:`~odmcp_orderdesk.transport.OrderDeskTransport`. Payloads come back normalised by
:mod:`odmcp_orderdesk.wire`.

Every write is sent once: an unclear answer (a 5xx, a timeout, a drop) raises :class:`OutcomeUnknown`,
and the host's write route re-reads and reconciles (:mod:`odmcp_orderdesk.operations`). Reads are
retried by the transport.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from odmcp.api import OutcomeUnknown as OutcomeUnknown  # re-exported (raised by the transport)
from odmcp.api import UpstreamError, ValidationFailed
from odmcp_orderdesk import wire
from odmcp_orderdesk.fields import ORDER_FILTERS
from odmcp_orderdesk.ids import check_id
from odmcp_orderdesk.ratelimit import RateLimiter
from odmcp_orderdesk.settings import OrderDeskSettings, OrderDeskStore
from odmcp_orderdesk.transport import (
    JSON,
    OrderDeskTransport,
    Sleep,
    as_int,
    as_list,
    dicts,
    surface_entries,
    take,
    unwrap,
)
from odmcp_orderdesk.transport import make_session as make_session  # re-exported

log = logging.getLogger(__name__)

#: OrderDesk's default ``source_name`` for orders created without one.
DEFAULT_SOURCE_NAME = "Order Desk"
#: Prefix of the ``source_id`` generated for creates that bring none (see ``operations.CreateOrder``).
GENERATED_SOURCE_ID_PREFIX = "mcpgw-"
MAX_PAGE_SIZE = 500
#: SKUs per ``GET /inventory-items?code=...`` (keeps the query string short)
CODES_PER_REQUEST = 100
#: pages of 500 read at most to find SKUs that contain a comma (10,000 items)
MAX_SCAN_PAGES = 20
#: OrderDesk caps a history note at 2,000 characters including date and user name.
MAX_NOTE_CHARS = 1800


class OrderDeskClient:
    """Talks to one OrderDesk store. Every method returns unwrapped, normalised payloads."""

    def __init__(
        self,
        store: OrderDeskStore,
        session: aiohttp.ClientSession,
        settings: OrderDeskSettings,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        write_deadline: float | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._http = OrderDeskTransport(
            store, session, settings, limiter=limiter, sleep=sleep, rng=rng, write_deadline=write_deadline
        )

    def __repr__(self) -> str:
        return f"OrderDeskClient(store={self._store.name!r}, store_id={self._store.store_id!r})"

    #: rate-limit tokens each request of this client must leave for others (see :meth:`paced`)
    _reserve = 0

    def paced(self, reserve: int) -> OrderDeskClient:
        """This client, its requests leaving ``reserve`` rate-limit tokens for others (bulk jobs)."""
        if reserve == self._reserve:
            return self
        view = copy.copy(self)
        view._reserve = reserve
        return view

    async def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        *,
        replay_safe: bool | None = None,
    ) -> JSON:
        return await self._http.call(
            method, path, query=query, body=body, replay_safe=replay_safe, reserve=self._reserve
        )

    @property
    def store_name(self) -> str:
        return self._store.name

    @property
    def limiter(self) -> RateLimiter:
        return self._http.limiter

    # --- store -----------------------------------------------------------------------------

    async def test(self) -> JSON:
        """``GET /test``: checks the credentials; ``{"message": "Connection Successful", ...}``."""
        return unwrap(await self._call("GET", "/test"))

    async def get_store(self) -> JSON:
        """Store settings and the ``folders`` map (folder-id string -> name), credentials removed."""
        env = await self._call("GET", "/store")
        return wire.sanitize_store(take(env, "store", "GET /store"))

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
        env = await self._call("GET", "/orders", query=params)
        orders = [wire.normalize_order(o, copy=False) for o in dicts(env.get("orders"))]
        return {
            "orders": orders,
            "total_records": as_int(env.get("total_records"), len(orders)),
            "records_returned": as_int(env.get("records_returned"), len(orders)),
            "offset": as_int(env.get("offset"), as_int(params.get("offset"), 0)),
            "limit": as_int(env.get("limit"), as_int(params.get("limit"), 50)),
        }

    async def get_order(self, order_id: str | int) -> JSON:
        oid = check_id("order_id", order_id)
        env = await self._call("GET", f"/orders/{oid}")
        return wire.normalize_order(take(env, "order", f"GET /orders/{oid}"), copy=False)

    async def create_order(self, order: Mapping[str, Any]) -> JSON:
        """``POST /orders`` -> the created order; sent once (an unclear answer raises OutcomeUnknown).

        The body must carry a ``source_id`` (the write route's create operation sees to it), so the
        order can always be found again with :meth:`find_order`.
        """
        body = wire.to_wire_order(dict(order), for_create=True)
        env = await self._call("POST", "/orders", body=body)
        if not isinstance(env.get("order"), dict):
            found = await self.find_order(str(body.get("source_id")), str(body.get("source_name") or ""))
            if found is None:
                raise UpstreamError("OrderDesk POST /orders: the response carries no order")
            return found
        return wire.normalize_order(env["order"], copy=False)

    async def update_order(self, order_id: str | int, order: Mapping[str, Any]) -> JSON:
        """``PUT /orders/{id}`` with the *full* order (OrderDesk blanks whatever is left out).

        Pass the complete order as read, changed where needed, items with their ids. Shipments and
        history are stripped (PUT cannot change them); empty maps go out as ``[]``.
        """
        oid = check_id("order_id", order_id)
        if order.get("id") not in (None, "") and str(order["id"]) != oid:
            raise ValidationFailed(f"order body has id {order['id']!r} but the update targets order {oid}")
        # not replay-safe: items without an id would be added again by a repeat
        env = await self._call(
            "PUT", f"/orders/{oid}", body=wire.to_wire_order(dict(order)), replay_safe=False
        )
        if not isinstance(env.get("order"), dict):
            return await self.get_order(oid)
        return wire.normalize_order(env["order"], copy=False)

    async def delete_order(self, order_id: str | int) -> JSON:
        oid = check_id("order_id", order_id)
        return unwrap(await self._call("DELETE", f"/orders/{oid}", replay_safe=False))

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
        results = as_list(env.get("results"))
        failed = surface_entries("OrderDesk POST /move-orders", results, "order_id", "no order was moved")
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
        return wire.normalize_order(take(env, "order", f"POST /orders/{oid}/order-history"), copy=False)

    async def get_order_history(self, order: Mapping[str, Any]) -> list[JSON]:
        """One order's history, newest last. OrderDesk has no GET for it: it is read through
        ``GET /orders?get_order_history=1``, narrowed by the order's own ``source_id`` (or ``email``)
        and picked out by id. ``order`` is the order as read (its id and those fields are used).
        """
        oid = check_id("order_id", order.get("id"))
        filters: JSON
        if str(order.get("source_id") or "").strip():
            filters = {"source_id": str(order["source_id"])}
            if str(order.get("source_name") or "").strip():
                filters["source_name"] = str(order["source_name"])
        elif str(order.get("email") or "").strip():
            filters = {"email": str(order["email"])}
        else:
            raise UpstreamError(
                f"order {oid} has neither a source_id nor an email, and OrderDesk reads history only "
                "through an order search",
                hint="Look at the history in OrderDesk's UI.",
            )
        page = await self.list_orders(**filters, get_order_history=True, limit=MAX_PAGE_SIZE)
        for found in page["orders"]:
            if str(found.get("id")) == oid:
                history = found.get("order_history")
                return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
        raise UpstreamError(f"OrderDesk GET /orders: order {oid} was not found by {sorted(filters)[0]}")

    # --- order items -----------------------------------------------------------------------

    async def list_order_items(self, order_id: str | int) -> list[JSON]:
        oid = check_id("order_id", order_id)
        env = await self._call("GET", f"/orders/{oid}/order-items")
        return [wire.normalize_order_item(i) for i in dicts(env.get("order_items"))]

    async def get_order_item(self, order_id: str | int, item_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/order-items/{check_id('item_id', item_id)}"
        return wire.normalize_order_item(take(await self._call("GET", path), "order_item", f"GET {path}"))

    async def add_order_item(self, order_id: str | int, item: Mapping[str, Any]) -> JSON:
        """``POST /orders/{id}/order-items`` -> ``{"message": "Order Item Added"}``; sent once."""
        path = f"/orders/{check_id('order_id', order_id)}/order-items"
        return unwrap(await self._call("POST", path, body=wire.to_wire_order_item(dict(item))))

    async def update_order_item(
        self, order_id: str | int, item_id: str | int, item: Mapping[str, Any]
    ) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/order-items/{check_id('item_id', item_id)}"
        return unwrap(
            await self._call("PUT", path, body=wire.to_wire_order_item(dict(item)), replay_safe=False)
        )

    async def delete_order_item(self, order_id: str | int, item_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/order-items/{check_id('item_id', item_id)}"
        return unwrap(await self._call("DELETE", path, replay_safe=False))

    # --- shipments -------------------------------------------------------------------------

    async def list_shipments(self, order_id: str | int) -> list[JSON]:
        oid = check_id("order_id", order_id)
        env = await self._call("GET", f"/orders/{oid}/shipments")
        return [wire.normalize_shipment(s) for s in dicts(env.get("shipments"))]

    async def get_shipment(self, order_id: str | int, shipment_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/shipments/{check_id('shipment_id', shipment_id)}"
        return wire.normalize_shipment(take(await self._call("GET", path), "shipment", f"GET {path}"))

    async def add_shipment(self, order_id: str | int, shipment: Mapping[str, Any]) -> JSON:
        """``POST /orders/{id}/shipments`` -> ``{"message": "Shipment Added"}``; sent once."""
        oid = check_id("order_id", order_id)
        return unwrap(
            await self._call("POST", f"/orders/{oid}/shipments", body=wire.to_wire_shipment(dict(shipment)))
        )

    async def update_shipment(
        self, order_id: str | int, shipment_id: str | int, shipment: Mapping[str, Any]
    ) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/shipments/{check_id('shipment_id', shipment_id)}"
        return unwrap(
            await self._call("PUT", path, body=wire.to_wire_shipment(dict(shipment)), replay_safe=False)
        )

    async def delete_shipment(self, order_id: str | int, shipment_id: str | int) -> JSON:
        path = f"/orders/{check_id('order_id', order_id)}/shipments/{check_id('shipment_id', shipment_id)}"
        return unwrap(await self._call("DELETE", path, replay_safe=False))

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
            entry = wire.to_wire_shipment(dict(s))
            # an integer, as in OrderDesk's own examples of this endpoint
            entry["order_id"] = int(check_id(f"shipments[{i}].order_id", s.get("order_id")))
            body.append(entry)
        env = await self._call("POST", "/batch-shipments", body=body)
        results = as_list(env.get("results"))
        surface_entries("OrderDesk POST /batch-shipments", results, "order_id", "no shipment was added")
        return results

    # --- inventory -------------------------------------------------------------------------

    async def list_inventory(
        self, limit: int = 50, offset: int = 0, code: str | Sequence[str] | None = None
    ) -> JSON:
        """``GET /inventory-items`` -> ``{inventory_items, total_records, records_returned}`` (ints)."""
        _check_page(limit, offset)
        params: JSON = {"limit": limit, "offset": offset, "code": code}
        env = await self._call("GET", "/inventory-items", query=params)
        items = [wire.normalize_inventory_item(i) for i in dicts(env.get("inventory_items"))]
        returned = as_int(env.get("records_returned"), len(items))
        return {
            "inventory_items": items,
            # OrderDesk sends it as a string, and it has been seen as "0" next to 3 returned items.
            "total_records": max(as_int(env.get("total_records"), returned), offset + returned),
            "records_returned": returned,
        }

    async def find_inventory_by_codes(self, codes: Sequence[str]) -> dict[str, JSON]:
        """The inventory items whose SKU (``code``) is exactly one of ``codes``, by SKU; a SKU that
        exists nowhere is left out.

        OrderDesk's ``code`` filter splits its value on commas, so a SKU such as ``RED,XL`` cannot be
        asked for: such SKUs are found by reading the inventory page by page (500 a page, at most
        :data:`MAX_SCAN_PAGES`). If the inventory is larger than that and one was not found, this raises
        VALIDATION naming it, rather than report an item that may exist as missing. Other SKUs are
        asked for :data:`CODES_PER_REQUEST` at a time.
        """
        wanted = [c for c in dict.fromkeys(str(c) for c in codes) if c]
        found: dict[str, JSON] = {}
        plain = [c for c in wanted if "," not in c and c.strip() == c and c]
        for i in range(0, len(plain), CODES_PER_REQUEST):
            chunk = plain[i : i + CODES_PER_REQUEST]
            page = await self.list_inventory(limit=MAX_PAGE_SIZE, code=",".join(chunk))
            found.update({c: it for it in page["inventory_items"] if (c := str(it.get("code"))) in chunk})
        odd = {c for c in wanted if c not in plain}
        for n in range(MAX_SCAN_PAGES):
            if not odd - set(found):
                return found
            page = await self.list_inventory(limit=MAX_PAGE_SIZE, offset=n * MAX_PAGE_SIZE)
            items = page["inventory_items"]
            found.update({c: it for it in items if (c := str(it.get("code"))) in odd})
            if len(items) < MAX_PAGE_SIZE:
                return found
        missing = sorted(odd - set(found))
        if missing:
            raise ValidationFailed(
                f"SKU {missing[0]!r} contains a comma or spaces at its ends, which OrderDesk's code filter "
                f"cannot ask for, and it is not among the first {MAX_SCAN_PAGES * MAX_PAGE_SIZE:,} "
                "inventory items",
                hint="Name that item by its id instead; nothing was written.",
            )
        return found

    async def get_inventory_item(self, item_id: str | int) -> JSON:
        path = f"/inventory-items/{check_id('item_id', item_id)}"
        return wire.normalize_inventory_item(
            take(await self._call("GET", path), "inventory_item", f"GET {path}")
        )

    async def create_inventory_item(self, item: Mapping[str, Any]) -> JSON:
        """``POST /inventory-items`` -> ``{"message": "Inventory Item Added"}``; sent once."""
        return unwrap(
            await self._call("POST", "/inventory-items", body=wire.to_wire_inventory_item(dict(item)))
        )

    async def update_inventory_item(self, item_id: str | int, item: Mapping[str, Any]) -> JSON:
        """``PUT /inventory-items/{id}``: a full replacement — fields left out are blanked."""
        path = f"/inventory-items/{check_id('item_id', item_id)}"
        return unwrap(
            await self._call("PUT", path, body=wire.to_wire_inventory_item(dict(item)), replay_safe=False)
        )

    async def delete_inventory_item(self, item_id: str | int) -> JSON:
        path = f"/inventory-items/{check_id('item_id', item_id)}"
        return unwrap(await self._call("DELETE", path, replay_safe=False))

    async def batch_update_inventory(self, items: Sequence[Mapping[str, Any]]) -> JSON:
        """``PUT /batch-inventory-items`` (a raw JSON array; each item is a full record with ``id``)."""
        if isinstance(items, Mapping) or not items:
            raise ValidationFailed("items must be a non-empty list")
        body = []
        for i, it in enumerate(items):
            if not isinstance(it, Mapping):
                raise ValidationFailed(f"items[{i}] must be an object")
            entry = wire.to_wire_inventory_item(dict(it))
            entry["id"] = int(check_id(f"items[{i}].id", it.get("id")))
            body.append(entry)
        out = unwrap(await self._call("PUT", "/batch-inventory-items", body=body, replay_safe=False))
        if isinstance(out.get("results"), list):
            out["failed"] = surface_entries(
                "OrderDesk PUT /batch-inventory-items", out["results"], "id", "no inventory item was updated"
            )
        return out

    # --- lookups ---------------------------------------------------------------------------

    async def find_order(self, source_id: str, source_name: str = "") -> JSON | None:
        """The order with this ``source_id`` (and ``source_name``, default OrderDesk's), or None."""
        source_name = source_name or DEFAULT_SOURCE_NAME
        page = await self.list_orders(source_id=source_id, source_name=source_name, limit=50)
        orders: list[JSON] = page["orders"]
        for o in orders:
            name = str(o.get("source_name") or "")
            if str(o.get("source_id")) == source_id and (not name or name.lower() == source_name.lower()):
                return o
        return None

    async def find_inventory_item(self, code: str) -> JSON | None:
        """The inventory item with this SKU (exact, commas and all), or None."""
        return (await self.find_inventory_by_codes([code])).get(code)


# --- pure helpers ------------------------------------------------------------------------------


def _check_page(limit: Any, offset: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500):
        raise ValidationFailed(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ValidationFailed(f"offset must be an integer >= 0, got {offset!r}")
