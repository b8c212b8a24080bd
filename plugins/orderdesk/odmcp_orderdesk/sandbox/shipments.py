"""Shipments on orders (notes §5.11-5.12): add, replace, delete, batch; duplicate tracking is refused.

Shipments live inside ``order["order_shipments"]`` so ``GET /orders/{id}`` shows them without a join;
adding or changing one is an order write (``date_updated`` moves, the webhook fires).
"""

from __future__ import annotations

from typing import Any

from . import assumptions as A
from . import model as M
from .errors import ApiError
from .state import Order, SandboxState, StoreState

WRITABLE = ("tracking_number", "carrier_code", "shipment_method", "weight", "cost", "status", "tracking_url")

TRACKING_URLS = {
    "ups": "http://wwwapps.ups.com/WebTracking/track?track=yes&trackNums={tn}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={tn}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={tn}",
}


def guess_tracking_url(carrier: str, tracking_number: str) -> str:
    """notes §5.11: the URL is "guessed from tracking number/carrier if omitted"."""
    key = carrier.strip().lower().replace(" ", "")
    if not key and tracking_number.upper().startswith("1Z"):
        key = "ups"
    template = TRACKING_URLS.get(key)
    if template is None or not tracking_number or tracking_number.lower() == "n/a":
        return ""
    return template.format(tn=tracking_number)


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f: M.text(body.get(f)) for f in WRITABLE}
    if not out["tracking_url"]:
        out["tracking_url"] = guess_tracking_url(out["carrier_code"], out["tracking_number"])
    items = body.get("order_items")
    # 2018 shape is "" (notes §5.11); newer integrations send a list of {id|code, quantity}.
    out["order_items"] = items if isinstance(items, list) else M.text(items)
    return out


def find(store: StoreState, order_id: str, shipment_id: str) -> dict[str, Any]:
    for shipment in store.order(order_id)["order_shipments"]:
        if shipment["id"] == shipment_id:
            return shipment  # type: ignore[no-any-return]
    raise ApiError(A.STATUS_NOT_FOUND, A.MSG_SHIPMENT_NOT_FOUND)


def _is_duplicate(order: Order, tracking_number: str, skip_id: str = "") -> bool:
    if not tracking_number or tracking_number.lower() == "n/a":
        return False
    return any(
        s["tracking_number"] == tracking_number and s["id"] != skip_id for s in order["order_shipments"]
    )


def add(state: SandboxState, store: StoreState, order_id: str, body: Any) -> dict[str, Any]:
    order = store.order(order_id)
    if not isinstance(body, dict):
        raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_OBJECT)
    fields = _fields(body)
    if _is_duplicate(order, fields["tracking_number"]):
        raise ApiError(A.STATUS_SHIPMENT_NOT_ADDED, A.MSG_SHIPMENT_NOT_ADDED)
    now = M.utcnow()
    shipment = {
        "id": str(state.next_id("shipment")),
        "order_id": order["id"],
        "store_id": store.store_id,
        "tracking_number": fields["tracking_number"],
        "carrier_code": fields["carrier_code"],
        "shipment_method": fields["shipment_method"],
        "weight": fields["weight"],
        "cost": fields["cost"],
        "status": fields["status"],
        "tracking_url": fields["tracking_url"],
        "label_format": "",
        "label_image": "",
        "print_status": "0",
        "order_items": fields["order_items"],
        "cart_shipment_id": M.text(body.get("cart_shipment_id")),
        "label_shipment_id": "",
        "date_shipped": M.text(body.get("date_shipped")) or now.strftime("%Y-%m-%d"),
        "date_added": M.fmt_ts(now),
    }
    order["order_shipments"].append(shipment)
    state.order_changed(store, order)
    return shipment


def replace(state: SandboxState, store: StoreState, order_id: str, shipment_id: str, body: Any) -> None:
    """Full replacement of the writable fields (like every other PUT); ids and dates are kept."""
    order = store.order(order_id)
    shipment = find(store, order_id, shipment_id)
    if not isinstance(body, dict):
        raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_OBJECT)
    fields = _fields(body)
    if _is_duplicate(order, fields["tracking_number"], skip_id=shipment_id):
        raise ApiError(A.STATUS_SHIPMENT_NOT_ADDED, A.MSG_SHIPMENT_NOT_ADDED)
    shipment.update(fields)
    if body.get("date_shipped"):
        shipment["date_shipped"] = M.text(body["date_shipped"])
    state.order_changed(store, order)


def delete(state: SandboxState, store: StoreState, order_id: str, shipment_id: str) -> None:
    order = store.order(order_id)
    shipment = find(store, order_id, shipment_id)
    order["order_shipments"] = [s for s in order["order_shipments"] if s is not shipment]
    state.order_changed(store, order)


def _batch_order_id(store: StoreState, entry: dict[str, Any]) -> str:
    """An entry names its order by internal ``order_id`` or by ``source_id`` (+``source_name``)."""
    if entry.get("order_id") not in (None, ""):
        return M.text(entry["order_id"])
    source_id = M.text(entry.get("source_id"))
    source_name = M.text(entry.get("source_name")) or "Order Desk"
    return store.by_source.get((source_name, source_id), "") if source_id else ""


def batch(state: SandboxState, store: StoreState, body: Any) -> list[dict[str, Any]]:
    """``POST /batch-shipments``: a raw array in, one result per entry (HTTP 200 even on errors)."""
    if not isinstance(body, list):
        raise ApiError(A.STATUS_VALIDATION, A.MSG_NEEDS_ARRAY)
    results: list[dict[str, Any]] = []
    for entry in body:
        order_id = _batch_order_id(store, entry) if isinstance(entry, dict) else ""
        result: dict[str, Any] = {
            "order_id": entry.get("order_id", order_id) if isinstance(entry, dict) else None
        }
        try:
            shipment = add(state, store, order_id, entry)
        except ApiError as exc:
            result.update(status="error", message=exc.message)
        else:
            result.update(status="success", message="Shipment Added", shipment_id=shipment["id"])
        results.append(result)
    return results
