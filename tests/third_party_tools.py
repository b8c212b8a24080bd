"""A stand-in for a third-party tool plugin installed next to the gateway, and the project's own tools.

Tests that go through every listed tool go through the project's own only, so an installed tool
plugin (its tools, its arguments) can't break them; the tests that add :class:`ThirdPartyTool` prove it.
"""

from __future__ import annotations

from typing import Any

from odmcp import hookimpl
from odmcp.tools import wire_name

#: the plugins whose tools this project ships
OWN_PLUGINS = ("orderdesk", "odmcp.builtins", "odmcp.changes_tools")


class ThirdPartyTool:
    """Registers ``extras.is_frozen``, a read-only tool with an argument of its own."""

    @hookimpl
    def gateway_register_tools(self, register: Any) -> None:
        async def is_frozen(order_id: str) -> dict[str, Any]:
            """Say whether an order is frozen by the third party's own rules (always False here)."""
            return {"order_id": order_id, "frozen": False}

        register(is_frozen, name="extras.is_frozen", read_only=True)


def own_tools(gateway: Any) -> set[str]:
    """Wire names of the tools the project's own plugins registered on ``gateway``."""
    style = gateway.config.gateway.tool_names
    return {wire_name(spec.name, style) for spec in gateway.tools if spec.plugin in OWN_PLUGINS}
