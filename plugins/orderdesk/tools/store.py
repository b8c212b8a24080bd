"""store.get and stores.list: settings and folders, never a credential."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from plugins.orderdesk.runtime import runtime
from plugins.orderdesk.tools.common import StoreArg

if TYPE_CHECKING:
    from gateway.app import Gateway

#: settings keys that are credentials; removed even if OrderDesk sends them
SECRET_SETTINGS = (
    "api_key",
    "smtp_password",
    "smtp_username",
    "smtp_host",
    "smtp_port",
    "smtp_encryption",
    "smtp_headers",
    "password",
)


class StoreResult(BaseModel):
    store: dict[str, Any]


class StoresResult(BaseModel):
    stores: list[dict[str, Any]]


def scrub(store: dict[str, Any]) -> dict[str, Any]:
    out = dict(store)
    settings = dict(out.get("settings") or {})
    for key in list(settings):
        if key in SECRET_SETTINGS or key.startswith("smtp_") or "password" in key:
            settings.pop(key)
    out["settings"] = settings
    return out


def register(register: Callable[..., None], gateway: Gateway) -> None:
    wf = gateway.workflow

    async def load(name: str) -> dict[str, Any]:
        client = runtime(gateway).client(name)
        return await wf.read_keyed(name, "store", lambda: client.get_store(), gateway.config.cache.ttl_store)

    async def store_get(store: StoreArg = None) -> StoreResult:
        """Get the store's settings and its folders (a map of folder id to name; use the ids with
        orders_list and orders_move). API keys and mail credentials are never included. Errors: AUTH."""
        name = gateway.store(store).name
        return StoreResult(store=scrub(await load(name)))

    register(store_get, name="store.get", title="Get store settings and folders", read_only=True)

    async def stores_list() -> StoresResult:
        """List the stores this gateway serves: name, whether it is the default, and its folders.
        Use a name as the `store` argument of any other tool. Never includes credentials."""
        out = []
        for s in gateway.config.stores:
            entry: dict[str, Any] = {"name": s.name, "default": s is gateway.config.default_store}
            try:
                entry["folders"] = (await load(s.name)).get("folders", {})
            except Exception as err:  # one unreachable store must not hide the others
                entry["error"] = getattr(err, "code", "UPSTREAM")
            out.append(entry)
        return StoresResult(stores=out)

    register(stores_list, name="stores.list", title="List the configured stores", read_only=True)
