"""OrderDesk's writes, declared for the host's one write route (:mod:`odmcp.api`).

Each class is one kind of write: which objects it locks (its targets), how it reads their state (the
snapshot, taken inside the lock), what it sends, and how a fresh read tells whether *this* write is
there. Counting, never guessing: an added item, shipment or note is there only if the entries that
match it went up by exactly one since the snapshot; a tracking number or SKU that already exists is
refused before anything is sent, as OrderDesk itself would. Whole-order and whole-item updates and
deletes use the host's :class:`~odmcp.api.UpdateObject` / :class:`~odmcp.api.DeleteObject` over the
plugin's hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from odmcp.api import (
    DeleteObject,
    GatewayError,
    NotFound,
    Plan,
    Ref,
    UpdateObject,
    ValidationFailed,
    Verdict,
    WriteIO,
    WriteOp,
    digest,
    lock_key,
)
from odmcp_orderdesk import merge, validate
from odmcp_orderdesk.reconcile import item_matches, same_value
from odmcp_orderdesk.runtime import runtime

if TYPE_CHECKING:
    from odmcp.api import Gateway
    from odmcp_orderdesk.client import OrderDeskClient

ORDER = "order"
INVENTORY = "inventory_item"


def _client(io: WriteIO, store: str) -> OrderDeskClient:
    return runtime(io.gateway).client(store).paced(io.reserve)


def _order_missing(ref: Ref) -> NotFound:
    return NotFound(f"order {ref.id} does not exist")


def _count(entries: list[Any], wanted: dict[str, Any]) -> int:
    return sum(1 for e in entries if item_matches(wanted, e))


def _by_count(before: int, now: int) -> Verdict:
    """Applied only if the matching entries went up by exactly one."""
    if now == before + 1:
        return "applied"
    return "not_applied" if now == before else "unknown"


def _fields_verdict(before: dict[str, Any], after: dict[str, Any], now: dict[str, Any] | None) -> Verdict:
    """A partial update of a part (an item, a shipment, an inventory item) from its fields' values."""
    if now is None:
        return "unknown"
    there = [same_value(now.get(k), v) for k, v in after.items()]
    absent = [same_value(now.get(k), before.get(k)) for k in after]
    if after and all(there):
        return "applied"
    return "not_applied" if all(absent) else "unknown"


# --- whole orders and inventory items (the host's hook-based ops, with OrderDesk's words) ------------

_READ_TOOL = {ORDER: "orders_get", INVENTORY: "inventory_get"}


@dataclass
class UpdateWhole(UpdateObject):
    """An order or inventory item: GET, merge, PUT of the whole object (the plugin's hooks)."""

    def how_to_check(self, target: str) -> str:
        extra = " (and that added items are there once)" if self.ref.kind == ORDER else ""
        return (
            f"call {_READ_TOOL[self.ref.kind]} for {self.ref.kind.replace('_', ' ')} {self.ref.id} "
            f"and check the fields you changed{extra}"
        )


@dataclass
class DeleteWhole(DeleteObject):
    """An order or inventory item the snapshot shows exists: DELETE it."""

    def how_to_check(self, target: str) -> str:
        return (
            f"call {_READ_TOOL[self.ref.kind]} for {self.ref.kind.replace('_', ' ')} {self.ref.id}: "
            "NOT_FOUND means it was deleted"
        )


def _part_plan(
    current: dict[str, Any],
    merged: dict[str, Any],
    changes: dict[str, Any],
    *,
    path: str,
    witness: dict[str, Any],
) -> Plan:
    """The plan of a partial update of a part (an item, a shipment, an inventory item): only the asked
    fields whose value changes, their values before and after (the witness the verdict compares)."""
    keys = [k for k in changes if k != "id" and not same_value(current.get(k), merged.get(k))]
    before = {k: current.get(k) for k in keys}
    after = {k: merged.get(k) for k in keys}
    return Plan(
        body=merged if keys else None,
        witness={**witness, "before": before, "after": after},
        fields=[f"{path}{k}" for k in keys],
        before=before,
        after=after,
        changes=[{"path": f"{path}{k}", "before": before[k], "after": after[k]} for k in keys],
        preview=merged,
        message="" if keys else "already has these values; nothing was sent",
    )


# --- order items ---------------------------------------------------------------------------


@dataclass
class AddItem(WriteOp):
    """``POST /orders/{id}/order-items``: one new item (snapshot: the order; 3 requests: OrderDesk answers
    with a message only, so the order is read back for the new item's id, which the journal keeps so a
    revert deletes exactly that item)."""

    action: ClassVar[str] = "add_item"
    ref: Ref
    item: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise _order_missing(self.ref)
        items = [i for i in snapshot.get("order_items") or [] if isinstance(i, dict)]
        return Plan(
            body=self.item,
            witness={
                "item": self.item,
                "count": _count(items, self.item),
                "ids": [str(i.get("id")) for i in items],
            },
            fields=["order_items"],
            after={"order_items[+new]": self.item},
        )

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        client = _client(io, self.ref.store)
        answer = await client.add_order_item(self.ref.id, self.item)
        out: dict[str, Any] = {"message": str(answer.get("message") or "Order Item Added")}
        try:  # OrderDesk answers with a message only: read the order back for the new item's id (+1)
            order: Any = await client.get_order(self.ref.id)
        except GatewayError:
            order = None  # the id stays unknown (a revert then finds the item by its fields)
        return {self.ref.id: out | self._new(plans[self.ref.id], order)}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        w = plan.witness
        return _by_count(
            w["count"], _count([i for i in fresh.get("order_items") or [] if isinstance(i, dict)], w["item"])
        )

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        if fresh is None:
            return result
        return {"message": "Order Item Added", "item": None} | self._new(plan, fresh)

    @staticmethod
    def _new(plan: Plan, order: Any) -> dict[str, Any]:
        """The new item and its ``id`` (journaled, so a revert deletes it by id): the one entry that
        matches it and was not in the snapshot; nothing when that is not exactly one."""
        items = order.get("order_items") if isinstance(order, dict) else None
        item = new_entry(items, plan.witness["ids"], plan.witness["item"])
        return {} if item is None else {"item": item, "id": str(item["id"])}

    def how_to_check(self, target: str) -> str:
        return f"call orders_get for order {self.ref.id} and count the matching items in order_items"


def new_entry(entries: Any, known: list[str], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The one entry of ``entries`` that matches ``wanted`` and whose id is not in ``known``."""
    seen = set(known)
    new = [
        e
        for e in entries or []
        if isinstance(e, dict) and e.get("id") and str(e["id"]) not in seen and item_matches(wanted, e)
    ]
    return new[0] if len(new) == 1 else None


def _order_item(snapshot: Any, ref: Ref, item_id: str) -> dict[str, Any]:
    if snapshot is None:
        raise _order_missing(ref)
    for item in snapshot.get("order_items") or []:
        if isinstance(item, dict) and str(item.get("id")) == item_id:
            return item
    raise NotFound(
        f"order {ref.id} has no item {item_id}", hint="orders_get shows the order's items and their ids."
    )


def _item_of(order: Any, item_id: str) -> dict[str, Any] | None:
    if order is None:
        return None
    return next(
        (i for i in order.get("order_items") or [] if isinstance(i, dict) and str(i.get("id")) == item_id),
        None,
    )


@dataclass
class UpdateItem(WriteOp):
    """``PUT /orders/{id}/order-items/{item}`` of the merged item (snapshot: the order; 2 requests)."""

    action: ClassVar[str] = "update_item"
    ref: Ref
    item_id: str
    changes: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    def plan(self, target: str, snapshot: Any) -> Plan:
        current = _order_item(snapshot, self.ref, self.item_id)
        merged = merge.merge_item(current, self.changes)
        validate.validate_order_item(merged, creating=False)
        path = f"order_items[{self.item_id}]."
        return _part_plan(current, merged, self.changes, path=path, witness={"item_id": self.item_id})

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        body = plans[self.ref.id].body
        answer = await _client(io, self.ref.store).update_order_item(self.ref.id, self.item_id, body)
        return {self.ref.id: {"message": str(answer.get("message") or "Order Item Updated")}}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        w = plan.witness
        return _fields_verdict(w["before"], w["after"], _item_of(fresh, w["item_id"]))

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return result if fresh is None else {"message": "Order Item Updated"}

    def how_to_check(self, target: str) -> str:
        return f"call orders_get for order {self.ref.id} and check item {self.item_id}"


@dataclass
class DeleteItem(WriteOp):
    """``DELETE /orders/{id}/order-items/{item}`` of an item the snapshot shows (2 requests)."""

    action: ClassVar[str] = "delete_item"
    ref: Ref
    item_id: str
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    def plan(self, target: str, snapshot: Any) -> Plan:
        item = _order_item(snapshot, self.ref, self.item_id)
        return Plan(
            body=True,
            witness={"item_id": self.item_id, "item": item},
            fields=[f"order_items[{self.item_id}]"],
        )

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        await _client(io, self.ref.store).delete_order_item(self.ref.id, self.item_id)
        return {self.ref.id: {"deleted": True, "id": self.item_id}}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        return "not_applied" if _item_of(fresh, plan.witness["item_id"]) is not None else "applied"

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return {"deleted": True, "id": self.item_id}

    def how_to_check(self, target: str) -> str:
        return f"call orders_get for order {self.ref.id} and check that item {self.item_id} is gone"


# --- shipments -----------------------------------------------------------------------------


def _tracking(shipment: dict[str, Any]) -> str:
    return str(shipment.get("tracking_number") or "").strip()


def _counted(shipment: dict[str, Any]) -> dict[str, Any]:
    """What identifies an added shipment when counting: its tracking number (or, for 'n/a', its fields)."""
    tracking = _tracking(shipment)
    if tracking and tracking.lower() != "n/a":
        return {"tracking_number": tracking}
    return {k: v for k, v in shipment.items() if v is not None and k != "order_id"}


async def _read_shipments(io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
    out: dict[Ref, Any] = {}
    for ref in refs:
        try:
            out[ref] = await _client(io, ref.store).list_shipments(ref.id)
        except NotFound:
            out[ref] = None
    return out


def _plan_shipment(ref: Ref, shipment: dict[str, Any], shipments: Any) -> Plan:
    if shipments is None:
        raise _order_missing(ref)
    tracking = _tracking(shipment)
    counted = _counted(shipment)
    if tracking and tracking.lower() != "n/a":
        same = next((s for s in shipments if _tracking(s) == tracking), None)
        if same is not None:
            raise ValidationFailed(
                f"order {ref.id} already has a shipment with tracking number {tracking!r} "
                f"(shipment {same.get('id')}); OrderDesk refuses a duplicate",
                hint="Use shipments_update to change that shipment; nothing was written.",
            )
    return Plan(
        body=shipment,
        witness={
            "counted": counted,
            "count": _count(shipments, counted),
            "ids": [str(s.get("id")) for s in shipments],
        },
        fields=["order_shipments"],
        after={"order_shipments[+new]": shipment},
    )


@dataclass
class AddShipment(WriteOp):
    """``POST /orders/{id}/shipments`` (snapshot: the order's shipments; 3 requests: the shipments are
    listed again after the answer for the new one's id, which the journal keeps for a revert)."""

    action: ClassVar[str] = "add_shipment"
    lists: ClassVar[bool] = False
    ref: Ref
    shipment: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return await _read_shipments(io, refs)

    def plan(self, target: str, snapshot: Any) -> Plan:
        return _plan_shipment(self.ref, self.shipment, snapshot)

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        client = _client(io, self.ref.store)
        answer = await client.add_shipment(self.ref.id, self.shipment)
        out: dict[str, Any] = {"message": str(answer.get("message") or "Shipment Added")}
        try:  # OrderDesk answers with a message only: list the shipments for the new one's id (+1)
            shipments: Any = await client.list_shipments(self.ref.id)
        except GatewayError:
            shipments = None  # the id stays unknown (a revert then finds it by its tracking number)
        return {self.ref.id: out | _new_shipment(plans[self.ref.id], shipments)}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        return _by_count(plan.witness["count"], _count(fresh, plan.witness["counted"]))

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return result if fresh is None else {"message": "Shipment Added"} | _new_shipment(plan, fresh)

    def how_to_check(self, target: str) -> str:
        return f"call shipments_list for order {self.ref.id} and look for the tracking number"


def _new_shipment(plan: Plan, shipments: Any) -> dict[str, Any]:
    """The new shipment's ``id`` (journaled, so a revert deletes it by id), when exactly one is new."""
    found = new_entry(shipments, plan.witness.get("ids", []), plan.witness["counted"])
    return {} if found is None else {"id": str(found["id"])}


def _shipment_of(shipments: Any, ref: Ref, shipment_id: str) -> dict[str, Any]:
    if shipments is None:
        raise _order_missing(ref)
    for s in shipments:
        if str(s.get("id")) == shipment_id:
            return dict(s)
    raise NotFound(
        f"order {ref.id} has no shipment {shipment_id}", hint="shipments_list shows the order's shipments."
    )


@dataclass
class UpdateShipment(WriteOp):
    """``PUT /orders/{id}/shipments/{shipment}`` of the merged shipment (2 requests)."""

    action: ClassVar[str] = "update_shipment"
    lists: ClassVar[bool] = False
    ref: Ref
    shipment_id: str
    changes: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return await _read_shipments(io, refs)

    def plan(self, target: str, snapshot: Any) -> Plan:
        current = _shipment_of(snapshot, self.ref, self.shipment_id)
        merged = merge.merge_shipment(current, self.changes)
        validate.validate_shipment(merged, creating=False)
        path = f"order_shipments[{self.shipment_id}]."
        return _part_plan(current, merged, self.changes, path=path, witness={"shipment_id": self.shipment_id})

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        body = plans[self.ref.id].body
        answer = await _client(io, self.ref.store).update_shipment(self.ref.id, self.shipment_id, body)
        return {self.ref.id: {"message": str(answer.get("message") or "Shipment Updated")}}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        w = plan.witness
        now = next((s for s in fresh or [] if str(s.get("id")) == w["shipment_id"]), None)
        return _fields_verdict(w["before"], w["after"], now)

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return result if fresh is None else {"message": "Shipment Updated"}

    def how_to_check(self, target: str) -> str:
        return f"call shipments_list for order {self.ref.id} and check shipment {self.shipment_id}"


@dataclass
class DeleteShipment(WriteOp):
    """``DELETE /orders/{id}/shipments/{shipment}`` of a shipment the snapshot shows (2 requests)."""

    action: ClassVar[str] = "delete_shipment"
    lists: ClassVar[bool] = False
    ref: Ref
    shipment_id: str
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return await _read_shipments(io, refs)

    def plan(self, target: str, snapshot: Any) -> Plan:
        shipment = _shipment_of(snapshot, self.ref, self.shipment_id)
        return Plan(
            body=True,
            witness={"shipment_id": self.shipment_id, "shipment": shipment},
            fields=[f"order_shipments[{self.shipment_id}]"],
        )

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        await _client(io, self.ref.store).delete_shipment(self.ref.id, self.shipment_id)
        return {self.ref.id: {"deleted": True, "id": self.shipment_id}}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        there = any(str(s.get("id")) == plan.witness["shipment_id"] for s in fresh)
        return "not_applied" if there else "applied"

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return {"deleted": True, "id": self.shipment_id}

    def how_to_check(self, target: str) -> str:
        return (
            f"call shipments_list for order {self.ref.id} and check that shipment {self.shipment_id} is gone"
        )


@dataclass
class AddShipments(WriteOp):
    """``POST /batch-shipments`` for up to 100 shipments (snapshot: each order's shipments).

    ``entries`` maps a target name (``order_id:tracking_number``) to its shipment (with
    ``order_id``); several may go to one order.
    """

    action: ClassVar[str] = "add_shipment"
    lists: ClassVar[bool] = False
    store: str
    entries: dict[str, dict[str, Any]]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {n: Ref(self.store, ORDER, str(e["order_id"])) for n, e in self.entries.items()}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return await _read_shipments(io, refs)

    def plan(self, target: str, snapshot: Any) -> Plan:
        return _plan_shipment(self.targets[target], self.entries[target], snapshot)

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        names = list(plans)
        try:
            results = await _client(io, self.store).batch_shipments([self.entries[n] for n in names])
        except GatewayError as err:
            per_entry = err.details.get("results")
            if not isinstance(per_entry, list) or len(per_entry) != len(names):
                raise
            results = per_entry
        out: dict[str, Any] = {}
        for name, res in zip(names, results, strict=False):
            status = str(res.get("status", "success")).lower() if isinstance(res, dict) else "success"
            message = str(res.get("message", "")) if isinstance(res, dict) else ""
            if status == "error":
                out[name] = entry_error(message, f"shipment {name}")
            else:
                out[name] = {"message": message or "Shipment Added"}
        return out

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        return _by_count(plan.witness["count"], _count(fresh, plan.witness["counted"]))

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return result if fresh is None else {"message": "Shipment Added"}

    def how_to_check(self, target: str) -> str:
        return f"call shipments_list for order {self.targets[target].id} and look for the tracking number"


def entry_error(message: str, what: str) -> GatewayError:
    """The error of one refused entry of a batch endpoint, from OrderDesk's message."""
    if "not found" in message.lower():
        return NotFound(f"{what}: {message}", hint="Check the id; nothing was written for it.")
    return ValidationFailed(f"{what}: {message or 'refused by OrderDesk'}")


# --- history notes -------------------------------------------------------------------------


@dataclass
class AddNote(WriteOp):
    """``POST /orders/{id}/order-history`` (snapshot: the order and its history; 3 requests).

    History has no ids: the note is there if the entries with its text went up by exactly one.
    """

    action: ClassVar[str] = "add_note"
    lists: ClassVar[bool] = False
    ref: Ref
    note: str
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        client = _client(io, self.ref.store)
        out: dict[Ref, Any] = {}
        for ref in refs:
            try:
                order = await client.get_order(ref.id)
            except NotFound:
                out[ref] = None
                continue
            out[ref] = {"order": order, "history": await client.get_order_history(order)}
        return out

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise _order_missing(self.ref)
        history = snapshot["history"]
        return Plan(
            body=self.note,
            witness={"count": sum(1 for h in history if h.get("note") == self.note), "entries": len(history)},
            fields=["order_history"],
            after={"order_history[+new]": self.note},
        )

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        order = await _client(io, self.ref.store).add_order_history(self.ref.id, self.note)
        history = order.get("order_history")
        return {
            self.ref.id: self._summary(
                self.ref.id, history if isinstance(history, list) else None, plans[self.ref.id]
            )
        }

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        return _by_count(
            plan.witness["count"], sum(1 for h in fresh["history"] if h.get("note") == self.note)
        )

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return result if fresh is None else self._summary(target, fresh["history"], plan)

    def _summary(self, target: str, history: list[Any] | None, plan: Plan) -> dict[str, Any]:
        entries = len(history) if history is not None else plan.witness["entries"] + 1
        return {"order_id": target, "note": self.note, "entries": entries}

    def how_to_check(self, target: str) -> str:
        return f"call orders_get for order {target} with include_history=true and count the note"


# --- folders -------------------------------------------------------------------------------


@dataclass
class MoveOrders(WriteOp):
    """``POST /move-orders`` for up to 100 orders (snapshot: each order; it runs the folder's rules).

    An order already in the folder is not sent (no rules run for it): ``already``.
    """

    action: ClassVar[str] = "move"
    store: str
    order_ids: list[str]
    folder_id: int
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {oid: Ref(self.store, ORDER, oid) for oid in self.order_ids}

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise _order_missing(self.targets[target])
        where = str(snapshot.get("folder_id"))
        if where == str(self.folder_id):
            return Plan(
                body=None,
                message=f"already in folder {self.folder_id}; nothing was sent (no folder rules ran)",
            )
        return Plan(
            body=self.folder_id,
            witness={"folder": where},
            fields=["folder_id"],
            before={"folder_id": where},
            after={"folder_id": str(self.folder_id)},
        )

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        ids = list(plans)
        answer = await _client(io, self.store).move_orders(ids, folder_id=self.folder_id)
        failed = {str(f) for f in answer.get("failed") or []}
        said = {
            str(r.get("order_id")): str(r.get("message") or "")
            for r in answer.get("results") or []
            if isinstance(r, dict)
        }
        return {
            oid: entry_error(said.get(oid, ""), f"order {oid}")
            if oid in failed
            else {"message": said.get(oid) or f"moved to folder {self.folder_id}"}
            for oid in ids
        }

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        now = str(fresh.get("folder_id"))
        if now == str(self.folder_id):
            return "applied"
        return "not_applied" if now == plan.witness["folder"] else "unknown"

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return result if fresh is None else {"message": f"in folder {self.folder_id}"}

    def how_to_check(self, target: str) -> str:
        return f"call orders_get for order {target} and check folder_id == {self.folder_id}"


# --- creates -------------------------------------------------------------------------------


@dataclass
class CreateOrder(WriteOp):
    """``POST /orders`` of an order with a ``source_id`` (snapshot: a search by it; 2 requests).

    The lock is the order's natural key (source_id + source_name). An order with that key already
    there is refused as OrderDesk would (a duplicate), unless the key was made by the gateway from
    an ``idempotency_key``: then it IS the order this key created, and the answer is ``already``.
    """

    action: ClassVar[str] = "create"
    gateway: Gateway
    store: str
    body: dict[str, Any]
    generated: bool = False
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {"new": Ref(self.store, ORDER, "")}

    @property
    def _key(self) -> tuple[str, str]:
        return str(self.body["source_id"]), str(self.body.get("source_name") or "")

    def lock_keys(self, gw: Gateway) -> list[str]:
        return [lock_key(gw, Ref(self.store, "order_source", digest(list(self._key))))]

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return {refs[0]: await _client(io, self.store).find_order(*self._key)}

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is not None:
            if self.generated:
                return Plan(body=None, preview=snapshot, message="this idempotency_key already created it")
            source_id, source_name = self._key
            raise ValidationFailed(
                f"an order with source_id {source_id!r}"
                + (f" from {source_name!r}" if source_name else "")
                + f" already exists (order {snapshot.get('id')}); OrderDesk refuses a duplicate",
                hint="Use a new source_id, or update that order; nothing was written.",
            )
        return Plan(body=self.body, witness={"source": list(self._key)}, fields=sorted(self.body), after={})

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        return {"new": await _client(io, self.store).create_order(self.body)}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        return "applied" if fresh is not None else "not_applied"

    def how_to_check(self, target: str) -> str:
        source_id = self._key[0]
        return f"call orders_list with source_id {source_id!r}; create it again only if it is not there"


@dataclass
class CreateInventoryItem(WriteOp):
    """``POST /inventory-items`` of a new SKU (snapshot: a search by code; refused if it exists)."""

    action: ClassVar[str] = "create"
    store: str
    item: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {"new": Ref(self.store, INVENTORY, "")}

    @property
    def code(self) -> str:
        return str(self.item.get("code") or "").strip()

    def lock_keys(self, gw: Gateway) -> list[str]:
        return [lock_key(gw, Ref(self.store, "inventory_code", digest(self.code)))]

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return {refs[0]: await _client(io, self.store).find_inventory_item(self.code)}

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is not None:
            raise ValidationFailed(
                f"an inventory item with code {self.code!r} already exists (item {snapshot.get('id')})",
                hint="Use inventory_update to change it; nothing was written.",
            )
        return Plan(body=self.item, witness={"code": self.code}, fields=sorted(self.item))

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        client = _client(io, self.store)
        answer = await client.create_inventory_item(self.item)
        try:  # OrderDesk answers with a message only: find the new item by its SKU
            found = await client.find_inventory_item(self.code)
        except GatewayError:
            found = None
        return {
            "new": found
            or {"message": str(answer.get("message") or "Inventory Item Added"), "code": self.code}
        }

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        return "applied" if fresh is not None else "not_applied"

    def how_to_check(self, target: str) -> str:
        return f"call inventory_list with code {self.code!r}; create it again only if it is not there"


# --- inventory in batches ------------------------------------------------------------------


@dataclass
class UpdateInventoryItems(WriteOp):
    """``PUT /batch-inventory-items`` of up to 100 merged items (snapshot: each item, by SKU where
    known: 1 request per 100; by id otherwise).

    ``wanted`` maps a target name (the id or SKU the caller gave) to ``(item id, code, changes)``.
    """

    action: ClassVar[str] = "update"
    store: str
    wanted: dict[str, tuple[str, str, dict[str, Any]]]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {n: Ref(self.store, INVENTORY, w[0]) for n, w in self.wanted.items()}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        client = _client(io, self.store)
        wanted = set(refs)
        codes = [
            w[1] for n, w in self.wanted.items() if self.targets[n] in wanted and w[1] and "," not in w[1]
        ]
        out: dict[Ref, Any] = {}
        if codes:
            page = await client.list_inventory(limit=500, code=",".join(codes))
            for item in page["inventory_items"]:
                ref = Ref(self.store, INVENTORY, str(item.get("id")))
                if ref in wanted:
                    out[ref] = item
        for ref in refs:
            if ref not in out and ref.id.isdigit():
                try:
                    out[ref] = await client.get_inventory_item(ref.id)
                except NotFound:
                    out[ref] = None
        return out  # a SKU no item has (the tool found none): no entry, so not found

    def plan(self, target: str, snapshot: Any) -> Plan:
        changes = self.wanted[target][2]
        if snapshot is None:
            what = f"code {target!r}" if self.wanted[target][1] else f"id {target}"
            raise NotFound(f"no inventory item with {what}", hint="inventory_list shows the items.")
        merged = merge.merge_inventory_item(snapshot, changes)
        validate.validate_inventory_item(merged, creating=False)
        return _part_plan(snapshot, merged, changes, path="", witness={})

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        names = list(plans)
        answer = await _client(io, self.store).batch_update_inventory([plans[n].body for n in names])
        failed = {str(f) for f in answer.get("failed") or []}
        return {
            n: ValidationFailed(f"inventory item {n}: OrderDesk refused it")
            if self.targets[n].id in failed
            else plans[n].body
            for n in names
        }

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        return _fields_verdict(plan.witness["before"], plan.witness["after"], fresh)

    def cached(self, ref: Ref, outcome: Any) -> dict[str, Any] | None:
        return None  # the batch answer has no stored items: the next read fetches

    def how_to_check(self, target: str) -> str:
        return f"call inventory_get for item {self.targets[target].id} and check the fields you changed"
