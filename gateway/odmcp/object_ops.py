"""Write operations built on the object hooks, for any store plugin that implements them.

:class:`UpdateObject` is fetch -> merge -> upload (``gateway_fetch``, ``gateway_merge``,
``gateway_diff``, ``gateway_upload``, ``gateway_reconcile``); :class:`DeleteObject` and
:class:`CreateObject` use ``gateway_delete`` and ``gateway_create``. All of them run through the one
write route (:mod:`odmcp.route`), like a store plugin's own operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from odmcp.errors import Conflict, NotFound
from odmcp.refs import Ref
from odmcp.route import Plan, TargetOutcome, Verdict, WriteIO, WriteOp

if TYPE_CHECKING:
    from odmcp.app import Gateway


def _missing(ref: Ref) -> NotFound:
    return NotFound(f"{ref.kind} {ref.id} does not exist")


@dataclass
class UpdateObject(WriteOp):
    """Merge partial ``changes`` into the object and upload it whole; retried on a store's conflict.

    Nothing is uploaded when the merge changes nothing (``already``). With ``mutations.precondition``
    the object is read once more right before the upload, and any change of its content since the
    snapshot is a conflict (one more request).
    """

    action: ClassVar[str] = "update"

    gateway: Gateway
    ref: Ref
    changes: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise _missing(self.ref)
        hooks = self.gateway.hooks
        merged = hooks.merge(self.ref, snapshot, self.changes)
        diff = hooks.diff(self.ref, snapshot, merged)
        paths = [c["path"] for c in diff]
        # what the caller sees: the merged object, plus what the merge leaves out because the upload
        # never sends it (unchanged upstream), so every result has the same shape
        removed = {k for k, v in self.changes.items() if v is None}
        shown = {**merged, **{k: v for k, v in snapshot.items() if k not in merged and k not in removed}}
        return Plan(
            body=merged if diff else None,
            witness={"snapshot": snapshot, "intended": merged},
            fields=paths,
            before={c["path"]: c["before"] for c in diff},
            after={c["path"]: c["after"] for c in diff},
            changes=diff,
            preview=shown,
            message="" if diff else "already has these values; nothing was sent",
        )

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        (target, plan), hooks = next(iter(plans.items())), self.gateway.hooks
        snapshot = plan.witness["snapshot"]
        if self.gateway.config.mutations.precondition:
            fresh = await hooks.fetch(self.ref, reserve=io.reserve)
            if hooks.diff(self.ref, snapshot, fresh):
                raise Conflict(
                    f"{self.ref.kind} {self.ref.id} was changed by another writer since it was read"
                )
        return {target: await hooks.upload(self.ref, plan.body, snapshot, reserve=io.reserve)}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        if fresh is None:
            return "unknown"
        snapshot, intended = plan.witness["snapshot"], plan.witness["intended"]
        hooks = self.gateway.hooks
        verdict: Verdict = hooks.reconcile(self.ref, snapshot, intended, fresh)  # type: ignore[assignment]
        return verdict

    def cached(self, ref: Ref, outcome: TargetOutcome) -> dict[str, Any] | None:
        return outcome.value if isinstance(outcome.value, dict) else None

    def how_to_check(self, target: str) -> str:
        return f"read {self.ref.kind} {self.ref.id} again in a few seconds and check the fields you changed"


@dataclass
class DeleteObject(WriteOp):
    """Delete an object that the snapshot shows exists (NOT_FOUND, nothing sent, when it does not).

    After an unclear answer the object is gone -> deleted; still there after an answer -> sent again.
    The snapshot (the whole object) is journaled, so a person can see what was deleted.
    """

    action: ClassVar[str] = "delete"

    gateway: Gateway
    ref: Ref
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {self.ref.id: self.ref}

    def plan(self, target: str, snapshot: Any) -> Plan:
        if snapshot is None:
            raise _missing(self.ref)
        return Plan(body=True, witness={"object": snapshot}, fields=["*"])

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        await self.gateway.hooks.delete(self.ref, reserve=io.reserve)
        return {self.ref.id: {"deleted": True, "id": self.ref.id}}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        return "applied" if fresh is None else "not_applied"

    def value(self, target: str, plan: Plan, result: Any, fresh: Any) -> Any:
        return {"deleted": True, "id": self.ref.id}

    def how_to_check(self, target: str) -> str:
        return f"read {self.ref.kind} {self.ref.id} again: NOT_FOUND means it was deleted"


@dataclass
class CreateObject(WriteOp):
    """Create through ``gateway_create``. The generic route cannot find an object that has no id yet,
    so an unclear answer stays OUTCOME_UNKNOWN here; store plugins declare their own create (looked up
    by a natural key) where they can do better."""

    action: ClassVar[str] = "create"

    gateway: Gateway
    ref: Ref
    body: dict[str, Any]
    targets: dict[str, Ref] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {"new": self.ref}

    async def read(self, io: WriteIO, refs: list[Ref]) -> dict[Ref, Any]:
        return {ref: None for ref in refs}

    def plan(self, target: str, snapshot: Any) -> Plan:
        return Plan(body=self.body, witness=None, fields=sorted(self.body), after=dict(self.body))

    async def send(self, io: WriteIO, plans: dict[str, Plan]) -> dict[str, Any]:
        return {"new": await self.gateway.hooks.create(self.ref, self.body, reserve=io.reserve)}

    def verdict(self, target: str, plan: Plan, fresh: Any) -> Verdict:
        return "unknown"

    def how_to_check(self, target: str) -> str:
        return f"list the {self.ref.kind} objects and look for the new one before creating it again"
