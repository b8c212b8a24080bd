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
from third_party_tools import ThirdPartyTool, own_tools

from odmcp.errors import ErrorCode
from odmcp.middleware import error_of
from odmcp.testing import connect
from odmcp_orderdesk.client import ORDER_FILTERS

DOCUMENTED = {code.value for code in ErrorCode} - {"INTERNAL"}  # the codes a caller may act on
WRITE_METHODS = {"POST", "PUT", "DELETE"}
SAFE_PATH = re.compile(r"^(/[a-z][a-z-]*(/[0-9]{1,20})?)+$")
QUERY_KEYS = ORDER_FILTERS | {"code"}
#: upstream rejections that only OrderDesk can decide (existence, uniqueness, store folders)
BUSINESS_REJECTIONS = ("Not Found", "Duplicate Order", "already exists", "Shipment Not Added")
#: per tool: broad examples (anything goes) + deep examples (well-formed top level, hostile contents)
BROAD_EXAMPLES, DEEP_EXAMPLES = 13, 12

PATH_TRICKS = [
    "../store",
    "1?x=",
    "%2e%2e",
    "1/../../x",
    "..",
    "1%2F..%2Fstore",
    "1#frag",
    "1&limit=1",
    "%2E%2E%2F",
    "1 ",
    " 1",
    "1\n",
    "1\x00",
    "\u0661\u0662\u0663",
    "\uff11\uff12\uff13",
    "0x10",
    "1e3",
    "-1",
    "+1",
    "1.0",
    "",
    "123456789012345678901",
    "1;DROP TABLE",
    "/",
    "\\..\\",
    "1/",
    "?",
    "*",
]
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
words = st.text(min_size=1, max_size=40)
#: mostly sensible text, sometimes hostile (one_of picks its branches about evenly)
text_ish = st.one_of(words, words, st.sampled_from(PATH_TRICKS + HUGE), garbage)
money = st.one_of(
    st.floats(0, 1000),
    st.integers(0, 100),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    garbage,
)
count = st.one_of(st.integers(1, 5), st.integers(1, 5), st.integers(-(2**70), 2**70), garbage)


def record(
    fields: dict[str, st.SearchStrategy[Any]],
    core: dict[str, st.SearchStrategy[Any]] | None = None,
    *,
    objects_only: bool = False,
) -> st.SearchStrategy[Any]:
    """An object: the ``core`` keys with sensible values plus any subset of the other ``fields``, or
    any subset of all ``fields``; now and then a stray key. Unless ``objects_only``, also garbage."""
    stray = st.just({}) | st.dictionaries(st.text(max_size=12), garbage, max_size=1)
    core = core or {}
    with_core = st.fixed_dictionaries(core, optional={k: v for k, v in fields.items() if k not in core})
    anything = st.fixed_dictionaries({}, optional=fields)
    plausible = st.builds(lambda known, extra: {**extra, **known}, with_core | anything, stray)
    return plausible if objects_only else plausible | garbage


def strategies(pools: dict[str, list[str]], *, deep: bool) -> dict[str, st.SearchStrategy[Any]]:
    """Argument strategies by name. ``deep``: the top-level arguments are well-formed (real or unknown
    ids, a known store, sane paging) so the hostility sits inside objects and texts, past the schema."""

    def ident(kind: str) -> st.SearchStrategy[Any]:
        real = st.sampled_from(pools[kind])
        if deep:
            return real | st.just("999999999")
        return st.one_of(real, st.sampled_from(PATH_TRICKS), garbage)

    def obj(
        fields: dict[str, st.SearchStrategy[Any]], core: dict[str, st.SearchStrategy[Any]] | None = None
    ) -> st.SearchStrategy[Any]:
        return record(fields, core, objects_only=deep)

    address = obj(
        {
            "first_name": text_ish,
            "last_name": text_ish,
            "company": text_ish,
            "address1": text_ish,
            "city": text_ish,
            "country": text_ish,
            "postal_code": text_ish,
        }
    )
    item_fields = {
        "name": text_ish,
        "code": text_ish,
        "price": money,
        "quantity": count,
        "weight": money,
        "variation_list": garbage,
        "metadata": garbage,
        "delivery_type": text_ish,
    }
    item = obj(item_fields, core={"name": words, "price": st.floats(0, 100), "quantity": st.integers(1, 5)})
    item_change = obj({**item_fields, "id": ident("item"), "_delete": st.booleans() | garbage})
    order_fields = {
        "email": text_ish,
        "shipping": address,
        "customer": address,
        "order_metadata": st.dictionaries(words, words, max_size=3) | garbage,
        "checkout_data": st.dictionaries(words, words, max_size=3) | garbage,
        "folder_id": st.sampled_from([1, 2, 99, 0, -1]) | garbage,
        "source_id": text_ish,
        "shipping_method": text_ish,
        "shipping_total": money,
        "tax_total": money,
    }
    if not deep:  # read-only fields: always refused, so only where they don't hide everything else
        order_fields |= {
            "order_total": money,
            "date_updated": text_ish,
            "id": ident("order"),
            "order_shipments": garbage,
            "order_history": garbage,
        }
    name = st.fixed_dictionaries({"first_name": words, "last_name": words})
    # a single well-typed change with arbitrary unicode content, so hostile-but-valid writes happen too
    one_valid_change = st.one_of(
        st.fixed_dictionaries({"order_metadata": st.dictionaries(words, words, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"shipping": st.fixed_dictionaries({"first_name": words})}),
        st.fixed_dictionaries({"email": words}),
    )
    if deep:
        paging = {
            "store": st.sampled_from([None, "demo"]),
            "limit": st.integers(1, 500),
            "offset": st.integers(0, 100),
            "folder_id": st.sampled_from([1, 2, 4, 99]),
            "confirm": st.booleans(),
            "dry_run": st.booleans(),
            "order_ids": st.lists(ident("order"), min_size=1, max_size=3),
            "idempotency_key": st.text(min_size=8, max_size=20),
        }
    else:
        paging = {
            "store": st.sampled_from([None, "demo", "store2", "../store", "*", "", "DEMO"]) | garbage,
            "limit": st.integers(-(2**70), 2**70) | st.sampled_from(EXTREME_INTS) | garbage,
            "offset": st.integers(-(2**70), 2**70) | st.sampled_from(EXTREME_INTS) | garbage,
            "folder_id": st.sampled_from([1, 2, 4, 99, 0, -1, 2**64]) | garbage,
            "confirm": st.booleans() | garbage,
            "dry_run": st.booleans() | garbage,
            "order_ids": st.lists(ident("order"), max_size=5) | garbage,
            "idempotency_key": st.text(min_size=8, max_size=20) | garbage,
        }
    return {
        **paging,
        "order_id": ident("order"),
        "inventory_id": ident("inventory"),
        "item_id": ident("item"),
        "shipment_id": ident("shipment"),
        "folder_name": st.sampled_from(["New", "Closed", "Nope", "../x"]) | text_ish,
        "note": text_ish,
        "changes": obj({**order_fields, "order_items": st.lists(item_change, max_size=3) | garbage})
        | one_valid_change,
        "order": obj(
            {**order_fields, "order_items": st.lists(item, max_size=3) | garbage},
            core={"shipping": name, "order_items": st.lists(item, min_size=1, max_size=2)},
        ),
        "item": item,
        "shipment": obj(
            {
                "carrier_code": text_ish,
                "shipment_method": text_ish,
                "weight": money,
                "cost": money,
                "status": text_ish,
                "tracking_url": text_ish,
                "tracking_number": text_ish,
            },
            core={"tracking_number": words},
        ),
        "inventory": obj(
            {
                "name": text_ish,
                "code": text_ish,
                "price": money,
                "stock": count,
                "location": text_ish,
                "metadata": garbage,
                "id": ident("inventory"),
            },
            core={"name": words, "code": words},
        ),
    }


def args_for(
    tool: Any, by_name: dict[str, st.SearchStrategy[Any]], *, deep: bool
) -> st.SearchStrategy[dict[str, Any]]:
    props = list((tool.input_schema or {}).get("properties", {}))
    if "store" not in props and tool.name not in ("gateway_ping", "stores_list"):
        # a single-store gateway doesn't offer `store` (there is nothing to choose); tools still take it
        props.append("store")
    inventory = tool.name.startswith("inventory_")
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name in props:
        key = name
        if inventory and name == "item_id":
            key = "inventory_id"
        elif inventory and name in ("changes", "item"):
            key = "inventory"
        fields[name] = by_name.get(key, text_ish)
    required = list((tool.input_schema or {}).get("required") or [])
    optional = {n: f for n, f in fields.items() if n not in required}
    if deep:
        if tool.name == "orders_move":  # exactly one destination, so the ids and folders get checked
            optional = {"store": fields["store"]}
            required_s = st.fixed_dictionaries({"order_ids": fields["order_ids"]})
            dest = st.fixed_dictionaries({"folder_id": fields["folder_id"]}) | st.fixed_dictionaries(
                {"folder_name": st.sampled_from(["New", "Closed", "Nope"])}
            )
            return st.builds(
                lambda a, b, c: {**a, **b, **c},
                required_s,
                dest,
                st.fixed_dictionaries({}, optional=optional),
            )
        return st.builds(
            lambda req, opt: {**opt, **req},
            st.fixed_dictionaries({n: fields[n] for n in required}),
            st.fixed_dictionaries({}, optional=optional),
        )
    # broad: required arguments may be missing, stray arguments may appear
    return st.builds(
        lambda req, opt, extra: {**extra, **opt, **req},
        st.fixed_dictionaries({}, optional={n: fields[n] for n in required}),
        st.fixed_dictionaries({}, optional=optional),
        st.just({}) | st.dictionaries(st.text(max_size=10), garbage, max_size=2),
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


async def test_hostile_arguments_never_crash_or_write_invalid_data(
    orderdesk_sandbox, gateway_factory
) -> None:
    sb = orderdesk_sandbox
    gw = gateway_factory(plugins=[ThirdPartyTool()])  # a tool plugin installed next to the gateway
    loop = asyncio.get_running_loop()
    problems: list[str] = []
    outcomes: Counter[tuple[str, str]] = Counter()

    async with connect(gw) as client:
        listed = (await client.list_tools()).tools
        tools = [t for t in listed if t.name in own_tools(gw)]  # the third party's tools are its business
        assert len(tools) >= 20 and len(listed) == len(tools) + 1
        orders = sb.orders()
        inv = await client.call_tool("inventory_list", {"limit": 50})
        assert not inv.is_error
        pools = {
            "order": [o["id"] for o in orders],
            "item": [i["id"] for o in orders for i in o.get("order_items", [])][:40],
            "shipment": [s["id"] for o in orders for s in o.get("order_shipments", [])][:20] or ["1"],
            "inventory": [str(i["id"]) for i in inv.structured_content["items"]],
        }
        broad, deep = strategies(pools, deep=False), strategies(pools, deep=True)

        async def check(tool: str, args: dict[str, Any]) -> None:
            before = len(sb.requests())
            r = await client.call_tool(tool, args)
            new = sb.requests()[before:]
            text = " ".join(getattr(c, "text", "") for c in r.content)
            err = error_of(r) if r.is_error else None
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
                    problems.append(
                        f"{where}: unexpected query parameters {sorted(set(q.query) - QUERY_KEYS)}"
                    )
                if q.method not in WRITE_METHODS:
                    continue
                if q.status >= 300 and not any(b in text for b in BUSINESS_REJECTIONS):
                    problems.append(
                        f"{where}: an invalid write reached upstream: {q.method} {q.path} "
                        f"-> {q.status}; tool said {text[:200]!r}"
                    )
                if r.is_error and q.status < 300 and not (q.path == "/move-orders" and code == "NOT_FOUND"):
                    problems.append(
                        f"{where}: failed ({code}) after a write was applied: {q.method} {q.path}"
                    )
                if not r.is_error and q.status >= 300:
                    problems.append(f"{where}: succeeded although upstream refused {q.method} {q.path}")

        def run_property(tool: Any, strategy: st.SearchStrategy[dict[str, Any]], examples: int) -> None:
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(args=strategy)
            def prop(args: dict[str, Any]) -> None:
                asyncio.run_coroutine_threadsafe(check(tool.name, args), loop).result(timeout=30)

            prop()

        def run_all() -> None:
            for tool in tools:
                run_property(tool, args_for(tool, broad, deep=False), BROAD_EXAMPLES)
                if (tool.input_schema or {}).get("properties"):
                    run_property(tool, args_for(tool, deep, deep=True), DEEP_EXAMPLES)

        await asyncio.to_thread(run_all)

        # the gateway still works after all that
        ok = await client.call_tool("orders_list", {"limit": 1})
        assert not ok.is_error

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])
    per_tool = Counter(tool for tool, _ in outcomes.elements())
    assert all(per_tool[t.name] >= BROAD_EXAMPLES // 2 for t in tools), per_tool
    # the generators reach both sides: input errors for every tool that takes arguments, and real results
    for t in tools:
        if (t.input_schema or {}).get("properties") and t.name not in ("store_get",):
            assert outcomes[(t.name, "VALIDATION")] > 0, f"{t.name} never saw invalid input"
    assert sum(n for (_, o), n in outcomes.items() if o == "ok") > 50
    assert (
        sum(
            n
            for (t, o), n in outcomes.items()
            if o == "ok"
            and t
            in ("orders_update", "orders_create", "order_items_add", "shipments_add", "inventory_create")
        )
        > 0
    )


@pytest.mark.parametrize("bad", ["../store", "1?x=", "%2e%2e", "1/../../x", "1#x", "\uff11\uff12\uff13"])
async def test_path_tricks_in_every_id_argument_are_refused_before_any_request(
    gateway_factory, orderdesk_sandbox, bad
) -> None:
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
            assert error_of(r)["code"] == "VALIDATION", (tool, r.content[0].text)
    assert orderdesk_sandbox.requests() == [], [(q.method, q.full_path) for q in orderdesk_sandbox.requests()]
