"""The host knows no store: a toy in-memory store plugin, with the OrderDesk plugin not loaded at all,
gets every host path — cached reads with single-flight, safe updates with conflict retries, the
reconcile step, invalidation, the audit line, token grants — exactly as the OrderDesk plugin does."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import odmcp_cache_memory.plugin as memory_cache
import odmcp_journal_sqlite.plugin as sqlite_journal
from odmcp.api import (
    Conflict,
    Gateway,
    NotFound,
    OutcomeUnknown,
    Ref,
    ToolCall,
    ToolTable,
    UpdateObject,
    connect,
    hookimpl,
    serve_http,
)
from odmcp.middleware import error_of

TOOLS = ToolTable()


@TOOLS.tool("pages.get", title="Get a page", read_only=True, object_arg="page_id")
async def pages_get(gateway: Any, page_id: str, store: str | None = None) -> dict[str, Any]:
    """Get one page (cached). Errors: NOT_FOUND."""
    return await gateway.workflow.read(Ref(gateway.store(store).name, "page", page_id))


@TOOLS.tool("pages.update", title="Update a page", read_only=False, destructive=True, object_arg="page_id")
async def pages_update(
    gateway: Any, call: ToolCall, page_id: str, changes: dict[str, Any], store: str | None = None
) -> dict[str, Any]:
    """Change a page safely (fetch, merge, upload, retried on conflict). Errors: NOT_FOUND, CONFLICT."""
    op = UpdateObject(gateway, Ref(gateway.store(store).name, "page", page_id), changes)
    result = (await gateway.route.run(op, call)).only()
    return {"page": result.value, "attempts": result.attempts, "reconciled": result.reconciled}


class ToyStore:
    """Pages in a dict, with a version number the upload checks (a store that has optimistic locking)."""

    def __init__(self) -> None:
        self.pages: dict[str, dict[str, Any]] = {"1": {"id": "1", "title": "Returns", "version": 1}}
        self.fetches = 0
        self.edit_after_fetch = 0  # someone else edits the page right after this many fetches
        self.unclear_uploads = 0  # uploads applied but answered with a lost connection

    @hookimpl
    def gateway_register_tools(self, register: Any) -> None:
        TOOLS.register_into(register)

    @hookimpl
    def gateway_fetch(self, ref: Ref) -> Any:
        if ref.kind != "page":
            return None

        async def fetch() -> dict[str, Any]:
            self.fetches += 1
            if ref.id not in self.pages:
                raise NotFound(f"page {ref.id} not found")
            page = dict(self.pages[ref.id])
            if self.edit_after_fetch:
                self.edit_after_fetch -= 1
                self.pages[ref.id] = {**self.pages[ref.id], "views": 7, "version": page["version"] + 1}
            return page

        return fetch()

    @hookimpl
    def gateway_upload(self, ref: Ref, obj: dict[str, Any], fetched: dict[str, Any]) -> Any:
        if ref.kind != "page":
            return None

        async def upload() -> dict[str, Any]:
            stored = self.pages[ref.id]
            if stored["version"] != fetched["version"]:
                raise Conflict(f"page {ref.id} changed since it was fetched")
            self.pages[ref.id] = {**obj, "version": stored["version"] + 1}
            if self.unclear_uploads:
                self.unclear_uploads -= 1
                raise OutcomeUnknown("the connection dropped after the page was sent")
            return dict(self.pages[ref.id])

        return upload()


def build(toy: ToyStore, tmp_path: Path, **overrides: Any) -> Gateway:
    return Gateway.from_config(
        None,
        env={},
        overrides={
            "stores": [{"name": "wiki", "store_id": "w1", "default": True}],  # the host's fields only
            "cache.prefix": "toy",
            "audit.path": str(tmp_path / "audit.jsonl"),
            "journal.path": str(tmp_path / "journal.sqlite"),
            "mutations.backoff": [0.01],
            "mutations.reconcile_settle": 0.0,
            **overrides,
        },
        extra_plugins=[memory_cache, sqlite_journal, toy],
        load_entrypoints=False,  # no OrderDesk plugin: only the host, the memory cache, the journal and the toy
    )


async def test_reads_updates_conflicts_reconcile_invalidation_and_audit_need_no_orderdesk(
    tmp_path: Path,
) -> None:
    toy = ToyStore()
    gw = build(toy, tmp_path)
    assert not gw.pm.has_plugin("orderdesk")
    async with connect(gw) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"pages_get", "pages_update", "gateway_ping"} <= names and not any(
            "orders" in n for n in names
        )
        first = await c.call_tool("pages_get", {"page_id": "1"})
        await c.call_tool("pages_get", {"page_id": "1"})
        assert first.structured_content["title"] == "Returns" and toy.fetches == 1  # cached
        # a concurrent edit between fetch and upload: the host fetches, merges and uploads again
        toy.edit_after_fetch = 1
        updated = await c.call_tool("pages_update", {"page_id": "1", "changes": {"title": "Refunds"}})
        assert updated.structured_content["attempts"] == 2
        assert toy.pages["1"]["title"] == "Refunds" and toy.pages["1"]["views"] == 7  # nothing lost
        # the write invalidated (and wrote through) the cached page
        again = await c.call_tool("pages_get", {"page_id": "1"})
        assert again.structured_content["title"] == "Refunds"
        # an unclear upload is re-read and reconciled by the host's default (field by field)
        toy.unclear_uploads = 1
        unclear = await c.call_tool("pages_update", {"page_id": "1", "changes": {"title": "Exchanges"}})
        assert unclear.structured_content["reconciled"] is True and toy.pages["1"]["title"] == "Exchanges"
        missing = await c.call_tool("pages_update", {"page_id": "9", "changes": {"title": "x"}})
        assert error_of(missing)["code"] == "NOT_FOUND"
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(ln["tool"], ln["object_id"], ln["outcome"]) for ln in lines] == [
        ("pages.update", "1", "ok"),
        ("pages.update", "1", "ok"),
        ("pages.update", "9", "error:NOT_FOUND"),
    ]
    assert lines[0]["attempts"] == 2 and lines[1]["reconciled"] is True


@contextlib.asynccontextmanager
async def as_caller(base: str, token: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


@pytest.mark.parametrize("token, code", [("tok-reader-1234", "AUTH"), ("tok-other-12345", "AUTH")])
async def test_token_grants_apply_to_a_store_the_host_does_not_know(
    tmp_path: Path, token: str, code: str
) -> None:
    toy = ToyStore()
    tokens = [
        {"name": "reader", "token": "tok-reader-1234", "read_only": True},
        {"name": "other", "token": "tok-other-12345", "stores": ["wiki2"]},
    ]
    stores = [{"name": "wiki", "store_id": "w1", "default": True}, {"name": "wiki2", "store_id": "w2"}]
    gw = build(toy, tmp_path, **{"http.tokens": tokens, "stores": stores})
    # the reader's default store is wiki; the other token's is its own wiki2, so it names wiki
    where = {} if token == "tok-reader-1234" else {"store": "wiki"}
    async with serve_http(gw) as base, as_caller(base, token) as c:
        read = await c.call_tool("pages_get", {"page_id": "1", **where})
        write = await c.call_tool("pages_update", {"page_id": "1", "changes": {"title": "No"}, **where})
    assert error_of(write)["code"] == code and toy.pages["1"]["title"] == "Returns"
    if token == "tok-reader-1234":
        assert not read.is_error  # a read-only token reads
    else:
        assert error_of(read)["code"] == "AUTH"  # a token for another store can't even read this one


async def test_a_host_without_orderdesk_names_no_tool_it_does_not_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from odmcp.cli import main
    from odmcp.server import build_server, instructions

    toy = ToyStore()
    gw = build(toy, tmp_path)
    text = instructions(gw)
    served = {spec.name.replace(".", "_") for spec in gw.served_tools()}
    named = set(re.findall(r"\b[a-z]+_[a-z_]+\b", text)) & {"stores_list", "orders_list", "orders_get"}
    assert named == set() and served == {"pages_get", "pages_update", "gateway_ping"}
    assert "OrderDesk" not in text and build_server(gw).name == "mcp-gateway"
    async with connect(gw) as c:
        unknown = await c.call_tool("pages_get", {"page_id": "1", "store": "nope"})
        missing = await c.call_tool("pages_get", {"page_id": "9"})
    for result in (unknown, missing):
        line = f"{error_of(result)['message']} {error_of(result).get('hint', '')}"
        assert not re.search(r"\b(stores_list|orders_\w+)\b", line), line
    assert "stores you may use: wiki" in error_of(unknown)["message"]
    with pytest.raises(SystemExit):
        main(["--help"], plugins=[])
    help_text = capsys.readouterr().out
    assert "A plugin-based MCP gateway: the tools of its plugins" in help_text
    assert (
        "for OrderDesk" not in help_text
    )  # (the OrderDesk plugin, installed here, adds its sandbox command)
