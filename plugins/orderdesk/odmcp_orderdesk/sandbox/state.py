"""In-memory OrderDesk stores: orders, items, history, folder moves, id counters.

This is the behaviour the notes pin down (create defaults and validation, full-replacement PUT, item
upsert, history cap, move-orders) kept free of HTTP so tests can also drive it from Python. Every
mutation of an order goes through :meth:`SandboxState.order_changed`, which stamps ``date_updated`` with
the wall-clock second (as OrderDesk does: two writes in one second share it) and fires the
``on_change`` hook (used for webhook posts).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import assumptions as A
from . import model as M
from .config import SandboxConfig, StoreConfig
from .errors import ApiError

Order = dict[str, Any]
OnChange = Callable[["StoreState", Order], None]

HISTORY_CAP = 250  # notes §5.8 (MED)
DEFAULT_SOURCE_NAME = "Order Desk"
DEFAULT_PAYMENT_STATUS = "Captured"


@dataclass
class StoreState:
    """One store's data. Orders are kept in wire shape (string ids, ``[]`` empty maps)."""

    store_id: str
    api_key: str
    name: str
    folders: dict[int, str]
    timezone: str = "America/Los_Angeles"
    orders: dict[str, Order] = field(default_factory=dict)
    history: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: (source_name, source_id) -> order id, for duplicate detection on create.
    by_source: dict[tuple[str, str], str] = field(default_factory=dict)
    inventory: dict[int, dict[str, Any]] = field(default_factory=dict)
    inventory_codes: dict[str, int] = field(default_factory=dict)
    #: lower-cased email -> number of orders with it (``email_count`` on create, without a scan).
    email_counts: dict[str, int] = field(default_factory=dict)

    def count_email(self, email: str, delta: int) -> None:
        key = email.lower()
        if key:
            self.email_counts[key] = self.email_counts.get(key, 0) + delta

    @property
    def default_folder(self) -> int:
        return next(iter(self.folders))

    def order(self, order_id: str) -> Order:
        found = self.orders.get(str(order_id))
        if found is None:
            raise ApiError(A.STATUS_NOT_FOUND, A.MSG_ORDER_NOT_FOUND)
        return found

    def folder_id_for(self, folder_id: Any = None, folder_name: Any = None) -> int:
        """Resolve a destination folder by id or exact name, or raise 400 Folder Not Found."""
        if folder_id not in (None, ""):
            try:
                fid = int(folder_id)
            except (TypeError, ValueError):
                fid = -1
            if fid in self.folders:
                return fid
        elif folder_name not in (None, ""):
            for fid, name in self.folders.items():
                if name == folder_name:
                    return fid
        raise ApiError(A.STATUS_VALIDATION, A.MSG_FOLDER_NOT_FOUND)


def copy_json(value: Any) -> Any:
    """Deep copy through JSON, so callers never hold references into the live state."""
    return msgspec.json.decode(msgspec.json.encode(value))


class SandboxState:
    """All stores plus the global id counters (OrderDesk ids are unique across stores)."""

    def __init__(self, config: SandboxConfig, on_change: OnChange | None = None) -> None:
        self.config = config
        self.on_change = on_change
        self.stores: dict[str, StoreState] = {}
        self.reset()

    # --- setup ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Drop everything and re-seed from the config (deterministic for a given ``seed``)."""
        from .seed import seed_store

        self.stores = {}
        self._ids = {"order": 200000, "item": 700000, "shipment": 30000, "inventory": 2500}
        hook, self.on_change = self.on_change, None  # seeding must not post webhooks
        try:
            for index, store_cfg in enumerate(self.config.stores):
                store = self.add_store(store_cfg)
                seed_store(self, store, store_cfg, self.config, index)
        finally:
            self.on_change = hook

    def add_store(self, cfg: StoreConfig) -> StoreState:
        store = StoreState(cfg.store_id, cfg.api_key, cfg.name, dict(cfg.folders), cfg.timezone)
        self.stores[cfg.store_id] = store
        return store

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def authenticate(self, store_id: str | None, api_key: str | None) -> StoreState | None:
        store = self.stores.get(store_id or "")
        if store is None or not api_key or api_key != store.api_key:
            return None
        return store

    def store(self, store_id: str) -> StoreState:
        return self.stores[str(store_id)]

    def get_order(self, store_id: str, order_id: str, with_history: bool = False) -> Order | None:
        """A deep copy of one order (or ``None``), optionally with ``order_history``."""
        store = self.stores.get(str(store_id))
        order = store.orders.get(str(order_id)) if store else None
        if store is None or order is None:
            return None
        out: Order = copy_json(order)
        if with_history:
            out["order_history"] = copy_json(store.history.get(str(order_id), []))
        return out

    # --- orders -----------------------------------------------------------------------------------

    def string_numbers(self, order_id: str) -> bool:
        """Whether this order's item prices and quantities are JSON strings (``config.string_numbers``).

        Decided per order id from the seed (crc32, stable across runs and processes)."""
        share = self.config.string_numbers
        if share <= 0 or share >= 1:
            return share >= 1
        return zlib.crc32(f"{self.config.seed}:{order_id}".encode()) % 10_000 < share * 10_000

    def order_changed(self, store: StoreState, order: Order) -> None:
        """After any change to ``order``: stamp ``date_updated``, then post it (webhook)."""
        order["date_updated"] = M.stamp()
        self._saved(store, order)

    def _saved(self, store: StoreState, order: Order) -> None:
        M.item_numbers(order, self.string_numbers(order["id"]))
        if self.on_change is not None:
            self.on_change(store, order)

    def _items(self, raw_items: Any, existing: dict[str, Order]) -> list[Order]:
        """Upsert by id (notes §5.6): known id -> updated in place of the old one, else a new item."""
        if raw_items is None or raw_items == "":
            raw_items = []
        if not isinstance(raw_items, list):
            raise ApiError(A.STATUS_VALIDATION, "order_items must be an array")
        out: list[Order] = []
        used: set[str] = set()
        for raw in raw_items:
            item_id = M.text(raw.get("id")) if isinstance(raw, dict) else ""
            if item_id not in existing or item_id in used:
                item_id = str(self.next_id("item"))
            used.add(item_id)
            out.append(M.order_item(raw, item_id))
        return out

    def create_order(self, store: StoreState, body: Any) -> Order:
        """``POST /orders`` (notes §5.5): validate, fill defaults, compute totals."""
        if not isinstance(body, dict):
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_OBJECT)
        raw_items = body.get("order_items")
        if not isinstance(raw_items, list) or not raw_items:
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_ITEMS)
        fields = M.order_fields(body)
        ship_blank = M.is_blank_address(body.get("shipping"))
        cust_blank = M.is_blank_address(body.get("customer"))
        if cust_blank and not ship_blank:
            fields["customer"] = {f: fields["shipping"][f] for f in M.CUSTOMER_FIELDS}
        elif ship_blank and not cust_blank:
            fields["shipping"] = {f: fields["customer"].get(f, "") for f in M.SHIPPING_FIELDS}
        if not (M.has_name(fields["shipping"]) or M.has_name(fields["customer"])):
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_NAME)
        fields["source_name"] = fields["source_name"] or DEFAULT_SOURCE_NAME
        if fields["source_id"]:
            existing = store.by_source.get((fields["source_name"], fields["source_id"]))
            if existing is not None:
                raise ApiError(A.STATUS_DUPLICATE, A.MSG_DUPLICATE_ORDER.format(order_id=existing))
        folder_raw = body.get("folder_id")
        folder_id = store.default_folder if folder_raw in (None, "", 0) else store.folder_id_for(folder_raw)
        now = M.fmt_ts(M.utcnow())
        date_added = now
        if body.get("date_added"):
            date_added = M.fmt_ts(M.parse_query_date("date_added", M.text(body["date_added"])))
        items = self._items(raw_items, {})
        order_id = str(self.next_id("order"))
        fields["source_id"] = fields["source_id"] or order_id
        fields["payment_status"] = fields["payment_status"] or DEFAULT_PAYMENT_STATUS
        email = fields["email"].lower()
        same_email = store.email_counts.get(email, 0) if email else 0
        order: Order = {
            "id": order_id,
            **fields,
            "email_count": str(same_email + 1 if email else 0),
            "folder_id": folder_id,
            "date_added": date_added,
            "date_updated": max(now, date_added),
            "order_items": items,
            "order_shipments": [],
        }
        M.compute_totals(order)
        if body.get("processor_balance") in (None, ""):
            order["processor_balance"] = order["order_total"]
        order = M.layout(order)
        store.orders[order_id] = order
        store.count_email(order["email"], +1)
        store.history[order_id] = []
        store.by_source[(order["source_name"], order["source_id"])] = order_id
        self._saved(store, order)
        return order

    def replace_order(
        self, store: StoreState, order_id: str, body: Any, *, strict: bool = False, keep_folder: bool = True
    ) -> Order:
        """``PUT /orders/{id}`` — full replacement (notes §5.6).

        Omitted fields are blanked; an absent ``order_items`` key removes every item (open question 4:
        this is the literal reading of "parts left out will be updated as blank"); ``order_shipments``
        is ignored; ``folder_id`` is ignored (open question 5: the order keeps its folder, use
        ``/move-orders``) unless ``keep_folder`` is False (direct "UI" edits).
        """
        old = store.order(order_id)
        if not isinstance(body, dict):
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_OBJECT)
        if strict and M.text(body.get("date_updated")) != old["date_updated"]:
            raise ApiError(A.STATUS_CONFLICT, A.MSG_CONFLICT)
        fields = M.order_fields(body)
        existing = {i["id"]: i for i in old["order_items"]}
        items = self._items(body.get("order_items"), existing)
        fields["source_name"] = fields["source_name"] or DEFAULT_SOURCE_NAME
        fields["source_id"] = fields["source_id"] or old["id"]
        folder_id = old["folder_id"] if keep_folder else store.folder_id_for(body.get("folder_id"))
        order: Order = {
            "id": old["id"],
            **fields,
            "email_count": old["email_count"],
            "folder_id": folder_id,
            "date_added": old["date_added"],
            "date_updated": old["date_updated"],
            "order_items": items,
            "order_shipments": old["order_shipments"],
        }
        M.compute_totals(order)
        order = M.layout(order)
        old_key = (old["source_name"], old["source_id"])
        if store.by_source.get(old_key) == old["id"]:
            del store.by_source[old_key]
        store.by_source.setdefault((order["source_name"], order["source_id"]), old["id"])
        store.count_email(old["email"], -1)
        store.count_email(order["email"], +1)
        store.orders[old["id"]] = order
        self.order_changed(store, order)
        return order

    def edit_order(self, store: StoreState, order_id: str, changes: dict[str, Any]) -> Order:
        """Change an order "as if from the OrderDesk UI": merge ``changes`` into it and save.

        Address objects (``shipping``/``customer``/``return_address``) are merged key by key; other keys
        (including ``order_items``, ``checkout_data``, ``folder_id``) replace the current value.
        """
        merged: Order = copy_json(store.order(order_id))
        for key, value in changes.items():
            if key in ("shipping", "customer", "return_address") and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        return self.replace_order(store, order_id, merged, keep_folder=False)

    def touch_order(self, store: StoreState, order_id: str) -> Order:
        """Bump ``date_updated`` (and post the webhook) without changing anything else."""
        order = store.order(order_id)
        self.order_changed(store, order)
        return order

    def delete_order(self, store: StoreState, order_id: str) -> None:
        order = store.order(order_id)
        del store.orders[order["id"]]
        store.count_email(order["email"], -1)
        store.history.pop(order["id"], None)
        key = (order["source_name"], order["source_id"])
        if store.by_source.get(key) == order["id"]:
            del store.by_source[key]

    def add_history(self, store: StoreState, order_id: str, body: Any) -> int:
        """Append a history note, keeping the newest 250 (notes §5.8). Not an order write."""
        order = store.order(order_id)
        if not isinstance(body, dict) or not M.text(body.get("note")).strip():
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_NOTE)
        source = M.text(body.get("source_name")) or "API"
        return self._history(store, order["id"], M.text(body["note"]), source)

    def _history(self, store: StoreState, order_id: str, note: str, source_name: str) -> int:
        entries = store.history.setdefault(order_id, [])
        entries.append({"source_name": source_name, "note": note, "date_added": M.fmt_ts(M.utcnow())})
        if len(entries) > HISTORY_CAP:
            del entries[: len(entries) - HISTORY_CAP]
        return len(entries)

    def move_orders(self, store: StoreState, body: Any) -> tuple[int, list[dict[str, Any]]]:
        """``POST /move-orders`` (notes §5.9): per-order results, a history entry per moved order."""
        if not isinstance(body, dict):
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_OBJECT)
        ids = body.get("order_id_list")
        if not isinstance(ids, list) or not ids:
            raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_ORDER_LIST)
        dest = store.folder_id_for(body.get("destination_folder_id"), body.get("destination_folder_name"))
        dest_name = store.folders[dest]
        moved, results = 0, []
        for raw_id in ids:
            order = store.orders.get(M.text(raw_id))
            if order is None:
                results.append({"order_id": raw_id, "message": A.MSG_ORDER_NOT_FOUND, "status": "error"})
                continue
            original = order["folder_id"]
            order["folder_id"] = dest
            source = store.folders.get(original, str(original))
            self._history(store, order["id"], f"Order moved from {source} to {dest_name}", "API")
            self.order_changed(store, order)
            results.append(
                {
                    "order_id": raw_id,
                    "message": f"Order Moved to {dest_name} Folder",
                    "original_folder_id": original,
                }
            )
            moved += 1
        return moved, results

    # --- order items ------------------------------------------------------------------------------

    def item(self, store: StoreState, order_id: str, item_id: str) -> Order:
        for item in store.order(order_id)["order_items"]:
            if item["id"] == item_id:
                return item  # type: ignore[no-any-return]
        raise ApiError(A.STATUS_NOT_FOUND, A.MSG_ITEM_NOT_FOUND)

    def add_item(self, store: StoreState, order_id: str, body: Any) -> Order:
        order = store.order(order_id)
        item = M.order_item(body, str(self.next_id("item")))
        order["order_items"].append(item)
        M.compute_totals(order)
        self.order_changed(store, order)
        return item

    def replace_item(self, store: StoreState, order_id: str, item_id: str, body: Any) -> Order:
        """Full replacement of one item (notes §5.10 leaves this open; other PUTs replace)."""
        order = store.order(order_id)
        old = self.item(store, order_id, item_id)
        new = M.order_item(body, item_id)
        order["order_items"] = [new if i is old else i for i in order["order_items"]]
        M.compute_totals(order)
        self.order_changed(store, order)
        return new

    def delete_item(self, store: StoreState, order_id: str, item_id: str) -> None:
        order = store.order(order_id)
        old = self.item(store, order_id, item_id)
        order["order_items"] = [i for i in order["order_items"] if i is not old]
        M.compute_totals(order)
        self.order_changed(store, order)
