"""Deterministic demo data: realistic orders and inventory for a store.

Demos and benchmarks need orders that look like a real shop's (addresses, variations, discounts,
notes, shipments, several folders, both empty-``[]`` and filled maps), and tests need the same data on
every run, so everything comes from ``random.Random(seed)``. Orders are created through
:meth:`SandboxState.create_order`, so seeded data obeys the same rules as API-created data.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from . import inventory, shipments
from . import model as M
from .config import SandboxConfig, StoreConfig
from .state import SandboxState, StoreState

FIRST = ["Ava", "Liam", "Mia", "Noah", "Zoe", "Ethan", "Chloe", "Lucas", "Grace", "Owen", "Ivy", "Leo"]
LAST = ["Nguyen", "Smith", "Garcia", "Patel", "Johnson", "Kim", "Rossi", "Dubois", "Okafor", "Larsen"]
COMPANIES = ["", "", "", "Acme Corp", "Blue Fin LLC", "Northwind Traders"]
PLACES = [
    ("San Jose", "CA", "95131"), ("Austin", "TX", "78701"), ("Portland", "OR", "97205"),
    ("Denver", "CO", "80202"), ("Nashville", "TN", "37203"), ("Boston", "MA", "02108"),
    ("Madison", "WI", "53703"), ("Tampa", "FL", "33602"),
]  # fmt: skip
STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Ln", "Cedar Blvd", "Elm St"]
#: name, code, price, weight, category, variation options
PRODUCTS: list[tuple[str, str, float, float, str, dict[str, list[str]]]] = [
    (
        "Classic T-Shirt",
        "TSHIRT",
        19.0,
        0.4,
        "apparel",
        {"Size": ["S", "M", "L", "XL"], "Color": ["Black", "White"]},
    ),
    ("Hoodie", "HOODIE", 45.0, 1.1, "apparel", {"Size": ["M", "L"]}),
    ("Coffee Mug", "MUG-11OZ", 12.5, 0.9, "kitchen", {}),
    ("Canvas Tote", "TOTE", 15.99, 0.3, "accessories", {"Color": ["Natural", "Navy"]}),
    ("Sticker Pack", "STICKERS", 4.25, 0.05, "DEFAULT", {}),
    ("Water Bottle", "BOTTLE-750", 22.0, 0.5, "kitchen", {"Color": ["Steel", "Teal"]}),
    ("Gift Card", "GIFT-25", 25.0, 0.0, "gift", {}),
    ("Poster 18x24", "POSTER-1824", 18.0, 0.2, "prints", {"Finish": ["Matte", "Gloss"]}),
]
SOURCES = [("Shopify", "#{n}"), ("WooCommerce", "{n}"), ("Order Desk", ""), ("Amazon", "114-{n}-7730")]
SHIP_METHODS = ["USPS Priority", "UPS Ground", "FedEx Home Delivery", "Free Shipping"]
CARRIERS = {
    "USPS Priority": "USPS",
    "UPS Ground": "UPS",
    "FedEx Home Delivery": "FedEx",
    "Free Shipping": "USPS",
}
FOLDER_WEIGHTS = [0.55, 0.2, 0.18, 0.07]


def _address(rng: random.Random) -> dict[str, str]:
    city, state, postal = rng.choice(PLACES)
    return {
        "first_name": rng.choice(FIRST),
        "last_name": rng.choice(LAST),
        "company": rng.choice(COMPANIES),
        "address1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
        "address2": rng.choice(["", "", "Apt 4B", "Suite 200"]),
        "city": city,
        "state": state,
        "postal_code": postal,
        "country": "US",
        "phone": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
    }


def _items(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for name, code, price, weight, category, options in rng.sample(PRODUCTS, rng.randint(1, 3)):
        variations = {k: rng.choice(v) for k, v in options.items()}
        suffix = "-".join(v[:1] for v in variations.values())
        items.append(
            {
                "name": name,
                "code": f"{code}-{suffix}" if suffix else code,
                "price": price,
                "quantity": rng.choice([1, 1, 1, 2, 3]),
                "weight": weight,
                "category_code": category,
                "delivery_type": "noship" if category == "gift" else "ship",
                "variation_list": variations,
                "metadata": {"image": f"https://cdn.example.com/{code.lower()}.jpg"}
                if rng.random() < 0.5
                else {},
            }
        )
    return items


def _order_body(rng: random.Random, n: int, date_added: str) -> dict[str, Any]:
    customer = _address(rng)
    shipping = dict(customer) if rng.random() < 0.75 else _address(rng)
    source_name, source_pattern = rng.choice(SOURCES)
    method = rng.choice(SHIP_METHODS)
    body: dict[str, Any] = {
        "email": f"{customer['first_name'].lower()}.{customer['last_name'].lower()}@example.com",
        "source_name": source_name,
        "source_id": source_pattern.format(n=1000 + n),
        "shipping_method": method,
        "shipping_total": 0 if method == "Free Shipping" else rng.choice([5.95, 7.5, 11.17]),
        "handling_total": rng.choice([0, 0, 0.5]),
        "tax_total": round(rng.uniform(0, 6), 2),
        "payment_type": rng.choice(["Visa", "MasterCard", "PayPal", "American Express"]),
        "payment_status": rng.choice(["Captured", "Captured", "Approved", "Authorized"]),
        "cc_number": f"41111111111{rng.randint(10000, 99999)}",
        "cc_exp": f"{rng.randint(1, 12):02d}/20{rng.randint(27, 31)}",
        "processor_response": f"Stripe: ch_{rng.randint(10**9, 10**10)}",
        "customer_id": str(rng.randint(100000, 999999)),
        "ip_address": f"203.0.113.{rng.randint(1, 254)}",
        "date_added": date_added,
        "customer": customer,
        "shipping": {**shipping, "address3": "", "address4": ""},
        "return_address": {
            "title": "Demo Store",
            "name": "Returns Dept",
            "company": "Demo Store Inc",
            "address1": "817 E Maple Ln",
            "city": "Knoxville",
            "state": "TN",
            "postal_code": "37902",
            "country": "US",
        },
        "checkout_data": {"Gift Message": "Happy Birthday!"} if rng.random() < 0.3 else {},
        "order_metadata": {"fraud_protection_score": rng.randint(0, 40)} if rng.random() < 0.5 else [],
        "discount_list": [{"name": "Welcome", "code": "WELCOME10", "amount": "2.50"}]
        if rng.random() < 0.2
        else [],
        "order_notes": [],
        "order_items": _items(rng),
    }
    if rng.random() < 0.25:
        body["order_notes"] = [
            {
                "date_added": date_added,
                "username": "Customer Service",
                "content": "Customer asked for gift wrap",
            }
        ]
    return body


def seed_store(
    state: SandboxState, store: StoreState, cfg: StoreConfig, config: SandboxConfig, index: int
) -> None:
    """Fill ``store`` with ``seed_orders`` orders and ``seed_inventory`` inventory items."""
    rng = random.Random(config.seed * 1000 + index)
    anchor = M.parse_ts(config.seed_anchor) if config.seed_anchor else M.utcnow()
    n_orders = config.seed_orders if cfg.seed_orders is None else cfg.seed_orders
    n_inventory = config.seed_inventory if cfg.seed_inventory is None else cfg.seed_inventory
    folders = list(store.folders)
    for n in range(n_orders):
        added = anchor - timedelta(days=60) + timedelta(minutes=int(n * 60 * 24 * 59 / max(n_orders, 1)))
        added += timedelta(seconds=rng.randint(0, 3599))
        order = state.create_order(store, _order_body(rng, n, M.fmt_ts(added)))
        folder = rng.choices(folders, weights=FOLDER_WEIGHTS[: len(folders)] or None)[0]
        if folder != folders[0]:
            state.move_orders(store, {"order_id_list": [order["id"]], "destination_folder_id": folder})
        if len(folders) > 2 and folder == folders[2]:
            carrier = CARRIERS[order["shipping_method"]]
            tracking = (
                f"1Z{rng.randint(10**9, 10**10)}" if carrier == "UPS" else str(rng.randint(10**11, 10**12))
            )
            method = order["shipping_method"]
            shipment = {"tracking_number": tracking, "carrier_code": carrier, "shipment_method": method}
            shipments.add(state, store, order["id"], shipment)
        updated = min(added + timedelta(hours=rng.randint(0, 72)), anchor)
        order = store.orders[order["id"]]
        order["date_updated"] = M.fmt_ts(updated)
        for shipment in order["order_shipments"]:
            shipment["date_added"], shipment["date_shipped"] = (
                order["date_updated"],
                order["date_updated"][:10],
            )
        for entry in store.history[order["id"]]:
            entry["date_added"] = order["date_updated"]
    for n in range(n_inventory):
        name, code, price, weight, _category, options = PRODUCTS[n % len(PRODUCTS)]
        variant = n // len(PRODUCTS)
        values = [v[variant % len(v)] for v in options.values()]
        body = {
            "name": f"{name}, {' / '.join(values)}" if values else name,
            "code": f"{code}-{'-'.join(v[:1] for v in values)}-{variant}" if values else f"{code}-{variant}",
            "price": price,
            "cost": round(price * 0.45, 2),
            "weight": weight,
            "stock": rng.randint(0, 120),
            "update_source": rng.choice(["Manual", "Shopify", "API"]),
            "location": rng.choice(["", "Warehouse A", "Warehouse B"]),
            "metadata": {"bin": f"B{rng.randint(1, 40)}"} if rng.random() < 0.4 else [],
        }
        inventory.create(state, store, body, date_added=M.fmt_ts(anchor - timedelta(days=90 - n)))
