"""Connection test, store settings, order items, shipments and inventory endpoints (notes §5.1-5.2,
§5.10-5.13). Writes on these answer with a ``message`` only, never the object, as documented.
"""

from __future__ import annotations

from typing import Any

from . import inventory, shipments
from . import model as M
from .app import Call, Route

ID = "([^/]+)"

#: notes §5.2, minus ``api_key`` and the smtp credentials the current API no longer returns.
STORE_SETTINGS: dict[str, Any] = {
    "app_version": "2.0",
    "locale_code": "en_US",
    "timezone": "America/Los_Angeles",
    "store_country": "US",
    "store_email": "orders@example.com",
    "admin_email": "admin@example.com",
    "normalize_capitalization": "1",
    "normalize_phone_numbers": "0",
    "date_format": "Y-m-d H:i:s",
    "short_date_format": "Y-m-d",
    "orders_per_page": 50,
    "report_frequency": "",
    "dashboard_report_type": "daily",
    "store_url": "https://shop.example.com",
    "custom_css": "",
    "security_po_box_warn": "",
    "security_different_address_warn": "",
    "security_different_country_warn": "",
    "security_quantity_warn": 0,
    "limit_address_field_char_length": 0,
    "country_name_format": "0",
    "all_orders_name": "All Orders",
    "all_orders_column_view": [],
    "shipping_methods": [],
    "default_checkout_data_fields": [],
    "auto_update_stock_count": "",
    "auto_create_inventory_items": "",
    "normalizeCapitalization": 1,
}


def connection_test(call: Call) -> dict[str, Any]:
    return {"message": "Connection Successful", "current_date_time": M.fmt_ts(M.utcnow())}


def get_store(call: Call) -> dict[str, Any]:
    store = call.store
    folders = {str(fid): name for fid, name in store.folders.items()}
    return {
        "store": {
            "id": store.store_id,
            "name": store.name,
            "settings": {**STORE_SETTINGS, "timezone": store.timezone},
            "folders": folders,
        }
    }


# --- order items ----------------------------------------------------------------------------------


def list_items(call: Call) -> dict[str, Any]:
    items = call.store.order(call.params[0])["order_items"]
    return {"total_records": len(items), "order_items": items}


def get_item(call: Call) -> dict[str, Any]:
    return {"order_item": call.ctx.state.item(call.store, call.params[0], call.params[1])}


def add_item(call: Call) -> dict[str, Any]:
    call.ctx.state.add_item(call.store, call.params[0], call.body)
    return {"message": "Order Item Added"}


def replace_item(call: Call) -> dict[str, Any]:
    call.ctx.state.replace_item(call.store, call.params[0], call.params[1], call.body)
    return {"message": "Order Item Updated"}


def delete_item(call: Call) -> dict[str, Any]:
    call.ctx.state.delete_item(call.store, call.params[0], call.params[1])
    return {"message": f"Order Item {call.params[1]} Deleted"}


# --- shipments ------------------------------------------------------------------------------------


def list_shipments(call: Call) -> dict[str, Any]:
    found = call.store.order(call.params[0])["order_shipments"]
    return {"total_records": len(found), "shipments": found}


def get_shipment(call: Call) -> dict[str, Any]:
    return {"shipment": shipments.find(call.store, call.params[0], call.params[1])}


def add_shipment(call: Call) -> dict[str, Any]:
    shipments.add(call.ctx.state, call.store, call.params[0], call.body)
    return {"message": "Shipment Added"}


def replace_shipment(call: Call) -> dict[str, Any]:
    shipments.replace(call.ctx.state, call.store, call.params[0], call.params[1], call.body)
    return {"message": "Shipment Updated"}


def delete_shipment(call: Call) -> dict[str, Any]:
    shipments.delete(call.ctx.state, call.store, call.params[0], call.params[1])
    return {"message": f"Shipment {call.params[1]} Deleted"}


def batch_shipments(call: Call) -> dict[str, Any]:
    return {"results": shipments.batch(call.ctx.state, call.store, call.body)}


# --- inventory ------------------------------------------------------------------------------------


def list_inventory(call: Call) -> dict[str, Any]:
    total, page = inventory.search(call.store, call.query)
    # notes §5.13: total_records is a string in every capture.
    return {"records_returned": len(page), "total_records": str(total), "inventory_items": page}


def get_inventory(call: Call) -> dict[str, Any]:
    return {"records_returned": 1, "inventory_item": inventory.get(call.store, call.params[0])}


def add_inventory(call: Call) -> dict[str, Any]:
    inventory.create(call.ctx.state, call.store, call.body)
    return {"message": "Inventory Item Added"}


def replace_inventory(call: Call) -> dict[str, Any]:
    inventory.replace(call.store, call.params[0], call.body)
    return {"message": "Inventory Item Updated"}


def delete_inventory(call: Call) -> dict[str, Any]:
    item_id = inventory.delete(call.store, call.params[0])
    return {"message": f"Inventory Item {item_id} Deleted"}


def batch_inventory(call: Call) -> dict[str, Any]:
    results = inventory.batch(call.ctx.state, call.store, call.body)
    return {"message": "Inventory Items Updated", "results": results}


ROUTES: list[Route] = [
    ("GET", "/test", connection_test),
    ("GET", "/store", get_store),
    ("GET", f"/orders/{ID}/order-items", list_items),
    ("POST", f"/orders/{ID}/order-items", add_item),
    ("GET", f"/orders/{ID}/order-items/{ID}", get_item),
    ("PUT", f"/orders/{ID}/order-items/{ID}", replace_item),
    ("DELETE", f"/orders/{ID}/order-items/{ID}", delete_item),
    ("GET", f"/orders/{ID}/shipments", list_shipments),
    ("POST", f"/orders/{ID}/shipments", add_shipment),
    ("GET", f"/orders/{ID}/shipments/{ID}", get_shipment),
    ("PUT", f"/orders/{ID}/shipments/{ID}", replace_shipment),
    ("DELETE", f"/orders/{ID}/shipments/{ID}", delete_shipment),
    ("POST", "/batch-shipments", batch_shipments),
    ("GET", "/inventory-items", list_inventory),
    ("POST", "/inventory-items", add_inventory),
    ("GET", f"/inventory-items/{ID}", get_inventory),
    ("PUT", f"/inventory-items/{ID}", replace_inventory),
    ("DELETE", f"/inventory-items/{ID}", delete_inventory),
    ("PUT", "/batch-inventory-items", batch_inventory),
]
