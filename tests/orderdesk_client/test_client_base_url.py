"""A base URL without ``/api/v2`` (the web app's address) makes every call a 404: those say to check
ORDERDESK_BASE_URL, while a 404 for an id that does not exist still says to check the id."""

from __future__ import annotations

from typing import Any

from odmcp.middleware import error_of
from odmcp.testing import connect


async def test_a_404_from_a_path_that_cannot_exist_says_check_the_base_url(
    orderdesk_sandbox: Any, gateway_factory: Any, gateway_overrides: dict[str, Any]
) -> None:
    wrong = [{**s, "base_url": orderdesk_sandbox.root_url} for s in gateway_overrides["stores"]]
    async with connect(gateway_factory(overrides={"stores": wrong})) as c:
        got = await c.call_tool("orders_get", {"order_id": "200003"})
        listed = await c.call_tool("orders_list", {})
    # a path with an id answers NOT_FOUND; a collection path has no id to be wrong, so its 404 is
    # UPSTREAM naming the endpoint (nothing was written); both point at the base URL, not the id
    for result, code in ((got, "NOT_FOUND"), (listed, "UPSTREAM")):
        err = error_of(result)
        assert err["code"] == code and "check ORDERDESK_BASE_URL" in err["hint"], err
        assert "Check the id" not in err["hint"]
    assert "GET /orders: the endpoint was not found" in error_of(listed)["message"]
    assert error_of(listed)["retryable"] is False


async def test_a_404_for_an_unknown_id_still_says_check_the_id(gateway_factory: Any) -> None:
    async with connect(gateway_factory()) as c:
        missing = await c.call_tool("orders_get", {"order_id": "999999"})
    err = error_of(missing)
    assert err["code"] == "NOT_FOUND" and err["hint"].startswith("Check the id"), err
