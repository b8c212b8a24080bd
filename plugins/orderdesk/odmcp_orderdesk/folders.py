"""Store settings (cached) and folder checks, so a move to a folder that doesn't exist is refused
before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odmcp.api import GatewayError, ValidationFailed
from odmcp_orderdesk.runtime import runtime

if TYPE_CHECKING:
    from odmcp.api import Gateway

#: store settings (folders) change rarely: cached for 5 minutes unless ``[cache.ttl] store`` says otherwise
STORE_TTL = 300.0


async def store_settings(gateway: Gateway, store: str, *, fresh: bool = False) -> dict[str, Any]:
    """``GET /store`` through the cache (``fresh``: straight from OrderDesk, for a second look)."""
    client = runtime(gateway).client(store)
    if fresh:
        return await client.get_store()
    ttl = gateway.config.cache.ttl_for("store", STORE_TTL)
    return await gateway.workflow.read_keyed(store, "store", client.get_store, ttl)


async def folder_names(gateway: Gateway, store: str) -> dict[str, str]:
    """Folder id (text) -> name, from the cached settings; empty when they can't be read (a summary
    then says ``folder_name: null`` rather than failing the whole list)."""
    try:
        folders = (await store_settings(gateway, store)).get("folders")
    except GatewayError:
        return {}
    return {str(k): str(v) for k, v in folders.items()} if isinstance(folders, dict) else {}


async def resolve_folder(
    gateway: Gateway, store: str, *, folder_id: Any = None, folder_name: str | None = None
) -> int:
    """The id of an existing folder named by id or exact name, else VALIDATION listing the folders.

    The cached settings are asked first; a miss is checked once against OrderDesk (the folder may
    be new) before it is refused.
    """
    for fresh in (False, True):
        folders = (await store_settings(gateway, store, fresh=fresh)).get("folders") or {}
        if not isinstance(folders, dict):
            break
        for fid, name in folders.items():
            if (folder_id is not None and str(fid) == str(folder_id)) or (
                folder_name is not None and name == folder_name
            ):
                return int(fid)
    listing = ", ".join(f"{fid} {name!r}" for fid, name in list(folders.items())[:20]) or "none"
    what = f"folder_id {folder_id}" if folder_id is not None else f"folder_name {folder_name!r}"
    raise ValidationFailed(
        f"{what} is not a folder of store {store!r} (folders: {listing})",
        hint="Use one of the listed folders (see store_get); nothing was written.",
        field="folder_id" if folder_id is not None else "folder_name",
    )
