"""The ``changes`` toolset: ``changes_list`` and ``changes_revert`` (see :mod:`odmcp.changes`).

Host tools, for every store: the generic parts (the journal, grants, grouping, confirmation, the bulk
runner) are here; how to undo each kind of change is the store plugin's (``gateway_register_reverts``).
No ``from __future__ import annotations``: the tools are closures over the gateway, and their
annotations (the confirmation resolver among them) must be objects, not names to look up later.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from pydantic import BaseModel, Field

from odmcp.app import Gateway
from odmcp.bulk import BulkJob
from odmcp.changes import ChangeFilter, list_changes, may_force, parse_since, records_of, sees_all
from odmcp.errors import AuthError, ConfirmationRequired, GatewayError, ValidationFailed
from odmcp.plugins import hookimpl
from odmcp.tools import ToolCall, can_elicit, current_call

_ID = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]


class ChangesList(BaseModel):
    # newest first; a bulk call is one entry with ``targets``
    changes: list[dict[str, Any]]
    next_offset: int | None = None
    history: str | None = None


class RevertReport(BaseModel):
    change_id: str
    dry_run: bool = False
    total: int
    totals: dict[str, int]
    #: per target: outcome, restored fields, conflicts (left alone) with current values, new ids
    results: list[dict[str, Any]]
    #: changes of the job that can't be undone, and why
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    replayed: bool = False
    message: str = ""


class ConfirmRevert(BaseModel):
    confirm: bool = Field(description="true to move the orders back; their folder rules run again")


async def revert(
    gw: Gateway,
    call: ToolCall,
    change_id: str,
    *,
    targets: list[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    confirmed: bool = False,
    idempotency_key: str | None = None,
    progress: Any = None,
) -> RevertReport:
    """Undo ``change_id`` (one change, or a job's targets) through the one write route."""
    if force and not may_force(call):
        raise AuthError(
            "force overwrites other writers' edits; it is refused to read-only callers and to callers "
            "limited to some stores",
            hint="Revert without force: fields changed since are left alone and listed.",
        )
    recs = await records_of(gw, call, change_id, targets)
    ops, skipped, confirm = [], [], []
    for rec in reversed(recs):  # newest first: undo in the opposite order
        step = gw.reverts.step(rec, gw, force=force)
        if step.op is None:
            skipped.append(
                {"change_id": rec.id, "target": rec.target, "reason": step.reason}
                | ({"offer": step.offer} if step.offer else {})
            )
            continue
        ops.append(step.op)
        if step.confirm:
            confirm.append(step.confirm)
    if not ops:
        first = skipped[0]
        raise ValidationFailed(
            f"change {change_id} can't be reverted: {first['reason']}",
            hint=first.get("offer") or "Nothing was changed.",
        )
    names = [n for op in ops for n in op.targets]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValidationFailed(
            f"change {change_id} touched {dup} more than once",
            hint="Revert its changes one by one (changes_list shows each change_id); nothing was reverted.",
        )
    if confirm and not (confirmed or dry_run):
        raise ConfirmationRequired(
            f"nothing was reverted: {confirm[0]}",
            hint="Ask the user; if they agree, call again with confirm=true.",
        )
    job = BulkJob(
        ops,
        store=recs[0].store,
        label=f"revert {change_id}",
        arguments={"change_id": change_id, "targets": sorted(targets or []), "force": force},
        idempotency_key=idempotency_key,
        dry_run=dry_run,
    )
    report = await gw.bulk.run(job, call, progress)
    conflicts: dict[str, Any] = {}
    for op in ops:
        conflicts.update(getattr(op, "conflicts", {}) or {})
    results = []
    for e in report.results:
        line = dict(e)
        if "changed_fields" in line:
            line["restored"] = line.pop("changed_fields")
        if conflicts.get(e["target"]):
            line["conflicts"] = conflicts[e["target"]]
        if "id" in line:
            line["new_id"] = line.pop("id")
        results.append(line)
    n_conflicts = sum(len(r.get("conflicts", [])) for r in results)
    message = (
        "Dry run: nothing was sent."
        if dry_run
        else "Reverted (a repeat: this is the first run's report)."
        if report.replayed
        else "Reverted."
    )
    if n_conflicts:
        message += (
            f" {n_conflicts} field(s) were changed by someone else since and were left alone (conflicts, "
            "with their current values); force=true overwrites them."
        )
    if skipped:
        message += f" {len(skipped)} change(s) can't be undone (skipped)."
    return RevertReport(
        change_id=change_id,
        dry_run=dry_run,
        total=report.total,
        totals=report.totals,
        results=results,
        skipped=skipped,
        replayed=report.replayed,
        message=message,
    )


@hookimpl
def gateway_register_tools(register: Callable[..., None], gateway: Gateway) -> None:
    async def ask(change_id: str, ctx: Context, confirm: bool = False, dry_run: bool = False) -> Any:
        """Ask the user when the revert moves orders back (their folder rules run again)."""
        if confirm or dry_run or not can_elicit(ctx):
            return ConfirmRevert(confirm=confirm)
        try:
            recs = await records_of(gateway, current_call.get(), change_id)
        except GatewayError:
            return ConfirmRevert(confirm=False)  # the tool body reports it
        asks = [
            s.confirm for r in recs if (s := gateway.reverts.step(r, gateway)).op is not None and s.confirm
        ]
        if not asks:
            return ConfirmRevert(confirm=False)
        return Elicit(f"Revert change {change_id}? {asks[0]}", ConfirmRevert)

    async def changes_list(
        call: ToolCall,
        order_id: Annotated[str | None, Field(max_length=80)] = None,
        caller: Annotated[str | None, Field(max_length=200)] = None,
        tool: Annotated[str | None, Field(max_length=60)] = None,
        since: Annotated[str | None, Field(max_length=40, description="ISO, UTC.")] = None,
        fields: Literal["summary", "full"] = "summary",
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        offset: Annotated[int, Field(ge=0, le=100_000)] = 0,
    ) -> ChangesList:
        """Changes made through this gateway, newest first: who, which object, fields before/after,
        outcome, and whether changes_revert can undo it (why not). A bulk call is one entry with
        targets. Only your own unless granted changes:all. Cost: 0 requests. Errors: AUTH."""
        f = ChangeFilter(
            object_id=order_id,
            caller=caller,
            tool=tool,
            since=parse_since(since),
            limit=limit,
            offset=offset,
        )
        return ChangesList(**await list_changes(gateway, call, f, full=fields == "full"))

    async def changes_revert(
        change_id: _ID,
        ctx: Context,
        answer: Annotated[ElicitationResult[ConfirmRevert], Resolve(ask)],
        call: ToolCall,
        targets: Annotated[
            list[Annotated[str, Field(max_length=120)]] | None,
            Field(max_length=500),
        ] = None,
        dry_run: Annotated[bool, Field(description="Write nothing.")] = False,
        force: Annotated[bool, Field()] = False,
        confirm: Annotated[bool, Field(description="true after the user agreed.")] = False,
        idempotency_key: Annotated[str | None, Field(min_length=1, max_length=100)] = None,
    ) -> RevertReport:
        """Undo a change or bulk job (change_id from changes_list; targets: some of it). Restores fields
        still as the change left them; others' edits stay, listed as conflicts (force overwrites).
        Deletes added items/shipments, re-adds deleted ones, moves orders back (confirm: folder rules
        run). Notes, deleted orders: not undoable. Cost: 2 requests per target. Errors: NOT_FOUND,
        CONFLICT, CONFIRMATION_REQUIRED, AUTH."""
        confirmed = isinstance(answer, AcceptedElicitation) and answer.data.confirm
        if not isinstance(answer, AcceptedElicitation):
            raise ConfirmationRequired(
                f"change {change_id} was not reverted: the user declined",
                hint="The user said no; do not retry unless they ask again.",
            )
        return await revert(
            gateway,
            call,
            change_id,
            targets=targets,
            dry_run=dry_run,
            force=force,
            confirmed=confirmed,
            idempotency_key=idempotency_key,
            progress=ctx.report_progress,
        )

    register(
        changes_list,
        name="changes.list",
        title="List changes",
        read_only=True,
        open_world=False,
        store_scoped=False,
        object_arg="order_id",
        toolset="changes",
    )
    register(
        changes_revert,
        name="changes.revert",
        title="Revert a change",
        read_only=False,
        destructive=True,
        idempotent=False,
        store_scoped=False,
        object_arg="change_id",
        toolset="changes",
    )


__all__ = ["revert", "sees_all"]
