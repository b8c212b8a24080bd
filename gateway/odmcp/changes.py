"""Undo for agents: every journaled change listed, and reverted through the one write route.

The journal (:mod:`odmcp.journal`) keeps one :class:`~odmcp.journal.WriteRecord` per target of every
write: the fields it changed with their values before and after, and the witness the route read under
the lock (a deleted object in full). This module turns those records into:

* **entries** for ``changes_list``, the ``mcp-gateway changes`` command and the ``/changes`` page: one
  per change, or one per call of several targets (a bulk job) with a child per target; each says
  whether it can be reverted, and why not;
* **reverts**: a store plugin declares, per object kind and action, how to undo a change
  (``gateway_register_reverts``: ``register(kind, action, builder)``). ``builder(record, gateway,
  force)`` returns a :class:`RevertStep`: a :class:`~odmcp.route.WriteOp` that puts the object back
  (planned from a snapshot inside the lock, like any write), or the reason it can't. The host runs the
  ops as one bulk job (:class:`~odmcp.bulk.BulkRunner`): journaled, audited, revertible in turn, and
  exactly once on repeat with an ``idempotency_key``.

An op that leaves some fields alone because another writer changed them since lists them in its
``conflicts`` attribute (``{target: [{"path", "wrote", "current"}]}``) and in its plan's witness, so the
report (and a repeat of it) names them.

Grants: a caller sees and reverts only its own changes unless its token grants ``changes:all``
(``[[http.tokens]] grants``, or the OAuth scope of that name); ``force`` is refused to read-only callers
and to callers limited to some stores.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from odmcp.errors import AuthError, NotFound, Unavailable, ValidationFailed
from odmcp.journal import ChangeQuery, WriteRecord

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.route import WriteOp
    from odmcp.tools import ToolCall

#: the grant (static token ``grants`` entry or OAuth scope) to see and revert every caller's changes
CHANGES_ALL = "changes:all"
#: the states whose change may be reverted (something was written and a re-read confirmed it)
REVERTIBLE_STATES = ("applied", "already")
#: how a change's outcome is shown
OUTCOMES = {
    "applied": "applied",
    "already": "reconciled",
    "unknown": "unknown",
    "intent": "unknown",
    "failed": "failed",
    "not_applied": "failed",
}


@dataclass
class RevertStep:
    """How to undo one journaled change: ``op`` (None: it can't be undone, ``reason`` says why)."""

    op: WriteOp | None = None
    reason: str = ""
    #: non-empty: undoing it needs the user's confirmation (e.g. it runs a folder's rules again)
    confirm: str = ""
    #: what to do instead, when it can't be undone (e.g. add a correcting note)
    offer: str = ""


#: ``builder(record, gateway, force) -> RevertStep``
RevertBuilder = Callable[[WriteRecord, "Gateway", bool], RevertStep]


class Reverts:
    """Revert builders registered by store plugins, per object kind and action."""

    def __init__(self) -> None:
        self.builders: dict[tuple[str, str], RevertBuilder] = {}

    def register(self, kind: str, action: str, builder: RevertBuilder) -> None:
        if (kind, action) in self.builders:
            raise ValueError(f"a revert for {kind} {action!r} registered twice")
        self.builders[(kind, action)] = builder

    def step(self, rec: WriteRecord, gw: Gateway, *, force: bool = False) -> RevertStep:
        """How to undo ``rec`` (never raises: a change that can't be undone says why)."""
        if rec.state not in REVERTIBLE_STATES:
            what = "its outcome is unknown" if rec.state in ("unknown", "intent") else "it was not applied"
            hint = " (check the object, then change it back by hand)" if rec.state != "failed" else ""
            return RevertStep(reason=f"{what}{hint}")
        builder = self.builders.get((rec.kind, rec.action))
        if builder is None:
            return RevertStep(reason=f"no store plugin knows how to undo {rec.action!r} of a {rec.kind}")
        return builder(rec, gw, force)


# --- grants -----------------------------------------------------------------------------------


def grants(call: ToolCall | None) -> frozenset[str]:
    token = call.token if call is not None else None
    if token is None:
        return frozenset()
    return frozenset(getattr(token, "grants", ()) or ()) | frozenset(getattr(token, "scopes", ()) or ())


def sees_all(call: ToolCall | None) -> bool:
    """Whether the caller may see and revert every caller's changes (no token: the owner, yes)."""
    return call is None or call.token is None or CHANGES_ALL in grants(call)


def may_force(call: ToolCall | None) -> bool:
    """``force`` overwrites others' edits: refused to read-only callers and to store-limited ones."""
    token = call.token if call is not None else None
    if token is None:
        return True
    return not token.read_only and "*" in tuple(token.stores)


def _visible(gw: Gateway, call: ToolCall | None, rec: WriteRecord) -> bool:
    token = call.token if call is not None else None
    if token is not None and not token.allows_store(rec.store):
        return False
    return sees_all(call) or rec.caller == (call.principal if call is not None else None)


# --- listing ----------------------------------------------------------------------------------


def canonical_tool(gw: Gateway, tool: str | None) -> str | None:
    """``orders_update`` or ``orders.update`` -> the canonical name the journal records."""
    if not tool:
        return None
    for spec in gw.tools:
        name: str = spec.name
        if tool in (name, name.replace(".", "_")):
            return name
    return tool


def _value(value: Any, full: bool) -> Any:
    if full or not isinstance(value, dict | list):
        return value if full or not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
    text = str(value)
    return value if len(text) <= 200 else f"({type(value).__name__} of {len(value)}; fields='full' shows it)"


def entry(rec: WriteRecord, gw: Gateway, *, full: bool = False) -> dict[str, Any]:
    """One change as ``changes_list`` shows it."""
    step = gw.reverts.step(rec, gw)
    paths = list(dict.fromkeys([*rec.before, *rec.after]))
    out: dict[str, Any] = {
        "change_id": rec.id,
        "time": _iso(rec.time),
        "caller": rec.caller,
        "tool": rec.tool,
        "store": rec.store,
        "object": {"kind": rec.kind, "id": rec.object_id or str(rec.extra.get("id", ""))},
        "action": rec.action,
        "outcome": OUTCOMES.get(rec.state, rec.state),
        "fields": [
            {"path": p, "before": _value(rec.before.get(p), full), "after": _value(rec.after.get(p), full)}
            for p in paths
        ],
        "revertible": step.op is not None,
    }
    if rec.reconciled and rec.state == "applied":
        out["reconciled"] = True
    if step.op is None:
        out["reason"] = step.reason
        if step.offer:
            out["offer"] = step.offer
    elif step.confirm:
        out["needs_confirmation"] = step.confirm
    made = rec.extra.get("id")
    if made and made != rec.object_id:
        out["new_id"] = str(made)
    if rec.error:
        out["error"] = rec.error.get("message", "")
    if full and isinstance(rec.witness, dict) and "object" in rec.witness:
        out["deleted_object"] = rec.witness["object"]
    elif full and isinstance(rec.witness, dict):
        for key in ("item", "shipment"):
            if isinstance(rec.witness.get(key), dict) and rec.action.startswith("delete"):
                out[f"deleted_{key}"] = rec.witness[key]
    return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def group_key(rec: WriteRecord) -> str:
    """The id of the job (or call) a record belongs to: what reverts the whole bulk call."""
    return rec.job or rec.call_id


def grouped(records: list[WriteRecord], gw: Gateway, *, full: bool = False) -> list[dict[str, Any]]:
    """Entries newest first; the records of one call of several targets become one entry with children."""
    groups: dict[str, list[WriteRecord]] = {}
    for rec in records:
        groups.setdefault(group_key(rec) or rec.id, []).append(rec)
    out: list[dict[str, Any]] = []
    for key, recs in groups.items():
        if len(recs) == 1:
            out.append(entry(recs[0], gw, full=full))
            continue
        children = [entry(r, gw, full=full) for r in recs]
        states: dict[str, int] = {}
        for c in children:
            states[c["outcome"]] = states.get(c["outcome"], 0) + 1
        out.append(
            {
                "change_id": key,
                "time": children[0]["time"],
                "caller": recs[0].caller,
                "tool": recs[0].tool,
                "store": recs[0].store,
                "object": {"kind": recs[0].kind, "id": f"{len(recs)} targets"},
                "outcome": ", ".join(f"{n} {s}" for s, n in states.items()),
                "revertible": any(c["revertible"] for c in children),
                "targets": children,
            }
        )
    return out


def parse_since(value: str | None) -> float | None:
    """An ISO 8601 date or time (UTC unless it says otherwise) -> epoch seconds; VALIDATION if not."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"since {value!r} is not a date", hint="Use ISO 8601, e.g. 2026-05-01 or 2026-05-01T10:00:00Z."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@dataclass
class ChangeFilter:
    """What ``changes_list`` and its siblings (CLI, page) filter by."""

    object_id: str | None = None
    caller: str | None = None
    tool: str | None = None
    store: str | None = None
    since: float | None = None
    limit: int = 20
    offset: int = 0


async def list_changes(
    gw: Gateway, call: ToolCall | None, f: ChangeFilter, *, full: bool = False
) -> dict[str, Any]:
    """The entries ``call``'s caller may see, newest first, and whether older history was pruned."""
    journal = _journal(gw)
    caller = f.caller
    if not sees_all(call):
        mine = call.principal if call is not None else None
        if caller is not None and caller != mine:
            raise AuthError(
                f"you may list only your own changes, not {caller!r}",
                hint=f"Leave caller out; seeing others' changes needs the {CHANGES_ALL!r} grant.",
            )
        caller = mine
    q = ChangeQuery(
        store=f.store,
        object_id=f.object_id,
        caller=caller,
        tool=canonical_tool(gw, f.tool),
        since=f.since,
        # what was (or may have been) written; a clean failure wrote nothing
        states=["applied", "already", "unknown", "intent"],
        limit=f.limit,
        offset=f.offset,
    )
    records = [r for r in await journal.query(q) if _visible(gw, call, r)]
    entries = grouped(records, gw, full=full)
    settings = gw.config.journal
    last_page = len(records) < f.limit
    out: dict[str, Any] = {
        "changes": entries,
        "next_offset": None if last_page else f.offset + f.limit,
    }
    cutoff = time.time() - settings.retention
    if last_page and (f.since is None or f.since < cutoff):
        out["history"] = (
            f"the journal keeps changes for {settings.retention / 86400:g} days: anything before "
            f"{_iso(cutoff)} is pruned, and the oldest go first beyond {settings.max_entries} records "
            f"or {settings.max_bytes // (1024 * 1024)} MiB; pruned changes are not listed and can't be "
            "reverted"
        )
    return out


def _journal(gw: Gateway) -> Any:
    if gw.journal is None:
        raise Unavailable(
            "the journal is not open", hint="Start the gateway (the journal opens at start-up)."
        )
    return gw.journal


async def records_of(
    gw: Gateway, call: ToolCall | None, change_id: str, targets: list[str] | None = None
) -> list[WriteRecord]:
    """The records a revert of ``change_id`` covers: one change, or every target of a job or call
    (optionally only ``targets``, by target name or object id). NOT_FOUND when there are none the
    caller may revert."""
    journal = _journal(gw)
    change_id = change_id.strip()
    one = await journal.get_write(change_id)
    if one is not None:
        recs = [one]
    else:
        recs = await journal.query(ChangeQuery(job=change_id, limit=5000))
        if not recs:
            recs = await journal.query(ChangeQuery(call_id=change_id, limit=5000))
    seen = [r for r in recs if _visible(gw, call, r)]
    if not seen:
        raise NotFound(
            f"no change {change_id!r} that you may revert",
            hint="changes_list shows your changes and their change_id (history older than "
            "journal.retention is pruned).",
        )
    if targets:
        wanted = set(targets)
        chosen = [r for r in seen if r.target in wanted or r.object_id in wanted]
        missing = wanted - {r.target for r in chosen} - {r.object_id for r in chosen}
        if missing:
            raise ValidationFailed(
                f"change {change_id} has no target {sorted(missing)[0]!r}",
                hint="changes_list shows the job's targets; nothing was reverted.",
            )
        seen = chosen
    return sorted(seen, key=lambda r: (r.time, r.id))
