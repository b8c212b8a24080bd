"""Assemble the MCP server: tools from plugins, wire names, the middleware adapter, the lifespan."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from mcp.server import NotificationOptions
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import MCPServer, RequestStateSecurity
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from odmcp import __version__
from odmcp.app import Gateway
from odmcp.budget import over_budget
from odmcp.errors import ErrorCode, GatewayError, InternalError, ValidationFailed
from odmcp.middleware import ToolCallMiddleware, error_result
from odmcp.tools import ToolCall, ToolSpec, current_call, publish, wire_name

log = logging.getLogger("odmcp.server")


def instructions(gw: Gateway) -> str:
    """The server's instructions: each plugin's paragraph (``gateway_instructions``), then the host's."""
    codes = ", ".join(c.value for c in ErrorCode if c is not ErrorCode.INTERNAL)
    host = (
        "Tools that act on a store take `store` (one of the store names their schema lists) when you may "
        "use more than one; without it they use the default store. "
        f"An error is one line, CODE: what was wrong — what to do ({codes}). Any tool may answer "
        "VALIDATION (bad arguments; nothing was written), and RATE_LIMITED or UPSTREAM when the store's "
        "service is busy or down. A `retryable` error may be retried as is; OUTCOME_UNKNOWN means a "
        "write may or may not have happened: read the object again before repeating it."
    )
    return "\n".join([*gw.hooks.instructions(), host])


def _handler(spec: ToolSpec, gw: Gateway) -> Any:
    """Wrap a plugin's tool so a GatewayError becomes a coded isError result, and crashes are clean.

    ``functools.wraps`` keeps the signature, so the SDK derives the same input and output schemas. A
    tool function may take a ``gateway`` parameter (the host passes the ``Gateway``) and a ``call``
    parameter (the :class:`~odmcp.tools.ToolCall` being served: its caller, and where the write route
    records what it did); both are left out of the published signature (a client can't send them).
    """
    params = inspect.signature(spec.fn).parameters
    takes_gateway, takes_call = "gateway" in params, "call" in params

    @functools.wraps(spec.fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        if takes_gateway:
            kwargs["gateway"] = gw
        if takes_call:
            kwargs["call"] = current_call.get() or ToolCall(spec.name, {}, None, uuid.uuid4().hex[:12], spec)
        try:
            result = await spec.fn(*args, **kwargs)
            if isinstance(result, BaseModel):
                # Compact JSON for the text block: the SDK would pretty-print it (indent=2), which
                # costs the model ~30% more tokens and the wire more bytes for the same data.
                text = result.model_dump_json(by_alias=True)
                budget = gw.config.gateway.max_result_bytes
                if spec.read_only and over_budget(text, budget):  # a tool that did not fit its own result
                    raise ValidationFailed(
                        f"the result is {len(text.encode()):,} bytes, over gateway.max_result_bytes "
                        f"({budget:,})",
                        hint="Ask for less (a smaller limit, or fewer fields).",
                    )
                data = result.model_dump(mode="json", by_alias=True)
                return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)
            return result
        except GatewayError as err:
            return error_result(err)
        except Exception as err:
            log.exception("tool %s (plugin %s) raised %s", spec.name, spec.plugin, type(err).__name__)
            return error_result(InternalError(f"{spec.name} failed unexpectedly ({type(err).__name__})"))

    if takes_gateway or takes_call:
        publish(run, spec.fn)
    return run


def build_server(gw: Gateway) -> MCPServer[Any]:
    style = gw.config.gateway.tool_names
    read_only = gw.config.gateway.read_only
    by_wire = {wire_name(spec.name, style): spec for spec in gw.served_tools()}

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[Gateway]:
        await gw.startup()
        try:
            yield gw
        finally:
            await gw.shutdown()

    keys = [k.reveal().encode() for k in gw.config.http.request_state_keys]
    tool_calls = ToolCallMiddleware(gw, by_wire)
    server: MCPServer[Any] = MCPServer(
        gw.config.gateway.name,
        version=__version__,
        instructions=instructions(gw),
        lifespan=lifespan,
        middleware=[tool_calls],
        subscriptions=tool_calls.bus,  # 2026-07-28 clients hear of a changed tool list here
        request_state_security=RequestStateSecurity(keys=keys) if keys else None,
        log_level=gw.config.gateway.log_level,
        # the tool list changes with a restart, or when SIGHUP changes a token's grants (its sessions
        # are then told): let 2026-07-28 clients keep it for 5 minutes; private: each caller's list
        # depends on its token (gateway.toollist)
        cache_hints={"tools/list": CacheHint(ttl_ms=300_000, scope="private")},
    )
    # a token's grants may change at run time (SIGHUP), and its tool list with them: legacy sessions
    # are told with notifications/tools/list_changed, which the capability must announce
    low = server._lowlevel_server
    low.create_initialization_options = functools.partial(  # type: ignore[method-assign]
        type(low).create_initialization_options, low, NotificationOptions(tools_changed=True)
    )
    for wname, spec in by_wire.items():
        if read_only and spec.writes:
            continue  # hidden from tools/list; the middleware refuses calls to it with READ_ONLY
        server.add_tool(
            _handler(spec, gw),
            name=wname,
            title=spec.title,
            description=spec.description,
            annotations=spec.annotations(),
            structured_output=True,
        )
    return server
