"""A write re-sent after an answered unclear failure is sent from a read taken under the same lock.

Found by the chaos run (``tests/reliability/test_chaos_hints.py``, seed 2): ``orders_update`` got a 503
before apply; the route re-read (not applied), released the lock for its backoff, took it again and
PUT the whole order planned from that earlier read. An ``order_items_add`` that ran in the gap was
acknowledged ("Order Item Added") and then erased by the PUT: an acknowledged write lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from odmcp.testing import connect


async def test_an_item_added_while_an_update_backs_off_is_not_erased_by_its_resend(
    orderdesk_sandbox: Any, gateway_factory: Any
) -> None:
    sb = orderdesk_sandbox
    oid = str(sb.orders()[0]["id"])
    # the update's first PUT is held 300 ms, then refused before apply: the item add queues on the lock
    rule = sb.add_fault(method="PUT", path=rf"^/orders/{oid}$", status=503, delay_ms=300, times=1)
    async with connect(gateway_factory()) as client:
        update = asyncio.create_task(
            client.call_tool("orders_update", {"order_id": oid, "changes": {"order_metadata": {"k": "v"}}})
        )
        # until the update holds the lock and its PUT is in flight (held by the sandbox)
        while not rule.fired:  # noqa: ASYNC110 - the sandbox offers no event for this
            await asyncio.sleep(0.01)
        item = {"name": "Gap item", "code": "GAP-1", "price": 1, "quantity": 1}
        added = await client.call_tool("order_items_add", {"order_id": oid, "item": item})
        updated = await update
        assert not added.is_error and not updated.is_error, (added.content, updated.content)
        final = sb.order(oid)
        assert final["order_metadata"].get("k") == "v"
        # the acknowledged add is upstream, once
        assert [i["name"] for i in final["order_items"]].count("Gap item") == 1
        # and the next read says so
        again = await client.call_tool("orders_get", {"order_id": oid})
        names = [i["name"] for i in again.structured_content["order"]["order_items"]]
        assert names.count("Gap item") == 1
