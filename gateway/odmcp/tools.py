"""The tool registry: canonical and wire names, annotations, and the per-call record."""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mcp.types import ToolAnnotations
from mcp_types.version import is_version_at_least

from odmcp.arguments import closest
from odmcp.errors import ConfigError, PluginClash

if TYPE_CHECKING:
    from odmcp.route import TargetOutcome

NameStyle = Literal["underscore", "dotted"]
_CANONICAL = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_TOOLSET = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
#: the ``gateway.toolsets`` entry that selects every toolset
ALL_TOOLSETS = "all"
#: the entry that selects every toolset but the opt-in ones (the default)
DEFAULT_TOOLSETS = "default"
#: toolsets served only when named (or with ``all``): the journal of changes (``changes_list``,
#: ``changes_revert``) is for deployments that want agents to review and undo their own changes
OPT_IN_TOOLSETS = frozenset({"changes"})


def wire_name(canonical: str, style: NameStyle) -> str:
    """``orders.get`` -> ``orders_get`` (default) or unchanged with the dotted style.

    Claude Desktop, Windsurf and Copilot CLI reject dots in tool names, so underscores are the default.
    """
    return canonical if style == "dotted" else canonical.replace(".", "_")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: Callable[..., Any]
    title: str
    description: str
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    plugin: str
    #: False for tools that don't act on one store (stores.list): token store grants are applied inside
    store_scoped: bool = True
    #: the argument that names the object a call acts on (audit lines of calls refused early)
    object_arg: str | None = None
    #: the tool family ``gateway.toolsets`` selects it by (``orders``, ``bulk``...); None: always served
    toolset: str | None = None
    #: the store type it works on (``orderdesk``): its ``store`` argument names only stores of that
    #: type. Set for the tools of a plugin that registered one store type; None: any store
    store_type: str | None = None

    def object_id(self, arguments: dict[str, Any]) -> str | None:
        """The object a call names, from its declared ``object_arg`` (None when it names none)."""
        value = arguments.get(self.object_arg) if self.object_arg else None
        if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
            return ",".join(str(v) for v in value)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
        return None

    @property
    def writes(self) -> bool:
        return not self.read_only

    def annotations(self) -> ToolAnnotations:
        # Every hint is explicit: clients default destructive to true when it is omitted.
        return ToolAnnotations(
            title=self.title,
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


@dataclass
class ToolCall:
    """One tool call as policy hooks and the audit log see it."""

    name: str
    arguments: dict[str, Any]
    principal: str | None
    request_id: str
    spec: ToolSpec | None = None
    #: the caller's token settings (HTTP with tokens), else None; ``allows_store(name)``, ``read_only``
    token: Any = None
    #: what the write route did for this call, one entry per target (the audit line reads it)
    writes: list[TargetOutcome] = field(default_factory=list)
    #: unique per call (a request id repeats across sessions): the journal groups a call's writes by it
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)


#: the tool call being served. Set by the middleware adapter; read only where the SDK stands between
#: the two (the handler that passes it to the tool as its ``call`` parameter, the tool list). Results
#: never travel through it: the write route returns them as values.
current_call: contextvars.ContextVar[ToolCall | None] = contextvars.ContextVar("current_call", default=None)


def can_elicit(ctx: Any) -> bool:
    """Whether the client of the call ``ctx`` (the SDK's ``Context``) can be asked a question now
    (MCP elicitation): it announced the capability, and the 2026-07-28 protocol carries the question in
    the result, or an older one has a live back-channel. Otherwise a tool falls back to an argument
    (``confirm``)."""
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return False
    return is_version_at_least(ctx.protocol_version or "", "2026-07-28") or bool(
        getattr(ctx.session, "can_send_request", False)
    )


class ToolRegistry:
    """Collects tools from the ``gateway_register_tools`` hook; names are unique."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def register(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        title: str | None = None,
        description: str | None = None,
        read_only: bool,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = True,
        store_scoped: bool = True,
        object_arg: str | None = None,
        toolset: str | None = None,
        store_type: str | None = None,
        plugin: str = "?",
    ) -> None:
        if not _CANONICAL.match(name) or len(name) > 40:
            raise ValueError(
                f"tool name {name!r} must be dotted lowercase (like 'orders.get'), at most 40 chars"
            )
        if toolset is not None and (not _TOOLSET.match(toolset) or toolset == ALL_TOOLSETS):
            raise ValueError(
                f"tool {name!r}: toolset {toolset!r} must be a lowercase word (like 'orders'), not 'all'"
            )
        if name in self._tools:
            raise PluginClash(f"the tool {name!r}", self._tools[name].plugin, plugin)
        doc = _one_paragraph_per_line(inspect.cleandoc(description or fn.__doc__ or ""))
        if not doc:
            raise ValueError(f"tool {name!r} needs a description an LLM can act on")
        self._tools[name] = ToolSpec(
            name=name,
            fn=fn,
            title=title or name,
            description=doc,
            read_only=read_only,
            destructive=destructive and not read_only,
            idempotent=idempotent,
            open_world=open_world,
            plugin=plugin,
            store_scoped=store_scoped,
            object_arg=object_arg,
            toolset=toolset,
            store_type=store_type,
        )

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def toolsets(self) -> list[str]:
        """The toolsets the registered tools declare, sorted."""
        return sorted({t.toolset for t in self._tools.values() if t.toolset is not None})

    def chosen(self, names: list[str], source: str = "<config>") -> frozenset[str]:
        """The toolsets ``names`` selects (``all``: every one; ``default``: every one but the opt-in
        ones); an unknown name is a ConfigError naming the closest toolset and listing them all."""
        known = self.toolsets()
        words = [ALL_TOOLSETS, DEFAULT_TOOLSETS, *known]
        if not names:
            raise ConfigError(
                f"{source}: key gateway.toolsets: empty; list toolsets, 'default' or 'all' "
                f"(toolsets: {', '.join(words)})"
            )
        for name in names:
            if name not in words:
                guess = closest(name, words)
                raise ConfigError(
                    f"{source}: key gateway.toolsets: unknown toolset {name!r}"
                    + (f"; did you mean {guess!r}?" if guess else "")
                    + f" (toolsets: {', '.join(words)})"
                )
        if ALL_TOOLSETS in names:
            return frozenset(known)
        chosen = {n for n in names if n != DEFAULT_TOOLSETS}
        if DEFAULT_TOOLSETS in names:
            chosen |= set(known) - OPT_IN_TOOLSETS
        return frozenset(chosen)


def _one_paragraph_per_line(text: str) -> str:
    """Docstring line breaks are layout, not meaning: each paragraph becomes one line (a JSON
    ``\\n`` costs the model two bytes where a space costs one)."""
    return "\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


@dataclass
class ToolTable:
    """Tools declared at module level: ``@TOOLS.tool("orders.get", ...)`` on an ``async def``, then
    ``TOOLS.register_into(register)`` from the plugin's ``gateway_register_tools``.

    A tool function may take ``gateway`` as a parameter; the host passes the ``Gateway`` (it is not
    part of the tool's input schema). The keyword arguments are those of :meth:`ToolRegistry.register`;
    ``toolset`` defaults to the table's.
    """

    #: the toolset of every tool declared here that does not name its own
    toolset: str | None = None
    entries: list[tuple[Callable[..., Any], dict[str, Any]]] = field(default_factory=list)

    def tool(self, name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.entries.append((fn, {"name": name, "toolset": self.toolset, **meta}))
            return fn

        return declare

    def register_into(self, register: Callable[..., None]) -> None:
        for fn, meta in self.entries:
            register(fn, **meta)


#: parameters of a tool function the host fills in (never part of its input schema)
HOST_PARAMETERS = frozenset({"gateway", "call"})


def publish(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``wrapper`` (around ``fn``) the signature clients see: ``fn``'s without its ``gateway``
    parameter, annotations resolved in ``fn``'s module (``Gateway`` itself is often imported for type
    checking only, so it is never resolved). The SDK derives the input schema from it."""
    sig = inspect.signature(fn)
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=_resolve(p.annotation, fn))
            for name, p in sig.parameters.items()
            if name not in HOST_PARAMETERS
        ],
        return_annotation=_resolve(sig.return_annotation, fn),
    )
    wrapper.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k not in HOST_PARAMETERS}
    return wrapper


def published(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as clients see it (for schema and argument checks), without calling it."""
    if not HOST_PARAMETERS & set(inspect.signature(fn).parameters):
        return fn

    @functools.wraps(fn)
    async def stub(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a published signature is not called")  # pragma: no cover

    return publish(stub, fn)


def _resolve(annotation: Any, fn: Callable[..., Any]) -> Any:
    """A string annotation (``from __future__ import annotations``) evaluated in ``fn``'s module."""
    if isinstance(annotation, str):
        return eval(annotation, fn.__globals__)
    return annotation
