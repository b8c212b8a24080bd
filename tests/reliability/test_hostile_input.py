"""Hostile input: Hypothesis-generated arguments for every tool the server lists.

Arguments are wrong types, nulls, huge strings and numbers, unicode, path tricks in ids
(``../store``, ``1?x=``, ``%2e%2e``, ``1/../../x``...), negative or huge limits, and nested garbage in
the object arguments; each generator also produces real ids and plausible objects often enough that
the checks deeper in the tools (and the upstream writes) are reached too.

For every call:

* the result is valid, or an error carrying a documented code (never INTERNAL, never a traceback);
* no request reaches the sandbox with a path other than ``/word(/digits)...`` or an unknown query
  parameter (no ``..``, ``%2e``, ``?`` or ``#`` smuggled through an id);
* no invalid write reaches upstream: a write the sandbox *rejects* is only allowed for business
  rules the gateway cannot check locally (unknown id, duplicate source_id / SKU / tracking number,
  unknown folder), and a call that fails has applied no write at all.

Hypothesis runs in a worker thread and drives one gateway + one client on the test's event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.testing import connect
from plugins.orderdesk.client import ORDER_FILTERS

DOCUMENTED = {"NOT_FOUND", "VALIDATION", "CONFLICT", "RATE_LIMITED", "UPSTREAM", "AUTH", "READ_ONLY",
              "CONFIRMATION_REQUIRED"}
WRITE_METHODS = {"POST", "PUT", "DELETE"}
SAFE_PATH = re.compile(r"^(/[a-z][a-z-]*(/[0-9]{1,20})?)+$")
QUERY_KEYS = ORDER_FILTERS | {"code"}
#: upstream rejections that only OrderDesk can decide (existence, uniqueness, store folders)
BUSINESS_REJECTIONS = ("Not Found", "Duplicate Order", "already exists", "Shipment Not Added")
EXAMPLES_PER_TOOL = 25

PATH_TRICKS = ["../store", "1?x=", "%2e%2e", "1/../../x", "..", "1%2F..%2Fstore", "1#frag", "1&limit=1",
               "%2E%2E%2F", "1 ", " 1", "1\n", "1\x00", "١٢٣", "１２３", "0x10", "1e3", "-1", "+1", "1.0", "",
               "123456789012345678901", "1;DROP TABLE", "/", "\\..\\", "1/", "?", "*"]
HUGE = ["x" * 100_000, "9" * 5_000, "é" * 20_000, "\U0001f4a5" * 10_000]
EXTREME_INTS = [0, -1, -(2**63), 2**63, 2**64 + 1, 10**30, 501, 10_000_001]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(EXTREME_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(PATH_TRICKS + HUGE),
)
garbage = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
text_ish = st.one_of(st.text(max_size=40), st.sampled_from(PATH_TRICKS + HUGE), garbage)
money = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6), garbage)


def record(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A plausible object (any subset of ``fields`` plus stray keys) or plain garbage."""
    plausible = st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=fields),
        st.dictionaries(st.text(max_size=12), garbage, max_size=2),
    )
    return st.one_of(plausible, plausible, garbage)


def strategies(pools: dict[str, list[str]]) -> dict[str, st.SearchStrategy[Any]]:
    def ident(kind: str) -> st.SearchStrategy[Any]:
        return st.one_of(st.sampled_from(pools[kind]), st.sampled_from(PATH_TRICKS), garbage)

    address = record({"first_name": text_ish, "last_name": text_ish, "company": text_ish, "address1": text_ish,
                      "city": text_ish, "country": text_ish, "postal_code": text_ish})
    item = record({"id": ident("item"), "name": text_ish, "code": text_ish, "price": money, "quantity": money,
                   "weight": money, "_delete": st.one_of(st.booleans(), garbage),
                   "variation_list": garbage, "metadata": garbage, "delivery_type": text_ish})
    order_fields = {"email": text_ish, "shipping": address, "customer": address, "order_metadata": garbage,
                    "checkout_data": garbage, "order_items": st.one_of(st.lists(item, max_size=3), garbage),
                    "folder_id": st.one_of(st.sampled_from([1, 2, 99, 0, -1]), garbage),
                    "source_id": text_ish, "shipping_method": text_ish, "order_total": money,
                    "date_updated": text_ish, "id": ident("order"), "order_shipments": garbage,
                    "order_history": garbage, "shipping_total": money, "tax_total": money}
    return {
        "order_id": ident("order"),
        "inventory_id": ident("inventory"),
        "item_id": ident("item"),
        "shipment_id": ident("shipment"),
        "order_ids": st.one_of(st.lists(ident("order"), min_size=0, max_size=5), garbage),
        "store": st.one_of(st.sampled_from([None, "demo", "store2", "../store", "*", "", "DEMO"]), garbage),
        "limit": st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(EXTREME_INTS), garbage),
        "offset": st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(EXTREME_INTS), garbage),
        "folder_id": st.one_of(st.sampled_from([1, 2, 4, 99, 0, -1, 2**64]), garbage),
        "confirm": st.one_of(st.booleans(), st.booleans(), garbage),
        "dry_run": st.one_of(st.booleans(), garbage),
        "note": text_ish,
        "idempotency_key": st.one_of(st.text(min_size=8, max_size=20), garbage),
        "changes": record(order_fields),
        "order": record(order_fields),
        "item": item,
        "shipment": record({"tracking_number": text_ish, "carrier_code": text_ish, "shipment_method": text_ish,
                            "weight": money, "cost": money, "status": text_ish, "tracking_url": text_ish}),
        "inventory": record({"name": text_ish, "code": text_ish, "price": money, "stock": money,
                             "location": text_ish, "metadata": garbage, "id": ident("inventory")}),
    }


def args_for(tool: Any, strat: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    props = list((tool.input_schema or {}).get("properties", {}))
    inventory = tool.name.startswith("inventory_")
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name in props:
        key = name
        if inventory and name == "item_id":
            key = "inventory_id"
        elif inventory and name in ("changes", "item"):
            key = "inventory"
        fields[name] = strat.get(key, text_ish)
    required = list((tool.input_schema or {}).get("required") or [])
    # required arguments are usually present (so the deeper checks run) and sometimes missing
    return st.builds(
        lambda present, optional, extra: {**extra, **optional, **present},
        st.fixed_dictionaries({n: fields[n] for n in required}) | st.fixed_dictionaries(
            {}, optional={n: fields[n] for n in required}),
        st.fixed_dictionaries({}, optional={n: f for n, f in fields.items() if n not in required}),
        st.dictionaries(st.text(max_size=10), garbage, max_size=2),
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


async def test_hostile_arguments_never_crash_or_write_invalid_data(orderdesk_sandbox, gateway_factory) -> None:
    sb = orderdesk_sandbox
    gw = gateway_factory()
    loop = asyncio.get_running_loop()
    problems: list[str] = []
    outcomes: Counter[tuple[str, str]] = Counter()

    async with connect(gw) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) >= 20
        orders = sb.orders()
        inv = await client.call_tool("inventory_list", {"limit": 50})
        assert not inv.is_error
        pools = {
            "order": [o["id"] for o in orders],
            "item": [i["id"] for o in orders for i in o.get("order_items", [])][:40],
            "shipment": [s["id"] for o in orders for s in o.get("order_shipments", [])][:20] or ["1"],
            "inventory": [str(i["id"]) for i in inv.structured_content["items"]],
        }
        strat = strategies(pools)

        async def check(tool: str, args: dict[str, Any]) -> None:
            before = len(sb.requests())
            r = await client.call_tool(tool, args)
            new = sb.requests()[before:]
            text = " ".join(getattr(c, "text", "") for c in r.content)
            err = (r.structured_content or {}).get("error") if r.is_error else None
            code = err.get("code") if isinstance(err, dict) else None
            outcomes[(tool, "ok" if not r.is_error else str(code))] += 1
            where = f"{tool}({_short(args)})"
            if r.is_error and code not in DOCUMENTED:
                problems.append(f"{where}: error without a documented code: {code} {text[:200]!r}")
            if "Traceback" in text:
                problems.append(f"{where}: traceback in the result")
            for q in new:
                if not SAFE_PATH.fullmatch(q.path) or "%" in q.full_path or ".." in q.full_path:
                    problems.append(f"{where}: unsafe upstream path {q.method} {q.full_path!r}")
                if set(q.query) - QUERY_KEYS:
                    problems.append(f"{where}: unexpected query parameters {sorted(set(q.query) - QUERY_KEYS)}")
                if q.method not in WRITE_METHODS:
                    continue
                if q.status >= 300 and not any(b in text for b in BUSINESS_REJECTIONS):
                    problems.append(f"{where}: an invalid write reached upstream: {q.method} {q.path} "
                                    f"-> {q.status}; tool said {text[:200]!r}")
                if r.is_error and q.status < 300 and not (q.path == "/move-orders" and code == "NOT_FOUND"):
                    problems.append(f"{where}: failed ({code}) after a write was applied: {q.method} {q.path}")
                if not r.is_error and q.status >= 300:
                    problems.append(f"{where}: succeeded although upstream refused {q.method} {q.path}")

        def run_property(tool: Any) -> None:
            @settings(max_examples=EXAMPLES_PER_TOOL, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(args=args_for(tool, strat))
            def prop(args: dict[str, Any]) -> None:
                asyncio.run_coroutine_threadsafe(check(tool.name, args), loop).result(timeout=30)

            prop()

        def run_all() -> None:
            for tool in tools:
                run_property(tool)

        await asyncio.to_thread(run_all)

        # the gateway still works after all that
        ok = await client.call_tool("orders_list", {"limit": 1})
        assert not ok.is_error

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])
    per_tool = Counter(tool for tool, _ in outcomes.elements())
    assert all(per_tool[t.name] >= EXAMPLES_PER_TOOL // 2 for t in tools), per_tool
    # the generators reach both sides: input errors for every tool that takes arguments, and real results
    for t in tools:
        if (t.input_schema or {}).get("properties") and t.name not in ("store_get",):
            assert outcomes[(t.name, "VALIDATION")] > 0, f"{t.name} never saw invalid input"
    assert sum(n for (_, o), n in outcomes.items() if o == "ok") > 50
    assert sum(n for (t, o), n in outcomes.items() if o == "ok" and t in (
        "orders_update", "orders_create", "order_items_add", "shipments_add", "inventory_create")) > 0


@pytest.mark.parametrize("bad", ["../store", "1?x=", "%2e%2e", "1/../../x", "1#x", "１２３"])
async def test_path_tricks_in_every_id_argument_are_refused_before_any_request(gateway_factory, orderdesk_sandbox,
                                                                                 bad) -> None:
    """A deterministic companion to the property: each id argument of each tool, one trick at a time."""
    oid = orderdesk_sandbox.orders()[0]["id"]
    calls = [
        ("orders_get", {"order_id": bad}),
        ("orders_update", {"order_id": bad, "changes": {"email": "a@b.example"}}),
        ("orders_delete", {"order_id": bad, "confirm": True}),
        ("orders_add_note", {"order_id": bad, "note": "x"}),
        ("orders_move", {"order_ids": [oid, bad], "folder_id": 2}),
        ("order_items_add", {"order_id": bad, "item": {"name": "x", "price": 1, "quantity": 1}}),
        ("order_items_update", {"order_id": oid, "item_id": bad, "item": {"name": "x"}}),
        ("order_items_delete", {"order_id": oid, "item_id": bad}),
        ("shipments_list", {"order_id": bad}),
        ("shipments_update", {"order_id": oid, "shipment_id": bad, "shipment": {"tracking_number": "1"}}),
        ("shipments_delete", {"order_id": oid, "shipment_id": bad}),
        ("inventory_get", {"item_id": bad}),
        ("inventory_update", {"item_id": bad, "changes": {"name": "x"}}),
        ("inventory_delete", {"item_id": bad, "confirm": True}),
    ]
    orderdesk_sandbox.clear_requests()
    async with connect(gateway_factory()) as client:
        for tool, args in calls:
            r = await client.call_tool(tool, args)
            assert r.is_error, (tool, args)
            assert r.structured_content["error"]["code"] == "VALIDATION", (tool, r.content[0].text)
    assert orderdesk_sandbox.requests() == [], [(q.method, q.full_path) for q in orderdesk_sandbox.requests()]
