"""store.get and stores.list: settings and folders, never a credential.

The client already strips credentials from ``GET /store`` (``wire.sanitize_store``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from odmcp.api import ToolCall, ToolTable, fit_object
from odmcp_orderdesk.folders import store_settings
from odmcp_orderdesk.tools.common import StoreArg

if TYPE_CHECKING:
    from odmcp.api import Gateway


class StoreResult(BaseModel):
    store: dict[str, Any]


class StoresResult(BaseModel):
    stores: list[dict[str, Any]]


TOOLS = ToolTable(toolset="store")


@TOOLS.tool("store.get", title="Get store settings", read_only=True)
async def store_get(gateway: Gateway, store: StoreArg = None) -> StoreResult:
    """Get the store's settings and folders (id: name), never its credentials. Cost: 1 request, 0 if
    cached."""
    name = gateway.store(store).name
    settings = await store_settings(gateway, name)
    summary: dict[str, Any] = {k: settings[k] for k in ("id", "name", "folders") if k in settings}
    return fit_object(
        StoreResult(store=settings),
        "store",
        gateway.config.gateway.max_result_bytes,
        summary,
        f"store {name!r}",
        "its other settings are in OrderDesk's UI",
    )


@TOOLS.tool("stores.list", title="List stores", read_only=True, store_scoped=False)
async def stores_list(gateway: Gateway, call: ToolCall) -> StoresResult:
    """List the stores you may use: name, default, folders (or an error code). Cost: 1 request per
    store, 0 if cached."""
    out = []
    mine = gateway.store(None)  # the caller's default store
    for s in gateway.visible_stores(call=call):  # a caller only sees the stores its token grants
        entry: dict[str, Any] = {"name": s.name, "default": s is mine}
        try:
            entry["folders"] = (await store_settings(gateway, s.name)).get("folders", {})
        except Exception as err:  # one unreachable store must not hide the others
            entry["error"] = str(getattr(err, "code", "UPSTREAM"))
        out.append(entry)
    return StoresResult(stores=out)
