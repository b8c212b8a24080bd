"""How to undo OrderDesk changes (``gateway_register_reverts``; the host lists and runs them).

One builder per journaled (kind, action). Each returns a write op for the host's one write route:
planned from a snapshot read inside the lock, so it restores a field only where the current value is
still what the change wrote; a field someone else changed since is left alone and listed in the op's
``conflicts`` (``force`` overwrites it). What can't be undone says why:

* order and inventory field changes (``update``) -> the before-values, through the whole-object
  update (a folder change moves the order back: it asks for confirmation, its rules run again);
* ``update_item`` / ``update_shipment`` -> the part's before-values;
* ``add_item`` / ``add_shipment`` -> deleted by the id the change recorded (found by its fields or
  tracking number when the id was not recorded); ``delete_item`` / ``delete_shipment`` -> re-added
  from the witness (the report names the new id);
* ``move`` -> moved back to the recorded folder (confirmation: the folder's rules run again);
* ``add_note`` (history is append-only), ``delete`` of an order (the entry keeps it whole), ``create``:
  not revertible.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from odmcp.api import Conflict, NotFound, Plan, Ref, RevertStep, UpdateObject, WriteRecord
from odmcp_orderdesk.merge import DELETE_MARKER, ITEM_MAP_FIELDS, NEW_ITEM
from odmcp_orderdesk.operations import (
    INVENTORY,
    ORDER,
    AddItem,
    AddShipment,
    DeleteItem,
    DeleteShipment,
    MoveOrders,
    UpdateItem,
    UpdateShipment,
    _item_of,
    _tracking,
    new_entry,
)
from odmcp_orderdesk.reconcile import item_matches, same_value

if TYPE_CHECKING:
    from odmcp.api import Gateway

_ITEM_PATH = re.compile(r"^order_items\[([^\]]+)\](?:\.(.+))?$")
#: fields OrderDesk sets on a stored part: never sent when one is re-added
_SERVER_SET = ("id", "order_id", "date_added", "date_updated")
Conflicts = dict[str, list[dict[str, Any]]]


def _same(current: Any, expected: Any) -> bool:
    """``current`` is (still) ``expected``: numbers loosely, a part by the fields ``expected`` names."""
    if isinstance(expected, dict) and isinstance(current, dict):
        wanted = {k: v for k, v in expected.items() if v is not None and k not in _SERVER_SET}
        return item_matches(wanted, current)
    if isinstance(current, dict | list) or isinstance(expected, dict | list):
        return bool(current == expected) or (not current and not expected)
    if current in (None, "") and expected in (None, ""):
        return True
    return same_value(current, expected)


def _conflict(path: str, wrote: Any, current: Any) -> dict[str, Any]:
    return {"path": path, "wrote": wrote, "current": current}


def _all_conflict(what: str, conflicts: list[dict[str, Any]]) -> Conflict:
    shown = "; ".join(f"{c['path']} is now {c['current']!r}" for c in conflicts[:5])
    return Conflict(
        f"{what}: nothing restored, every field was changed by someone else since ({shown})",
        hint="Check with the user; force=true overwrites them.",
        conflicts=conflicts,
    )


# --- order and inventory fields ----------------------------------------------------------------


@dataclass
class RevertFields(UpdateObject):
    """Put an order's (or inventory item's) changed fields back to their before-values."""

    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    #: the snapshot the change was planned from (finds items it added without an id)
    earlier: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    conflicts: Conflicts = field(default_factory=dict)

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise NotFound(f"{self.ref.kind} {self.ref.id} no longer exists; nothing to restore")
        changes: dict[str, Any] = {}
        items: dict[str, dict[str, Any]] = {}
        readd: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        restored = 0
        for path, wrote in self.after.items():
            was = self.before.get(path)
            current, where = self._current(snapshot, path, wrote)
            if _same(current, was) and where is None:
                continue  # already as before the change
            if not _same(current, wrote) and not self.force:
                conflicts.append(_conflict(path, wrote, current))
                continue
            restored += 1
            self._restore(path, was, where, changes, items, readd)
        self.conflicts[target] = conflicts
        if not restored:
            if conflicts:
                raise _all_conflict(f"{self.ref.kind} {self.ref.id}", conflicts)
            return Plan(body=None, message="already as before the change; nothing was sent")
        if items or readd:
            changes["order_items"] = [*items.values(), *readd]
        self.changes = changes
        plan = super().plan(target, snapshot)
        if isinstance(plan.witness, dict):
            plan.witness["conflicts"] = conflicts
        return plan

    def _current(self, order: dict[str, Any], path: str, wrote: Any) -> tuple[Any, str | None]:
        """The current value at ``path`` and, for an added item, the id it has now."""
        m = _ITEM_PATH.match(path) if self.ref.kind == ORDER else None
        if m is None:
            head, _, rest = path.partition(".")
            value = order.get(head)
            return (value.get(rest) if isinstance(value, dict) else None) if rest else value, None
        key, rest = m.group(1), m.group(2)
        if key == NEW_ITEM:  # added without an id: the one new item that matches it
            earlier = [str(i.get("id")) for i in self.earlier.get("order_items") or [] if isinstance(i, dict)]
            wanted = {k: v for k, v in (wrote or {}).items() if v is not None and k != "id"}
            found = new_entry(order.get("order_items"), earlier, wanted)
            return (found, str(found["id"])) if found else (None, None)
        item = _item_of(order, key)
        if rest is None:
            return item, None
        head, _, sub = rest.partition(".")
        value = item.get(head) if item else None
        return (value.get(sub) if isinstance(value, dict) else None) if sub else value, None

    @staticmethod
    def _restore(
        path: str,
        was: Any,
        new_id: str | None,
        changes: dict[str, Any],
        items: dict[str, dict[str, Any]],
        readd: list[dict[str, Any]],
    ) -> None:
        m = _ITEM_PATH.match(path)
        if m is None:
            head, _, rest = path.partition(".")
            if rest:
                changes.setdefault(head, {})[rest] = was
            else:
                changes[head] = was
            return
        key, rest = m.group(1), m.group(2)
        if key == NEW_ITEM:
            if new_id:
                items[new_id] = {"id": new_id, DELETE_MARKER: True}
            return
        if rest is None:
            if was is None:
                items[key] = {"id": key, DELETE_MARKER: True}
            else:
                readd.append({k: v for k, v in was.items() if k not in _SERVER_SET})
            return
        entry = items.setdefault(key, {"id": key})
        head, _, sub = rest.partition(".")
        if sub and head in ITEM_MAP_FIELDS:
            entry.setdefault(head, {})[sub] = was
        else:
            entry[head] = was


def _revert_update(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    if not rec.after and not rec.before:
        return RevertStep(reason="the journal has no before-values for this change")
    earlier = rec.witness.get("snapshot") if isinstance(rec.witness, dict) else None
    op = RevertFields(
        gw,
        Ref(rec.store, rec.kind, rec.object_id),
        {},
        before=dict(rec.before),
        after=dict(rec.after) if rec.after else dict.fromkeys(rec.before),
        earlier=earlier if isinstance(earlier, dict) else {},
        force=force,
    )
    if rec.kind == ORDER and "folder_id" in rec.after:
        return RevertStep(op, confirm=_move_text(rec.object_id, rec.before.get("folder_id")))
    return RevertStep(op)


def _move_text(order_id: str, folder: Any) -> str:
    return (
        f"order {order_id} goes back to folder {folder}: that folder's rules (emails, fulfilment) run again"
    )


# --- items and shipments -----------------------------------------------------------------------


def _restore_keys(
    before: dict[str, Any], after: dict[str, Any], current: dict[str, Any], force: bool, prefix: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    restore: dict[str, Any] = {}
    conflicts: list[dict[str, Any]] = []
    for key, wrote in after.items():
        now = current.get(key)
        if _same(now, before.get(key)):
            continue
        if _same(now, wrote) or force:
            restore[key] = before.get(key)
        else:
            conflicts.append(_conflict(f"{prefix}.{key}", wrote, now))
    return restore, conflicts


@dataclass
class RevertItem(UpdateItem):
    """Put an item's changed fields back (only those still as the change left them)."""

    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    conflicts: Conflicts = field(default_factory=dict)

    def plan(self, target: str, snapshot: Any) -> Plan:
        current = _item_of(snapshot, self.item_id)
        if current is None:
            raise NotFound(f"order {self.ref.id} has no item {self.item_id} any more; nothing to restore")
        self.changes, conflicts = _restore_keys(
            self.before, self.after, current, self.force, f"order_items[{self.item_id}]"
        )
        self.conflicts[target] = conflicts
        if not self.changes and conflicts:
            raise _all_conflict(f"item {self.item_id} of order {self.ref.id}", conflicts)
        return super().plan(target, snapshot)


@dataclass
class RevertShipment(UpdateShipment):
    """Put a shipment's changed fields back (only those still as the change left them)."""

    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    conflicts: Conflicts = field(default_factory=dict)

    def plan(self, target: str, snapshot: Any) -> Plan:
        current = next((s for s in snapshot or [] if str(s.get("id")) == self.shipment_id), None)
        if snapshot is not None and current is None:
            raise NotFound(f"order {self.ref.id} has no shipment {self.shipment_id} any more")
        if current is not None:
            self.changes, conflicts = _restore_keys(
                self.before, self.after, current, self.force, f"order_shipments[{self.shipment_id}]"
            )
            self.conflicts[target] = conflicts
            if not self.changes and conflicts:
                raise _all_conflict(f"shipment {self.shipment_id} of order {self.ref.id}", conflicts)
        return super().plan(target, snapshot)


@dataclass
class RemoveAddedItem(DeleteItem):
    """Delete the item a change added (by its recorded id; by its fields when none was recorded)."""

    wanted: dict[str, Any] = field(default_factory=dict)
    known: list[str] = field(default_factory=list)

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise NotFound(f"order {self.ref.id} no longer exists; nothing to remove")
        if not self.item_id:
            found = new_entry(snapshot.get("order_items"), self.known, self.wanted)
            if found is None:
                raise NotFound(
                    f"the item added to order {self.ref.id} can't be told apart (its id was not recorded)",
                    hint="Call orders_get and delete it with order_items_delete; nothing was changed.",
                )
            self.item_id = str(found["id"])
        if _item_of(snapshot, self.item_id) is None:
            return Plan(body=None, message=f"item {self.item_id} is already gone; nothing was sent")
        return super().plan(target, snapshot)


@dataclass
class RemoveAddedShipment(DeleteShipment):
    """Delete the shipment a change added (by its recorded id, else by its tracking number)."""

    tracking: str = ""

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise NotFound(f"order {self.ref.id} no longer exists; nothing to remove")
        if not self.shipment_id:
            same = [s for s in snapshot if self.tracking and _tracking(s) == self.tracking]
            if len(same) != 1:
                raise NotFound(
                    f"the shipment added to order {self.ref.id} can't be found (its id was not recorded)",
                    hint="Call shipments_list and delete it with shipments_delete; nothing was changed.",
                )
            self.shipment_id = str(same[0]["id"])
        if not any(str(s.get("id")) == self.shipment_id for s in snapshot):
            return Plan(body=None, message=f"shipment {self.shipment_id} is already gone; nothing was sent")
        return super().plan(target, snapshot)


@dataclass
class MoveBack(MoveOrders):
    """Move an order back to the folder it was in before a change (confirmed: the rules run again)."""

    action: ClassVar[str] = "move"
    wrote: str = ""
    force: bool = False
    conflicts: Conflicts = field(default_factory=dict)

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is not None:
            now = str(snapshot.get("folder_id"))
            if now != str(self.folder_id) and now != self.wrote and not self.force:
                c = _conflict("folder_id", self.wrote, now)
                self.conflicts[target] = [c]
                raise _all_conflict(f"order {target}", [c])
        return super().plan(target, snapshot)


def _part(rec: WriteRecord, key: str) -> dict[str, Any]:
    w = rec.witness if isinstance(rec.witness, dict) else {}
    part = w.get(key)
    return part if isinstance(part, dict) else {}


def _ref(rec: WriteRecord) -> Ref:
    return Ref(rec.store, rec.kind, rec.object_id)


def _revert_add_item(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    w = rec.witness if isinstance(rec.witness, dict) else {}
    wanted = {k: v for k, v in (w.get("item") or {}).items() if v is not None}
    item_id = str(rec.extra.get("id") or "")
    return RevertStep(RemoveAddedItem(_ref(rec), item_id, wanted=wanted, known=list(w.get("ids") or [])))


def _revert_add_shipment(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    w = rec.witness if isinstance(rec.witness, dict) else {}
    tracking = str((w.get("counted") or {}).get("tracking_number") or "")
    shipment_id = str(rec.extra.get("id") or "")
    if not shipment_id and not tracking:
        return RevertStep(reason="the added shipment's id was not recorded and it has no tracking number")
    return RevertStep(RemoveAddedShipment(_ref(rec), shipment_id, tracking=tracking))


def _revert_delete_item(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    item = _part(rec, "item")
    if not item:
        return RevertStep(reason="the journal does not hold the deleted item")
    return RevertStep(AddItem(_ref(rec), {k: v for k, v in item.items() if k not in _SERVER_SET}))


def _revert_delete_shipment(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    shipment = _part(rec, "shipment")
    if not shipment:
        return RevertStep(reason="the journal does not hold the deleted shipment")
    body = {k: v for k, v in shipment.items() if k not in _SERVER_SET and v is not None}
    return RevertStep(AddShipment(_ref(rec), body))


def _revert_update_item(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    w = rec.witness if isinstance(rec.witness, dict) else {}
    return RevertStep(
        RevertItem(
            _ref(rec), str(w.get("item_id")), {}, before=dict(rec.before), after=dict(rec.after), force=force
        )
    )


def _revert_update_shipment(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    w = rec.witness if isinstance(rec.witness, dict) else {}
    return RevertStep(
        RevertShipment(
            _ref(rec),
            str(w.get("shipment_id")),
            {},
            before=dict(rec.before),
            after=dict(rec.after),
            force=force,
        )
    )


def _revert_move(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
    folder = rec.before.get("folder_id")
    if folder is None or not str(folder).isdigit():
        return RevertStep(reason="the journal does not say which folder the order was in")
    op = MoveBack(rec.store, [rec.object_id], int(folder), wrote=str(rec.after.get("folder_id")), force=force)
    return RevertStep(op, confirm=_move_text(rec.object_id, folder))


def _not(reason: str, offer: str = "") -> Callable[[WriteRecord, Gateway, bool], RevertStep]:
    def build(rec: WriteRecord, gw: Gateway, force: bool) -> RevertStep:
        made = rec.object_id or str(rec.extra.get("id", ""))
        return RevertStep(reason=reason.format(id=made), offer=offer.format(id=made))

    return build


BUILDERS: dict[tuple[str, str], Callable[[WriteRecord, Gateway, bool], RevertStep]] = {
    (ORDER, "update"): _revert_update,
    (INVENTORY, "update"): _revert_update,
    (ORDER, "add_item"): _revert_add_item,
    (ORDER, "update_item"): _revert_update_item,
    (ORDER, "delete_item"): _revert_delete_item,
    (ORDER, "add_shipment"): _revert_add_shipment,
    (ORDER, "update_shipment"): _revert_update_shipment,
    (ORDER, "delete_shipment"): _revert_delete_shipment,
    (ORDER, "move"): _revert_move,
    (ORDER, "add_note"): _not(
        "OrderDesk's order history is append-only: a note can't be removed",
        offer="Add a correcting note with orders_add_note.",
    ),
    (ORDER, "delete"): _not(
        "OrderDesk can't restore a deleted order; changes_list with fields='full' shows it whole",
        offer="A person can re-create it from the entry with orders_create (it gets a new id).",
    ),
    (INVENTORY, "delete"): _not(
        "OrderDesk can't restore a deleted inventory item; changes_list with fields='full' shows it",
        offer="Re-create it with inventory_create.",
    ),
    (ORDER, "create"): _not(
        "a created order is not reverted automatically", offer="Delete order {id} with orders_delete."
    ),
    (INVENTORY, "create"): _not(
        "a created inventory item is not reverted automatically", offer="Delete it with inventory_delete."
    ),
}


def register_reverts(register: Callable[..., None]) -> None:
    for (kind, action), builder in BUILDERS.items():
        register(kind, action, builder)


__all__ = ["BUILDERS", "item_matches", "register_reverts"]
