"""The host's own behaviour, implemented through the public hooks like any other plugin."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.diff import diff
from gateway.plugins import hookimpl
from gateway.refs import Ref
from gateway.workflow import current_call

if TYPE_CHECKING:
    from gateway.app import Gateway


@hookimpl(trylast=True)
def gateway_merge(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Default merge: shallow, and an explicit ``None`` removes the field."""
    merged = copy.deepcopy(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@hookimpl(trylast=True)
def gateway_diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Default diff: every differing leaf (lists of objects with ids are matched by id)."""
    return diff(before, after)


@hookimpl
def gateway_invalidate(ref: Ref, lists: bool, gateway: Gateway) -> Any:
    """Drop the cached object and, when lists may have changed, bump the store's list generation."""
    if gateway.cache is None:
        return None
    store_id = gateway.store_id(ref.store)
    return gateway.cache.invalidate(store_id, ref.kind, ref.id or None, lists)


@hookimpl
def gateway_register_tools(register: Callable[..., None], gateway: Gateway) -> None:
    async def ping() -> dict[str, Any]:
        """Check that the gateway answers. Returns its version and the store names you may use.

        Costs no upstream request; use it to test a connection."""
        call = current_call.get()
        token = call.token if call is not None else None
        # like stores_list: a caller only learns the names of the stores its token grants
        names = [s.name for s in gateway.config.stores if token is None or token.allows_store(s.name)]
        return {"ok": True, "version": __version__, "stores": names}

    register(
        ping,
        name="gateway.ping",
        title="Ping the gateway",
        read_only=True,
        open_world=False,
        store_scoped=False,
    )
