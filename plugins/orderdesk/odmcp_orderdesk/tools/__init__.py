"""The OrderDesk MCP tools, declared at module level (``TOOLS``). Thin: validate arguments, then call
the host's workflow or the client."""

from __future__ import annotations

from collections.abc import Callable

from odmcp_orderdesk.tools import bulk, inventory, items, orders, store

TABLES = (orders.TOOLS, items.TOOLS, inventory.TOOLS, store.TOOLS, bulk.TOOLS)


def register_all(register: Callable[..., None]) -> None:
    for table in TABLES:
        table.register_into(register)
