"""folder_guard: refuse ``orders.delete`` for orders in protected folders, and count the refusals.

Configure it in the gateway's TOML file::

    [folder_guard]
    protected_folders = [3]        # e.g. "Closed"

The refusal reaches the MCP client as an ``AUTH`` error and is written to the audit log; the
metric ``mcpgw_folder_guard_refusals_total{folder="3"}`` counts refusals.
"""

from __future__ import annotations

from typing import Any

import msgspec

from odmcp.api import AuthError, Ref, hookimpl

__version__ = "0.1.0"


class FolderGuardSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: folder ids whose orders may not be deleted
    protected_folders: list[int] = []


@hookimpl
def gateway_register_config(register):  # type: ignore[no-untyped-def]
    register("folder_guard", FolderGuardSettings)


@hookimpl
def gateway_tool_pre_invoke(call, gateway):  # type: ignore[no-untyped-def]
    if call.name != "orders.delete":
        return None  # decline: nothing to check
    protected = set(gateway.config.section("folder_guard").protected_folders)
    order_id = call.arguments.get("order_id")
    if not protected or not isinstance(order_id, str) or not order_id.isdigit():
        return None  # the tool itself reports a malformed id

    async def check() -> None:
        store = gateway.store(call.arguments.get("store")).name
        # Read fresh, not from the cache: a policy for a destructive call must not act on a stale
        # folder (the order may have been moved in OrderDesk's UI a moment ago). Costs one request.
        order: dict[str, Any] = await gateway.hooks.fetch(Ref(store, "order", order_id))
        folder = order.get("folder_id")
        if folder in protected:
            gateway.metrics.inc("folder_guard_refusals_total", folder=str(folder))
            raise AuthError(
                f"order {order_id} is in protected folder {folder}; folder_guard refuses to delete it",
                hint="Move the order out of that folder first, or ask an operator.",
            )

    return check()
