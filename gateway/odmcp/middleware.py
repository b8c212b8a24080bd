"""The one adapter between the SDK's (provisional) middleware API and the gateway's policy layer.

Everything that must happen around *every* tool call lives here: read-only refusals, per-token
grants, argument checks (:mod:`odmcp.arguments`), plugin policy hooks, error normalisation, metrics
and the audit line. It also answers ``tools/list`` with the list the caller may call, in compact
schemas (:mod:`odmcp.toollist`).
If the SDK's middleware signature changes in a 2.x release, this file is the only one to touch.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import ToolsListChanged
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from odmcp.arguments import ArgumentCheck, closest
from odmcp.errors import (
    AuthError,
    ErrorCode,
    GatewayError,
    InternalError,
    ReadOnlyError,
    ValidationFailed,
)
from odmcp.toollist import tools_for
from odmcp.tools import ToolCall, ToolSpec, current_call, published, wire_name

if TYPE_CHECKING:
    from odmcp.app import Gateway

log = logging.getLogger("odmcp.calls")

#: the ASGI scope key where the HTTP auth layer leaves the caller's token settings
PRINCIPAL_SCOPE_KEY = "mcpgw.principal"


#: the ``_meta`` key of an error result that carries the machine-readable error
ERROR_META_KEY = "mcp-gateway/error"


def error_result(err: GatewayError) -> CallToolResult:
    """THE function that turns a GatewayError into an MCP tool result (isError + machine code).

    The text is one line, ``CODE: what was wrong — what to do`` (``NOT_FOUND: order 7 not found —
    Check the id ...``), for the model; the same error as data is in
    ``_meta["mcp-gateway/error"]``. It is deliberately *not* ``structuredContent``: clients built on
    the TypeScript SDK (Claude Desktop, VS Code, the Inspector) validate structuredContent against the
    tool's output schema even on errors, and an error object never matches a result schema.
    """
    return CallToolResult(
        content=[TextContent(type="text", text=str(err))],
        is_error=True,
        _meta={ERROR_META_KEY: err.to_dict()},
    )


def error_of(result: Any) -> dict[str, Any] | None:
    """The machine-readable error of a tool result (a ``CallToolResult`` or its wire dict), or None."""
    meta = result.get("_meta") if isinstance(result, dict) else getattr(result, "meta", None)
    found = (meta or {}).get(ERROR_META_KEY)
    return found if isinstance(found, dict) else None


def _principal(ctx: Any) -> Any:
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict):
        return scope.get(PRINCIPAL_SCOPE_KEY)
    return None


def _input_required(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("resultType") == "input_required"
    return type(result).__name__ == "InputRequiredResult"


class ToolCallMiddleware:
    def __init__(self, gw: Gateway, by_wire: dict[str, ToolSpec]) -> None:
        self.gw = gw
        self.by_wire = by_wire
        #: built on a tool's first call (building all of them would cost ~5 ms per tool per server)
        self._checks: dict[str, ArgumentCheck] = {}
        #: the tool list per kind of caller (read-only or not, which stores), built on first request
        self._lists: dict[Any, list[dict[str, Any]]] = {}
        #: legacy (2025-11-25) HTTP sessions seen, by session id: (token name, the SDK's session), the
        #: most recent last, so :meth:`tools_changed` can tell the sessions of a token its list changed
        self.sessions: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self.max_sessions = max(16, 2 * gw.config.http.max_sessions)
        #: the server's subscriptions/listen bus (2026-07-28 clients)
        self.bus = InMemorySubscriptionBus()

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        self._seen(ctx)
        if ctx.method == "tools/list":
            return self._tool_list(
                await call_next(ctx), _principal(ctx), getattr(ctx, "protocol_version", "")
            )
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        wname = str(params.get("name", ""))
        spec = self.by_wire.get(wname)
        if spec is None:  # not served (unknown, or its toolset is off): one coded line like any error
            return error_result(self._not_served(wname))
        args = params.get("arguments")
        token = _principal(ctx)
        call = ToolCall(
            name=spec.name,
            arguments=args if isinstance(args, dict) else {},
            principal=getattr(token, "name", None),
            request_id=str(ctx.request_id) if ctx.request_id is not None else uuid.uuid4().hex[:12],
            spec=spec,
            token=token,
        )
        reset = current_call.set(call)
        t0 = time.perf_counter()
        try:
            try:
                self._authorize(call, spec, token)
            except GatewayError as err:
                return await self._deny(call, err, t0)
            bad = self._check(wname, spec)(call.arguments)
            if bad is not None:  # nothing runs (and nothing goes upstream) with arguments the tool can't take
                return await self._finish(call, "error", bad, t0, self._for_caller(error_result(bad), token))
            try:
                await self.gw.hooks.pre_invoke(call)
            except GatewayError as err:
                return await self._deny(call, err, t0)
            except Exception as crash:  # a policy plugin crashed: refuse, don't run the tool
                gerr = InternalError(f"policy check failed ({type(crash).__name__})")
                return await self._finish(call, "denied", gerr, t0, error_result(gerr))
            try:
                raw = await call_next(ctx)
            except Exception:
                failed = InternalError(f"{spec.name} failed unexpectedly")
                await self._finish(call, "error", failed, t0, None)
                raise
            except BaseException:  # the client cancelled: what ran is audited all the same
                with anyio.CancelScope(shield=True):
                    await self._finish(call, "cancelled", None, t0, None)
                raise
            if _input_required(raw):
                # one round of a multi-round call (e.g. the delete confirmation): nothing ran yet
                self.gw.metrics.inc("tool_calls_total", tool=call.name, outcome="pending")
                return raw
            result, failure = self._normalise(raw)
            if failure is not None:
                result = self._for_caller(result, token)
            return await self._finish(call, "error" if failure else "ok", failure, t0, result)
        finally:
            current_call.reset(reset)

    def _seen(self, ctx: Any) -> None:
        """Remember the session of a legacy HTTP request made with a token (see :attr:`sessions`)."""
        token = _principal(ctx)
        headers = getattr(getattr(ctx, "request", None), "headers", None)
        sid = headers.get("mcp-session-id") if headers is not None else None
        if token is None or not sid or getattr(ctx, "session", None) is None:
            return
        self.sessions[sid] = (token.name, ctx.session)
        self.sessions.move_to_end(sid)
        while len(self.sessions) > self.max_sessions:  # ended sessions are forgotten oldest first
            self.sessions.popitem(last=False)

    async def tools_changed(self, names: Iterable[str]) -> int:
        """Send ``notifications/tools/list_changed`` to each session of the tokens called ``names``
        (their grants changed, so their tool lists did); returns how many sessions were told.
        Best-effort: a session that has ended, or has no stream open for notifications, misses it."""
        changed = set(names)
        told = 0
        if changed:
            await self.bus.publish(ToolsListChanged())
        for token_name, session in list(self.sessions.values()):
            if token_name in changed:
                with contextlib.suppress(Exception):
                    await session.send_tool_list_changed()
                    told += 1
        return told

    def _not_served(self, wname: str) -> ValidationFailed:
        style = self.gw.config.gateway.tool_names
        off = next((t for t in self.gw.tools if wire_name(t.name, style) == wname), None)
        if off is not None and not self.gw.serves_type(off.store_type):
            return ValidationFailed(
                f"tool {wname!r} is not served here: no {off.store_type!r} store is configured",
                hint="Use the tools tools/list shows (an operator can add such a store); nothing was run.",
            )
        if off is not None:
            return ValidationFailed(
                f"tool {wname!r} is not served here: its toolset {off.toolset!r} is not in gateway.toolsets",
                hint="Use the tools tools/list shows (an operator can add the toolset); nothing was run.",
            )
        guess = closest(wname, self.by_wire)
        return ValidationFailed(
            f"unknown tool {wname!r}" + (f"; did you mean {guess!r}?" if guess else ""),
            hint="Call one of the tools tools/list shows; nothing was run.",
        )

    def _check(self, wname: str, spec: ToolSpec) -> ArgumentCheck:
        check = self._checks.get(wname)
        if check is None:
            check = self._checks[wname] = ArgumentCheck(published(spec.fn))
        return check

    async def _deny(self, call: ToolCall, err: GatewayError, t0: float) -> Any:
        self.gw.metrics.inc("policy_denials_total", tool=call.name, code=str(err.code))
        return await self._finish(call, "denied", err, t0, self._for_caller(error_result(err), call.token))

    def _for_caller(self, result: Any, token: Any) -> Any:
        """An error result (a ``CallToolResult`` or its wire dict) whose hint names only tools this
        caller sees (:class:`HintWords`)."""
        coded = error_of(result)
        hint = coded.get("hint") if coded else None
        if not isinstance(hint, str) or not hint:
            return result
        new = self.gw.for_caller(hint, token)
        if new == hint:
            return result
        coded = {**(coded or {}), "hint": new}
        if isinstance(result, dict):
            content = [
                {**c, "text": c["text"].replace(f" — {hint}", f" — {new}")}
                if isinstance(c, dict) and isinstance(c.get("text"), str)
                else c
                for c in result.get("content") or []
            ]
            return {
                **result,
                "content": content,
                "_meta": {**(result.get("_meta") or {}), ERROR_META_KEY: coded},
            }
        texts = [
            TextContent(type="text", text=c.text.replace(f" — {hint}", f" — {new}"))
            if isinstance(c, TextContent)
            else c
            for c in result.content
        ]
        return CallToolResult(
            content=texts, is_error=True, _meta={**(result.meta or {}), ERROR_META_KEY: coded}
        )

    def _tool_list(self, result: Any, token: Any, protocol: str) -> Any:
        """The SDK's ``tools/list`` answer with only the tools this caller may call, compacted (built
        once per kind of caller and protocol version: an era may spell a tool differently)."""
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return result
        kind = (protocol, None if token is None else (bool(token.read_only), tuple(token.stores)))
        shown = self._lists.get(kind)
        if shown is None:
            shown = self._lists[kind] = tools_for(tools, self.by_wire, self.gw.config, token)
        return {**result, "tools": shown}

    def _authorize(self, call: ToolCall, spec: ToolSpec, token: Any) -> None:
        if spec.writes and self.gw.config.gateway.read_only:
            raise ReadOnlyError(f"{spec.name} changes data and the gateway is in read-only mode")
        if token is None:
            return
        if not spec.store_scoped:
            return self._check_writes(spec, token)  # e.g. stores.list filters by the token itself
        store = call.arguments.get("store")
        store_name = store if isinstance(store, str) and store else None
        # a token that grants no store of this type is refused naming the default store it can't use
        # (not told that no store is configured)
        mine = self.gw.config.default_for(token, spec.store_type) or self.gw.config.default_of(
            spec.store_type
        )
        store_name = store_name or (mine.name if mine is not None else "")
        if store_name and not token.allows_store(store_name):
            raise AuthError(
                f"token {token.name!r} may not use store {store_name!r}",
                hint=f"This token is limited to: {', '.join(token.stores)}.",
            )
        self._check_writes(spec, token)

    @staticmethod
    def _check_writes(spec: ToolSpec, token: Any) -> None:
        if spec.writes and token.read_only:
            raise AuthError(
                f"token {token.name!r} is read-only and may not call {spec.name}",
                hint="Use a token with write access for changes.",
            )

    @staticmethod
    def _normalise(result: Any) -> tuple[Any, GatewayError | None]:
        """Make every error result carry a machine code.

        Argument errors never get here (:mod:`odmcp.arguments` refused them first), so an error the
        SDK reports without a code is a failure of the gateway itself.
        """
        if isinstance(result, BaseModel):
            is_error = bool(getattr(result, "is_error", False))
        elif isinstance(result, dict):
            is_error = bool(result.get("isError"))
        else:
            return result, None
        if not is_error:
            return result, None
        coded = error_of(result)
        if coded is not None:
            err = GatewayError(str(coded.get("message", "")))
            err.code = ErrorCode(coded.get("code", "INTERNAL"))
            return result, err
        gerr = InternalError("the tool failed unexpectedly")
        return error_result(gerr), gerr

    async def _finish(
        self, call: ToolCall, outcome: str, err: GatewayError | None, t0: float, result: Any
    ) -> Any:
        """Hand the finished call to ``gateway_tool_post_invoke``: the host's own impl (builtins) writes
        the metrics and the audit line, like any plugin would."""
        elapsed_ms = (time.perf_counter() - t0) * 1000
        await self.gw.hooks.post_invoke(call, outcome, err, elapsed_ms)
        return result
