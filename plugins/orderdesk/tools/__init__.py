"""The OrderDesk MCP tools. Thin: validate arguments, then call the host's workflow or the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.app import Gateway


def register_all(register: Callable[..., None], gateway: Gateway) -> None:
    from plugins.orderdesk.tools import inventory, items, orders, store

    for module in (orders, items, inventory, store):
        module.register(register, gateway)
