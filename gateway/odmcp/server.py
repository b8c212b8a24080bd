"""Assemble the MCP server: tools from plugins, wire names, the middleware adapter, the lifespan."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.caching import CacheHint
from mcp.server.mcpserver import MCPServer, RequestStateSecurity
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from odmcp import __version__
from odmcp.app import Gateway
from odmcp.errors import ErrorCode, GatewayError, InternalError
from odmcp.middleware import ToolCallMiddleware, error_result
from odmcp.tools import ToolSpec, publish, wire_name

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
    tool function may take a ``gateway`` parameter: the host passes the ``Gateway`` and leaves the
    parameter out of the published signature (it is not an argument a client can send).
    """
    sig = inspect.signature(spec.fn)
    takes_gateway = "gateway" in sig.parameters

    @functools.wraps(spec.fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if takes_gateway:
            kwargs["gateway"] = gw
        try:
            result = await spec.fn(*args, **kwargs)
            if isinstance(result, BaseModel):
                # Compact JSON for the text block: the SDK would pretty-print it (indent=2), which
                # costs the model ~30% more tokens and the wire more bytes for the same data.
                text = result.model_dump_json(by_alias=True)
                data = result.model_dump(mode="json", by_alias=True)
                return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)
            return result
        except GatewayError as err:
            return error_result(err)
        except Exception as err:
            log.exception("tool %s (plugin %s) raised %s", spec.name, spec.plugin, type(err).__name__)
            return error_result(InternalError(f"{spec.name} failed unexpectedly ({type(err).__name__})"))

    if takes_gateway:
        publish(call, spec.fn)
    return call


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
    server: MCPServer[Any] = MCPServer(
        gw.config.gateway.name,
        version=__version__,
        instructions=instructions(gw),
        lifespan=lifespan,
        middleware=[ToolCallMiddleware(gw, by_wire)],
        request_state_security=RequestStateSecurity(keys=keys) if keys else None,
        log_level=gw.config.gateway.log_level,
        # the tool list only changes with a restart: let 2026-07-28 clients keep it for 5 minutes;
        # private: each caller's list depends on its token (gateway.toollist)
        cache_hints={"tools/list": CacheHint(ttl_ms=300_000, scope="private")},
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
