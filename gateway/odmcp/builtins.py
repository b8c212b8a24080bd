"""The host's own behaviour, implemented through the public hooks like any other plugin."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from odmcp import __version__
from odmcp.diff import diff
from odmcp.errors import GatewayError
from odmcp.plugins import hookimpl
from odmcp.refs import Ref
from odmcp.workflow import current_call

if TYPE_CHECKING:
    from odmcp.app import Gateway
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
    code = getattr(error, "code", None)
    record = {
        "request_id": call.request_id,
        "principal": call.principal,
        "tool": call.name,
        "store": call.store or call.arguments.get("store") or None,
        "object_id": call.object_id or call.spec.object_id(call.arguments),
        "changed_fields": call.changed_fields,
        "attempts": call.attempts,
        "reconciled": call.reconciled or None,
        "outcome": outcome if code is None else f"{outcome}:{code}",
        "dry_run": bool(call.arguments.get("dry_run")) or None,
        "duration_ms": round(elapsed_ms, 2),
    }
    try:
        gateway.audit.write({k: v for k, v in record.items() if v is not None})
    except GatewayError as audit_err:
        # The sink was checked before the write; failing now would report an applied write as
        # refused and invite a duplicate retry. Keep the real result, shout in the log.
        log.error(
            "audit line lost for %s (request %s, outcome %s): %s",
            call.name,
            call.request_id,
            record["outcome"],
            audit_err.message,
        )


@hookimpl
def gateway_register_tools(register: Callable[..., None], gateway: Gateway) -> None:
    async def ping() -> dict[str, Any]:
        """Check the gateway answers; returns its version and your store names. Cost: 0 requests."""
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
