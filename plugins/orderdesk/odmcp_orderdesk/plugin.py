"""The OrderDesk plugin: fetch/merge/upload/create/delete hooks over the REST API v2, and its tools.

Handles the object kinds ``order`` and ``inventory_item``; declines everything else (returns None).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from odmcp import hookimpl
from odmcp.errors import GatewayError, OutcomeUnknown, partly_applied
from odmcp.refs import Ref
from odmcp_orderdesk import merge, validate
from odmcp_orderdesk.reconcile import reconcile_order
from odmcp_orderdesk.runtime import STATE_KEY, OrderDeskRuntime, runtime
from odmcp_orderdesk.settings import STORE_TYPE, OrderDeskSettings, OrderDeskStore

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.cli import Commands

ORDER = "order"
INVENTORY = "inventory_item"
KINDS = (ORDER, INVENTORY)


@hookimpl
def gateway_register_config(register: Callable[..., None]) -> None:
    register("orderdesk", OrderDeskSettings)
    register("stores", OrderDeskStore)  # store type "orderdesk" (OrderDeskStore.STORE_TYPE)


@hookimpl
def gateway_register_commands(cli: Commands) -> None:
    from odmcp_orderdesk.commands import register_commands

    register_commands(cli)


@hookimpl
def gateway_register_tools(register: Callable[..., None]) -> None:
    from odmcp_orderdesk.tools import register_all

    register_all(register)


@hookimpl
def gateway_instructions(gateway: Gateway) -> str | None:
    if not gateway.serves_type(STORE_TYPE):
        return None  # no OrderDesk store configured: none of these tools is served
    served = {t.name for t in gateway.served_tools()}
    stores = (
        " stores_list shows the OrderDesk stores you may use, with their folders."
        if "stores.list" in served
        else ""
    )
    return (
        "Tools for reading and changing orders in OrderDesk, an order-management service. Updates are "
        "safe: orders_update fetches the full order, merges only your changes and uploads it, retrying on "
        "conflict, so fields you don't mention are kept. Use dry_run=true to preview a change. Lists "
        "return a summary per object; pass fields='full' or field names for more. A tool's cost is "
        "in OrderDesk requests: a store allows a burst of 20, then 3 per second." + stores
    )


@hookimpl
def gateway_register_routes(register: Callable[..., None], gateway: Gateway) -> None:
    from odmcp_orderdesk.webhook import webhook_handler

    register("/webhooks/orderdesk", webhook_handler(gateway), methods=["POST"], public=True)


@hookimpl
def gateway_startup(gateway: Gateway) -> Awaitable[None]:
    rt = OrderDeskRuntime(gateway)
    gateway.state[STATE_KEY] = rt
    return rt.start()


@hookimpl
def gateway_shutdown(gateway: Gateway) -> Awaitable[None] | None:
    rt = gateway.state.pop(STATE_KEY, None)
    return rt.stop() if rt is not None else None


@hookimpl
def gateway_fetch(ref: Ref, gateway: Gateway) -> Awaitable[dict[str, Any]] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return runtime(gateway).client(ref.store).get_order(ref.id)
    if ref.kind == INVENTORY:
        return runtime(gateway).client(ref.store).get_inventory_item(ref.id)
    return None


def _ours(ref: Ref, gateway: Gateway) -> bool:
    """Whether ``ref`` names an object of an OrderDesk store (another store type's plugin serves the rest)."""
    return any(s.name == ref.store for s in gateway.config.stores_of(STORE_TYPE))


@hookimpl
def gateway_merge(
    ref: Ref, current: dict[str, Any], changes: dict[str, Any], gateway: Gateway
) -> dict[str, Any] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return merge.merge_order(current, changes)
    if ref.kind == INVENTORY:
        return merge.merge_inventory_item(current, changes)
    return None


@hookimpl
def gateway_diff(
    ref: Ref, before: dict[str, Any], after: dict[str, Any], gateway: Gateway
) -> list[dict[str, Any]] | None:
    if ref.kind == ORDER and _ours(ref, gateway):
        return merge.diff(before, after)
    return None


@hookimpl
def gateway_reconcile(
    ref: Ref, before: dict[str, Any], intended: dict[str, Any], current: dict[str, Any], gateway: Gateway
) -> str | None:
    if ref.kind == ORDER and _ours(ref, gateway):
        return reconcile_order(before, intended, current)
    return None  # inventory items: the host's field-by-field default


@hookimpl
def gateway_upload(
    ref: Ref, obj: dict[str, Any], fetched: dict[str, Any], gateway: Gateway
) -> Awaitable[dict[str, Any]] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return _upload_order(gateway, ref, obj, fetched)
    if ref.kind == INVENTORY:
        validate.validate_inventory_item(obj, creating=False)
        return _upload_inventory(gateway, ref, obj)
    return None


async def _upload_inventory(gateway: Gateway, ref: Ref, obj: dict[str, Any]) -> dict[str, Any]:
    # OrderDesk answers an inventory PUT with a message only: read the stored item back.
    client = runtime(gateway).client(ref.store)
    await client.update_inventory_item(ref.id, obj)
    return await client.get_inventory_item(ref.id)


async def _create_inventory(gateway: Gateway, ref: Ref, body: dict[str, Any]) -> dict[str, Any]:
    # OrderDesk answers an inventory POST with a message only: find the new item by its unique SKU.
    client = runtime(gateway).client(ref.store)
    result = await client.create_inventory_item(body)
    if isinstance(result.get("inventory_item"), dict):
        return dict(result["inventory_item"])
    code = str(body.get("code", ""))
    for item in (await client.list_inventory(limit=500, code=code))["inventory_items"]:
        if str(item.get("code", "")) == code:
            return dict(item)
    return {"message": str(result.get("message", "Inventory Item Added")), "code": code}


async def _upload_order(
    gateway: Gateway, ref: Ref, obj: dict[str, Any], fetched: dict[str, Any]
) -> dict[str, Any]:
    """Send only what the change needs: the full order PUT for field changes, ``/move-orders`` for a
    folder change (it runs folder rules), both when both changed, the PUT first.

    A PUT is never repeated blindly after an unclear answer (it may add items twice): the workflow
    re-reads and reconciles instead. If the move fails after the PUT was applied, the error says so.
    """
    validate.validate_full_order(obj)
    client = runtime(gateway).client(ref.store)
    target = obj.get("folder_id")
    moving = target is not None and str(target) != str(fetched.get("folder_id"))
    body = dict(obj)
    body["folder_id"] = fetched.get("folder_id")
    stored: dict[str, Any] | None = None
    if merge.diff(fetched, body):
        try:
            stored = await client.update_order(ref.id, body)
        except OutcomeUnknown as err:
            err.hint = (
                f"Do not repeat the update blindly: call orders_get for order {ref.id} and check the "
                "fields you changed (and that added items are there once) before applying what is missing."
            )
            raise
    if not moving:
        assert stored is not None  # the workflow never uploads an empty diff
        return stored
    try:
        await client.move_orders([ref.id], folder_id=int(target))  # type: ignore[arg-type]
    except GatewayError as err:
        if stored is None:
            raise
        changed = ", ".join(c["path"] for c in merge.diff(fetched, body)[:8])
        raise partly_applied(err, f"the field changes ({changed})", f"the move to folder {target}") from None
    return await client.get_order(ref.id)


@hookimpl
def gateway_create(ref: Ref, body: dict[str, Any], gateway: Gateway) -> Awaitable[dict[str, Any]] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return runtime(gateway).client(ref.store).create_order(body)
    if ref.kind == INVENTORY:
        return _create_inventory(gateway, ref, body)
    return None


@hookimpl
def gateway_delete(ref: Ref, gateway: Gateway) -> Awaitable[Any] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return runtime(gateway).client(ref.store).delete_order(ref.id)
    if ref.kind == INVENTORY:
        return runtime(gateway).client(ref.store).delete_inventory_item(ref.id)
    return None
