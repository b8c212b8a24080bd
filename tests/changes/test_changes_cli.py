"""``mcp-gateway changes``: the journal's changes as a terminal table and as JSON, filtered like the tool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from odmcp.cli import main
from odmcp.testing import connect


async def test_the_changes_command_lists_filters_and_shows(
    gateway_factory: Any, orderdesk_sandbox: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = gateway_factory()
    async with connect(gw) as c:
        for oid, email in (("200011", "cli-a@example.com"), ("200012", "cli-b@example.com")):
            r = await c.call_tool("orders_update", {"order_id": oid, "changes": {"email": email}})
            assert not r.is_error
        r = await c.call_tool("orders_add_note", {"order_id": "200011", "note": "cli note"})
        assert not r.is_error
    cfg = tmp_path / "cli.toml"
    cfg.write_text(
        f'[journal]\npath = "{gw.config.journal.path}"\n[[stores]]\nname = "demo"\nstore_id = "1001"\n'
        f'api_key = "sandbox-key"\nbase_url = "{orderdesk_sandbox.base_url}"\n'
    )
    orderdesk_sandbox.clear_requests()

    def run(*argv: str) -> str:
        capsys.readouterr()
        assert main(["changes", "--config", str(cfg), *argv]) == 0
        return capsys.readouterr().out

    table = await asyncio.to_thread(run)
    lines = table.splitlines()
    assert lines[0].split()[:7] == ["TIME", "CHANGE_ID", "CALLER", "TOOL", "OBJECT", "OUTCOME", "REVERTIBLE"]
    assert "orders.add_note" in lines[1] and "no: OrderDesk's order history" in lines[1]
    assert any("email:" in line and "cli-b@example.com" in line for line in lines)
    data = json.loads(await asyncio.to_thread(run, "--order", "200011", "--json"))
    assert [e["action"] for e in data["changes"]] == ["add_note", "update"]
    assert (
        data["changes"][1]["fields"][0]["after"] == "cli-a@example.com" and data["changes"][1]["revertible"]
    )
    shown = await asyncio.to_thread(run, "--show", data["changes"][1]["change_id"])
    assert "cli-a@example.com" in shown
    assert json.loads(await asyncio.to_thread(run, "--tool", "orders_update", "--json"))["changes"][0][
        "tool"
    ] == ("orders.update")
    assert orderdesk_sandbox.requests() == []  # the journal only: no store was contacted
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["changes", "--config", str(cfg), "--show", "nope"]) == 1
    assert capsys.readouterr().err.startswith("mcp-gateway: error: NOT_FOUND: no change 'nope'")
