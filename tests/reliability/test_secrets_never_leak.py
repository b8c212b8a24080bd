"""Secrets: run every tool through every error path with DEBUG logging on, then grep everything.

Error paths: malformed ids, unknown ids, a store configured with a wrong API key (a real upstream 401),
and injected faults (401, 5xx, timeouts, malformed JSON, dropped connections, a long 429, and an
upstream error message that echoes the API key back). Captured: every log record at DEBUG (message,
arguments, extras and tracebacks), the process's stdout/stderr, the audit log and every tool output.
Neither an API key (they all start with ``sandbox-key``) nor the HTTP bearer token may appear.

``mcp-gateway config check`` prints the effective config: secrets must show as ``***``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from third_party_tools import ThirdPartyTool, own_tools

from odmcp import cli
from odmcp.middleware import error_of
from odmcp.testing import connect

API_KEY_MARK = "sandbox-key"  # every key in this test starts with it: sandbox-key, sandbox-key-2, ...
BEARER = "bearer-" + uuid.uuid4().hex
NAMED_TOKEN = "named-" + uuid.uuid4().hex
WRONG_KEY = "sandbox-key-wrong-" + uuid.uuid4().hex[:8]
LOGGERS = [
    "",
    "odmcp",
    "odmcp_orderdesk",
    "odmcp_cache_memory",
    "odmcp_cache_redis",
    "mcp",
    "aiohttp",
    "redis",
    "asyncio",
    "httpx",
    "uvicorn",
]
#: tools that answer without upstream errors by design (ping; stores_list reports per-store errors inline,
#: orders_move and the bulk tools per target: their reports are scanned like every other output)
ALWAYS_OK = {
    "gateway_ping",
    "stores_list",
    "orders_move",
    "orders_update_many",
    "orders_add_note_many",
    "shipments_add_many",
    "inventory_update_many",
    # the journal's tools never call OrderDesk (their outputs are still grepped for credentials)
    "changes_list",
    "changes_revert",
}
#: tools without id arguments (the malformed-id and unknown-id paths don't apply to them)
#: the methods of OrderDesk's writes (a fault on these spares the reads around them)
WRITE_METHODS = ("POST", "PUT", "DELETE")
NO_IDS = {"store_get", "orders_list", "orders_create", "inventory_list", "inventory_create"}


def _args(tool: str, ids: dict[str, str], store: str | None) -> dict[str, Any]:
    oid, iid, soid, sid, inv = ids["order"], ids["item"], ids["ship_order"], ids["shipment"], ids["inventory"]
    table: dict[str, dict[str, Any]] = {
        "gateway_ping": {},
        "stores_list": {},
        "store_get": {},
        "orders_get": {"order_id": oid},
        "orders_list": {"limit": 2, "email": "nobody@example.com"},
        "orders_create": {
            "order": {
                "email": "s@example.com",
                "shipping": {"first_name": "A", "last_name": "B"},
                "order_items": [{"name": "W", "price": 1, "quantity": 1}],
            },
            "idempotency_key": "secret-test-" + uuid.uuid4().hex,
        },
        "orders_update": {"order_id": oid, "changes": {"order_metadata": {"leak_probe": "1"}}},
        "orders_delete": {"order_id": oid, "confirm": True},
        "orders_move": {"order_ids": [oid], "folder_id": 2},
        "orders_add_note": {"order_id": oid, "note": "probe"},
        "order_items_add": {"order_id": oid, "item": {"name": "W", "price": 1, "quantity": 1}},
        "order_items_update": {"order_id": oid, "item_id": iid, "item": {"quantity": 2}},
        "order_items_delete": {"order_id": oid, "item_id": iid},
        "shipments_list": {"order_id": soid},
        "shipments_add": {
            "order_id": soid,
            "shipment": {"tracking_number": "T" + uuid.uuid4().hex[:10], "carrier_code": "UPS"},
        },
        "shipments_update": {"order_id": soid, "shipment_id": sid, "shipment": {"tracking_number": "X1"}},
        "shipments_delete": {"order_id": soid, "shipment_id": sid},
        "inventory_list": {"limit": 2},
        "inventory_get": {"item_id": inv},
        "inventory_create": {"item": {"name": "Probe", "code": "PROBE-" + uuid.uuid4().hex[:8], "price": 1}},
        "inventory_update": {"item_id": inv, "changes": {"stock": 3}},
        "inventory_delete": {"item_id": inv, "confirm": True},
        "orders_update_many": {"order_ids": [oid], "changes": {"order_metadata": {"leak_probe": "2"}}},
        "orders_add_note_many": {"order_ids": [oid], "note": "probe"},
        "shipments_add_many": {
            "shipments": [{"order_id": soid, "tracking_number": "T" + uuid.uuid4().hex[:10]}]
        },
        "inventory_update_many": {"updates": [{"id": inv, "changes": {"stock": 4}}]},
        "changes_list": {"order_id": oid, "fields": "full"},
        "changes_revert": {"change_id": "0" * 32, "dry_run": True},
    }
    args = dict(table[tool])
    if store is not None and tool not in ("gateway_ping", "stores_list", "changes_list", "changes_revert"):
        args["store"] = store
    return args


def _store_entry(sb: Any, index: int, name: str, api_key: str, default: bool) -> dict[str, Any]:
    s = sb.config.stores[index]
    return {
        "name": name,
        "store_id": s.store_id,
        "api_key": api_key,
        "base_url": sb.base_url,
        "default": default,
        "rate_limit": {"enabled": False},
    }


@pytest.mark.sandbox(multi_store=True, rate_limit_enabled=False)
async def test_no_tool_error_path_leaks_a_credential(
    orderdesk_sandbox, gateway_factory, caplog, capfd, tmp_path
) -> None:
    sb = orderdesk_sandbox
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    audit = tmp_path / "audit-secrets.jsonl"
    gw = gateway_factory(
        plugins=[ThirdPartyTool()],  # installed next to the gateway: listed, and left alone here
        overrides={
            "stores": [
                _store_entry(sb, 0, "demo", sb.config.stores[0].api_key, True),
                _store_entry(sb, 1, "store2", WRONG_KEY, False),
            ],
            "http.token": BEARER,
            "http.tokens": [{"name": "ops", "token": NAMED_TOKEN}],
            "orderdesk": {"request_timeout": 0.2, "max_retries": 0},
            "cache.enabled": False,
            "audit.path": str(audit),
            "gateway.trace_hooks": True,
            "gateway.log_level": "DEBUG",
            "gateway.toolsets": ["all"],  # every tool, the opt-in changes toolset too
        },
    )
    orders = sb.orders()
    shipped = next(o for o in orders if o.get("order_shipments"))
    real = {
        "order": orders[0]["id"],
        "item": orders[0]["order_items"][0]["id"],
        "ship_order": shipped["id"],
        "shipment": shipped["order_shipments"][0]["id"],
        "inventory": "0",
    }
    outputs: list[str] = []
    codes: dict[str, Counter[str]] = defaultdict(Counter)

    async with connect(gw) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        tools = sorted(own_tools(gw))
        assert "extras_is_frozen" in listed and set(tools) == listed - {"extras_is_frozen"}
        inv = await client.call_tool("inventory_list", {"limit": 1})
        real["inventory"] = str(inv.structured_content["items"][0]["id"])
        bad = dict.fromkeys(real, "../store")
        missing = {
            "order": "999999991",
            "item": "999999992",
            "ship_order": "999999993",
            "shipment": "999999994",
            "inventory": "999999995",
        }

        async def run_all(
            mode: str,
            ids: dict[str, str],
            store: str | None = None,
            methods: tuple[str, ...] = ("*",),
            **fault: Any,
        ) -> None:
            rules = [sb.add_fault(name=mode, method=m, **fault) for m in methods] if fault else []
            try:
                for tool in tools:
                    r = await client.call_tool(tool, _args(tool, ids, store))
                    outputs.extend(getattr(c, "text", "") for c in r.content)
                    outputs.append(json.dumps(r.structured_content, default=str))
                    outputs.append(json.dumps(r.meta, default=str))
                    err = error_of(r) if r.is_error else None
                    codes[mode][err["code"] if err else "ok"] += 1
                    if tool not in ALWAYS_OK and not (ids is not real and tool in NO_IDS):
                        codes[mode + ":upstream-tools"][err["code"] if err else "ok"] += 1
            finally:
                for rule in rules:
                    sb.faults.remove(rule)

        await run_all("bad-ids", bad)
        await run_all("not-found", missing)
        await run_all("wrong-key-store", real, store="store2")
        await run_all("auth-fault", real, status=401)
        await run_all("5xx", real, status=500)
        await run_all("timeout", real, delay_ms=1200)
        await run_all("malformed", real, malformed_json=True)
        await run_all("drop", real, drop=True)
        # the same faults on writes only: the read before the write succeeds, the write is sent and its
        # answer is unclear, so the route re-reads and counts (OUTCOME_UNKNOWN, or a verified failure).
        # A timeout on writes takes the drop's path (no answer) at five times its cost: left out.
        for mode, fault in (
            ("5xx", {"status": 500}),
            ("malformed", {"malformed_json": True}),
            ("drop", {"drop": True}),
        ):
            await run_all(mode + "-writes", real, methods=WRITE_METHODS, **fault)
        await run_all("long-429", real, status=429, retry_after=600)
        await run_all(
            "echo-key-400",
            real,
            status=400,
            body={"status": "error", "message": f"invalid api key {sb.api_key} for store {sb.store_id}"},
        )
        await run_all(
            "echo-key-200",
            real,
            status=200,
            body={"status": "error", "message": f"Unauthorized: api key {sb.api_key} was rejected"},
        )
        # and stores_list / store_get on the wrongly keyed store, without faults
        r = await client.call_tool("stores_list", {})
        outputs.append(json.dumps(r.structured_content))
        entries = {e["name"]: e for e in r.structured_content["stores"]}
        assert entries["store2"].get("error") == "AUTH" and "folders" in entries["demo"]

    # every error path was really taken, with the code it should carry. A fault on every request
    # fails the read each write makes first (under its lock), so nothing is sent: UPSTREAM. On writes
    # only, the write is sent: a 5xx or a malformed answer is re-read, found absent (resent, still
    # absent) and is UPSTREAM saying nothing was written; no answer at all (a drop) can't be told
    # from a write still in flight: OUTCOME_UNKNOWN.
    expected = {
        "bad-ids": {"VALIDATION"},
        "not-found": {"NOT_FOUND"},
        "wrong-key-store": {"AUTH"},
        "auth-fault": {"AUTH"},
        "5xx": {"UPSTREAM"},
        "timeout": {"UPSTREAM"},
        "malformed": {"UPSTREAM"},
        "drop": {"UPSTREAM"},
        "long-429": {"RATE_LIMITED"},
        "echo-key-400": {"VALIDATION"},
        "echo-key-200": {"AUTH"},
    }
    for mode, codes_allowed in expected.items():
        seen = codes[mode + ":upstream-tools"]
        assert set(seen) <= codes_allowed and sum(seen.values()) >= 14, (mode, dict(seen))
    writes_expected = {"5xx": "UPSTREAM", "malformed": "UPSTREAM", "drop": "OUTCOME_UNKNOWN"}
    for mode, code in writes_expected.items():
        seen = codes[mode + "-writes:upstream-tools"]  # the read tools among them answer
        assert set(seen) <= {code, "ok"} and seen[code] >= 12, (mode, dict(seen))

    # --- grep everything that was produced ---------------------------------------------------------
    records = caplog.records
    assert any(r.levelno == logging.DEBUG and "OrderDesk" in r.getMessage() for r in records), (
        "DEBUG records of the OrderDesk client were not captured"
    )
    log_blobs = [caplog.text]
    for rec in records:
        log_blobs.append(rec.getMessage())
        log_blobs.append(repr(rec.args))
        log_blobs.append(repr({k: v for k, v in vars(rec).items() if k not in ("args", "msg")}))
        if rec.exc_info and rec.exc_info[1] is not None:
            log_blobs.append(repr(rec.exc_info[1]))
    captured = capfd.readouterr()
    audit_text = audit.read_text()
    assert audit_text.count("\n") >= 20, "the audit log recorded too little"
    sources = {
        "logs": "\n".join(log_blobs),
        "stdout": captured.out,
        "stderr": captured.err,
        "audit": audit_text,
        "tool outputs": "\n".join(outputs),
    }
    for where, blob in sources.items():
        for secret in (API_KEY_MARK, sb.api_key, WRONG_KEY, BEARER, NAMED_TOKEN):
            assert secret not in blob, f"{secret[:12]}... leaked into the {where}"
    # the upstream message was kept (masked), so masking did not simply drop the text
    assert any("invalid api key *** for store" in o for o in outputs)
    assert any("api key *** was rejected" in o for o in outputs)


def _write_config(path: Path) -> None:
    path.write_text(f"""
[gateway]
log_level = "DEBUG"

[http]
token = "{BEARER}"
request_state_keys = ["sealing-{NAMED_TOKEN}"]

[[http.tokens]]
name = "ops"
token = {{ "$env" = "SECRETS_TEST_TOKEN" }}

[[stores]]
name = "demo"
store_id = "1001"
api_key = "sandbox-key"
base_url = "http://127.0.0.1:9/api/v2"
default = true

[[stores]]
name = "other"
store_id = "2002"
api_key = {{ "$env" = "SECRETS_TEST_KEY" }}
base_url = "http://127.0.0.1:9/api/v2"
""")


def test_config_check_masks_every_secret(tmp_path, capsys, monkeypatch) -> None:
    for var in (
        "GATEWAY_HTTP_TOKEN",
        "GATEWAY_CONFIG",
        "ORDERDESK_API_KEY",
        "ORDERDESK_STORE_ID",
        "ORDERDESK_BASE_URL",
        "GATEWAY_LOG_LEVEL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SECRETS_TEST_TOKEN", NAMED_TOKEN)
    monkeypatch.setenv("SECRETS_TEST_KEY", "sandbox-key-2-from-env")
    cfg = tmp_path / "gateway.toml"
    _write_config(cfg)
    rc = cli.main(["config", "check", "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "config OK" in out
    data = json.loads(out.split("\n", 1)[1])
    assert [s["api_key"] for s in data["stores"]] == ["***", "***"]
    assert data["http"]["token"] == "***" and data["http"]["tokens"][0]["token"] == "***"
    assert data["http"]["request_state_keys"] == ["***"]
    assert data["stores"][0]["store_id"] == "1001"  # non-secrets are still shown
    for secret in (API_KEY_MARK, BEARER, NAMED_TOKEN):
        assert secret not in out and secret not in err


def test_config_errors_do_not_echo_secrets(tmp_path, capsys, monkeypatch) -> None:
    """A config that fails validation names the key, not the secret value next to it."""
    for var in ("GATEWAY_HTTP_TOKEN", "GATEWAY_CONFIG", "ORDERDESK_API_KEY", "ORDERDESK_STORE_ID"):
        monkeypatch.delenv(var, raising=False)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"""
[[stores]]
name = "demo"
store_id = "1001"
api_key = "sandbox-key"
base_url = "ftp://nowhere"

[http]
token = "{BEARER}"
""")
    rc = cli.main(["config", "check", "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert rc == 2 and "base_url" in err and err.count("\n") == 1
    assert API_KEY_MARK not in out + err and BEARER not in out + err
