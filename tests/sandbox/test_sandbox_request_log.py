"""The sandbox's request log is a ring buffer: a long demo or load run keeps memory flat."""

from __future__ import annotations

import aiohttp
import pytest

from odmcp.cli import main
from odmcp_orderdesk.sandbox import Sandbox, SandboxConfig
from odmcp_orderdesk.sandbox.recorder import RequestLog


async def test_the_log_keeps_only_the_newest_requests_and_counts_them_all() -> None:
    config = SandboxConfig(rate_limit_enabled=False, request_log_size=5)
    async with Sandbox(config) as sb, aiohttp.ClientSession(headers=sb.headers()) as http:
        ids = [o["id"] for o in sb.orders()][:12]
        for oid in ids:
            async with http.get(f"{sb.base_url}/orders/{oid}") as r:
                assert r.status == 200
        assert [r.path for r in sb.requests()] == [f"/orders/{oid}" for oid in ids[-5:]]
        assert sb.log.total == 12
        async with http.get(sb.admin_url + "/requests") as r:
            body = await r.json()
        assert len(body["requests"]) == 5 and body["total"] == 12
        sb.clear_requests()
        assert sb.requests() == [] and sb.log.total == 0


def test_the_default_bound_and_a_bad_size() -> None:
    assert SandboxConfig().request_log_size == 10_000
    assert RequestLog().records.maxlen == 10_000
    with pytest.raises(ValueError, match="max_records must be >= 1"):
        RequestLog(0)


def test_cli_refuses_a_bad_request_log_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--request-log-size", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "mcp-gateway: error: --request-log-size must be >= 1, got 0"
