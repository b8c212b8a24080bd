"""The OrderDesk plugin: fetch/merge/upload/delete hooks over the REST API v2, and its tools.

Handles the object kinds ``order`` and ``inventory_item``; declines everything else (returns None).
Creates, and every write that is not a whole-object update or delete, are declared as write
operations (:mod:`odmcp_orderdesk.operations`) for the host's write route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from odmcp.api import GatewayError, OutcomeUnknown, Ref, hookimpl, partly_applied
from odmcp_orderdesk import merge, validate
from odmcp_orderdesk.reconcile import reconcile_order
from odmcp_orderdesk.runtime import STATE_KEY, OrderDeskRuntime, runtime
from odmcp_orderdesk.settings import STORE_TYPE, OrderDeskSettings, OrderDeskStore

if TYPE_CHECKING:
    from odmcp.api import Commands, Gateway
    from odmcp_orderdesk.client import OrderDeskClient

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
def gateway_register_reverts(register: Callable[..., None]) -> None:
    from odmcp_orderdesk.reverts import register_reverts

    register_reverts(register)


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
def gateway_fetch(ref: Ref, gateway: Gateway, reserve: int) -> Awaitable[dict[str, Any]] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return runtime(gateway).client(ref.store).paced(reserve).get_order(ref.id)
    if ref.kind == INVENTORY:
        return runtime(gateway).client(ref.store).paced(reserve).get_inventory_item(ref.id)
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
    ref: Ref, obj: dict[str, Any], fetched: dict[str, Any], gateway: Gateway, reserve: int
) -> Awaitable[dict[str, Any]] | None:
    if not _ours(ref, gateway):
        return None
    client = runtime(gateway).client(ref.store).paced(reserve)
    if ref.kind == ORDER:
        return _upload_order(client, ref, obj, fetched)
    if ref.kind == INVENTORY:
        validate.validate_inventory_item(obj, creating=False)
        return _upload_inventory(client, ref, obj)
    return None


async def _upload_inventory(client: OrderDeskClient, ref: Ref, obj: dict[str, Any]) -> dict[str, Any]:
    # OrderDesk answers an inventory PUT with a message only: read the stored item back.
    await client.update_inventory_item(ref.id, obj)
    return await client.get_inventory_item(ref.id)


async def _upload_order(
    client: OrderDeskClient, ref: Ref, obj: dict[str, Any], fetched: dict[str, Any]
) -> dict[str, Any]:
    """Send only what the change needs: the full order PUT for field changes, ``/move-orders`` for a
    folder change (it runs folder rules), both when both changed, the PUT first.

    A PUT is never repeated blindly after an unclear answer (it may add items twice): the workflow
    re-reads and reconciles instead. If the move fails after the PUT was applied, the error says so.
    """
    validate.validate_full_order(obj)
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
def gateway_delete(ref: Ref, gateway: Gateway, reserve: int) -> Awaitable[Any] | None:
    if not _ours(ref, gateway):
        return None
    if ref.kind == ORDER:
        return runtime(gateway).client(ref.store).paced(reserve).delete_order(ref.id)
    if ref.kind == INVENTORY:
        return runtime(gateway).client(ref.store).paced(reserve).delete_inventory_item(ref.id)
    return None
