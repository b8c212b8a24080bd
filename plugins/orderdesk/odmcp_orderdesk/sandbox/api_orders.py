"""Order endpoints: list/search, get, create, full-replacement PUT, delete, history, move (notes §5.3-5.9).

Handlers only translate between the HTTP call and :class:`SandboxState`; payload keys follow the
documented envelopes (``order``, ``orders`` + paging counters, ``total_records`` ...).
"""

from __future__ import annotations

from typing import Any

from . import search
from .app import Call, Route

ID = "([^/]+)"


def list_orders(call: Call) -> dict[str, Any]:
    store = call.store
    total, page, limit, offset = search.list_orders(store, call.query)
    if call.query.get("get_order_history", "") in ("1", "true"):
        page = [{**o, "order_history": store.history.get(o["id"], [])} for o in page]
    return {
        "total_records": total,
        "records_returned": len(page),
        "offset": offset,
        "limit": limit,
        "orders": page,
    }


def get_order(call: Call) -> dict[str, Any]:
    return {"order": call.store.order(call.params[0])}


def create_order(call: Call) -> dict[str, Any]:
    return {"order": call.ctx.state.create_order(call.store, call.body)}


def replace_order(call: Call) -> dict[str, Any]:
    strict = call.ctx.config.strict_concurrency
    return {"order": call.ctx.state.replace_order(call.store, call.params[0], call.body, strict=strict)}


def delete_order(call: Call) -> dict[str, Any]:
    order_id = call.store.order(call.params[0])["id"]
    call.ctx.state.delete_order(call.store, order_id)
    return {"message": f"Order {order_id} Deleted"}


def add_history(call: Call) -> dict[str, Any]:
    total = call.ctx.state.add_history(call.store, call.params[0], call.body)
    order = call.store.order(call.params[0])
    return {"total_records": total, "order": {**order, "order_history": call.store.history[order["id"]]}}


def move_orders(call: Call) -> dict[str, Any]:
    moved, results = call.ctx.state.move_orders(call.store, call.body)
    return {"message": f"{moved} Orders Moved", "results": results}


ROUTES: list[Route] = [
    ("GET", "/orders", list_orders),
    ("POST", "/orders", create_order),
    ("GET", f"/orders/{ID}", get_order),
    ("PUT", f"/orders/{ID}", replace_order),
    ("DELETE", f"/orders/{ID}", delete_order),
    ("POST", f"/orders/{ID}/order-history", add_history),
    ("POST", "/move-orders", move_orders),
]
