"""The host's own behaviour, implemented through the public hooks like any other plugin."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from odmcp import __version__
from odmcp.diff import diff
from odmcp.plugins import hookimpl
from odmcp.refs import Ref

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.route import TargetOutcome
    from odmcp.tools import ToolCall

log = logging.getLogger("odmcp.calls")


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


@hookimpl(trylast=True)
def gateway_reconcile(
    ref: Ref, before: dict[str, Any], intended: dict[str, Any], current: dict[str, Any], gateway: Gateway
) -> str:
    """Default: every intended field change is in ``current`` -> applied; none is -> not applied."""
    return reconcile_by_diff(gateway.hooks.diff, ref, before, intended, current)


def reconcile_by_diff(
    diff_of: Callable[[Ref, dict[str, Any], dict[str, Any]], list[dict[str, Any]]],
    ref: Ref,
    before: dict[str, Any],
    intended: dict[str, Any],
    current: dict[str, Any],
) -> str:
    """Compare what the upload meant to change with what changed since ``before``, path by path."""
    ours = diff_of(ref, before, intended)
    seen = {c["path"]: c["after"] for c in diff_of(ref, before, current)}
    there = [c["path"] in seen and seen[c["path"]] == c["after"] for c in ours]
    absent = [c["path"] not in seen for c in ours]
    if ours and all(there):
        return "applied"
    if all(absent):
        return "not_applied"
    return "unknown"


@hookimpl
def gateway_invalidate(ref: Ref, lists: bool, gateway: Gateway) -> Any:
    """Drop the cached object and, when lists may have changed, bump the store's list generation."""
    if gateway.cache is None:
        return None
    store_id = gateway.store_id(ref.store)
    return gateway.cache.invalidate(store_id, ref.kind, ref.id or None, lists)


@hookimpl(tryfirst=True)
def gateway_tool_post_invoke(
    call: ToolCall, outcome: str, error: Exception | None, elapsed_ms: float, gateway: Gateway
) -> None:
    """Count every call, and write the audit line of every call to a tool that writes.

    ``tryfirst``: other plugins' post-invoke impls run after the audit line is written (unless they
    are ``tryfirst`` too: pluggy runs the later registered first).
    """
    gateway.metrics.inc("tool_calls_total", tool=call.name, outcome=outcome)
    if call.spec is None or not call.spec.writes:
        return
    gateway.audit.write_safely(audit_record(call, outcome, error, elapsed_ms))


def audit_record(call: ToolCall, outcome: str, error: Exception | None, elapsed_ms: float) -> dict[str, Any]:
    """The audit line of a call to a tool that writes, built from what the write route returned.

    A call that answered an error says ``<outcome>:<CODE>`` (``error:NOT_FOUND``, ``denied:AUTH``).
    Otherwise ``outcome`` says what was written, not only how the call ended: ``ok`` when every
    target was applied (or already so), ``partial`` when some were, ``error`` when none was,
    ``unknown`` when an outcome stays unclear; ``cancelled: true`` marks a caller that went away (the
    writes it had started were settled all the same). ``writes`` lists each target of a bulk call.
    """
    assert call.spec is not None
    code = getattr(error, "code", None)
    writes = [w for w in call.writes if w.state != "dry_run"]
    states = [w.state for w in writes]
    if writes:
        done = sum(s in ("applied", "already") for s in states)
        summary = (
            "ok"
            if done == len(states)
            else "unknown"
            if "unknown" in states and not done
            else ("partial" if done else "error")
        )
    else:
        summary = outcome
    record: dict[str, Any] = {
        "request_id": call.request_id,
        "principal": call.principal,
        "tool": call.name,
        "store": writes[0].ref.store if writes else call.arguments.get("store") or None,
        "object_id": ",".join(dict.fromkeys(i for i in map(_object_id, writes) if i))
        or call.spec.object_id(call.arguments),
        "changed_fields": sorted({f for w in call.writes for f in w.fields}),
        "attempts": max((w.attempts for w in writes), default=0),
        "reconciled": any(w.reconciled for w in writes) or None,
        "outcome": summary if code is None else f"{outcome}:{code}",
        "cancelled": outcome == "cancelled" or None,
        "dry_run": bool(call.arguments.get("dry_run")) or None,
        "duration_ms": round(elapsed_ms, 2),
    }
    if len(writes) > 1:
        record["writes"] = [
            {
                "target": w.target,
                "state": w.state,
                **({"code": str(w.error.code)} if w.error is not None else {}),
                **({"attempts": w.attempts} if w.attempts != 1 else {}),
                **({"reconciled": True} if w.reconciled else {}),
            }
            for w in writes
        ]
    return {k: v for k, v in record.items() if v is not None}


def _object_id(w: TargetOutcome) -> str:
    """The object a write changed (a created one by its new id)."""
    made = w.value.get("id") if w.state in ("applied", "already") and isinstance(w.value, dict) else None
    return w.ref.id or (str(made) if made else "")


@hookimpl
def gateway_register_tools(register: Callable[..., None], gateway: Gateway) -> None:
    async def ping(call: ToolCall) -> dict[str, Any]:
        """Check the gateway answers: its version and your store names. Cost: 0 requests."""
        # like stores_list: a caller only learns the names of the stores its token grants
        names = [s.name for s in gateway.visible_stores(call=call)]
        return {"ok": True, "version": __version__, "stores": names}

    register(
        ping,
        name="gateway.ping",
        title="Ping the gateway",
        read_only=True,
        open_world=False,
        store_scoped=False,
    )
