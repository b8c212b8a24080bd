"""A typed facade over ``pm.hook``: the rest of the host calls these methods, never ``pm.hook`` directly.

This is where the awaitable convention of :mod:`odmcp.hookspecs` is applied in one place. Every
fan-out hook runs its impls in pluggy's order (``tryfirst`` first, ``trylast`` last, otherwise the last
registered first); ``gateway_shutdown`` runs in the reverse order.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from odmcp.config import StoreSettings
from odmcp.errors import GatewayError, InternalError, PluginClash
from odmcp.plugins import clash
from odmcp.refs import Ref

if TYPE_CHECKING:
    from odmcp.app import Gateway
    from odmcp.cli import Commands
    from odmcp.plugins import GatewayPluginManager
    from odmcp.tools import ToolCall

log = logging.getLogger("odmcp.hooks")


async def await_me_maybe(value: Any) -> Any:
    """If ``value`` is awaitable, await it; otherwise return it (datasette's convention)."""
    if inspect.isawaitable(value):
        return await value
    return value


def _one_by_one(
    caller: Any, kwargs: dict[str, Any], *, reverse: bool = False
) -> Iterator[tuple[str, Callable[[], Any]]]:
    """``(plugin name, call)`` per impl of a fan-out hook, in the order pluggy calls them.

    That is ``tryfirst`` impls first, ``trylast`` impls last, and within each group the last registered
    first (``get_hookimpls()`` lists them the other way round; pluggy's call loop runs it from the end).
    ``reverse`` gives the opposite order (shutdown undoes startup).

    Each call is made only after the previous result was awaited, so a refusal or a crash never leaves
    another impl's coroutine created but un-awaited ("never awaited" warnings), as pluggy's own call
    loop would. Registration refuses wrapper impls of these hooks (``plugins.EACH_IMPL_HOOKS``); tracing
    and error attribution still apply (plugins.py).
    """
    impls = caller.get_hookimpls()
    for impl in impls if reverse else reversed(impls):
        yield impl.plugin_name, functools.partial(impl.function, *[kwargs[a] for a in impl.argnames])


class Hooks:
    def __init__(self, pm: GatewayPluginManager, gateway: Gateway | None = None) -> None:
        self.pm = pm
        self.h = pm.hook
        #: store type -> the plugin that registered it (filled by :meth:`register_config`)
        self.store_type_owners: dict[str, str] = {}
        #: passed to the object hooks; set once the Gateway exists
        self.gateway = gateway

    # --- start-up ---------------------------------------------------------------------------

    def register_config(self) -> dict[str, Any]:
        """Every plugin's config sections; ``"stores"`` maps to the store types, ``{type: model}``.

        Two plugins registering one section or one store type is a :class:`PluginClash` naming both."""
        sections: dict[str, type[Any]] = {}
        owners: dict[str, str] = {}
        types: dict[str, type[StoreSettings]] = {}
        type_owners: dict[str, str] = {}
        for impl in reversed(self.h.gateway_register_config.get_hookimpls()):  # pluggy's order
            plugin = impl.plugin_name

            def register(section: str, struct: type[Any], *, _plugin: str = plugin) -> None:
                if section == "stores":
                    if not (isinstance(struct, type) and issubclass(struct, StoreSettings)):
                        raise ValueError("the [[stores]] type must subclass odmcp.config.StoreSettings")
                    name = struct.STORE_TYPE or _plugin
                    if name in types:
                        raise clash(self.pm, f"store type {name!r}", type_owners[name], _plugin)
                    types[name], type_owners[name] = struct, _plugin
                    return
                if section in sections:
                    raise clash(self.pm, f"the config section [{section}]", owners[section], _plugin)
                sections[section], owners[section] = struct, _plugin

            impl.function(*[{"register": register}[a] for a in impl.argnames])
        out: dict[str, Any] = dict(sections)
        if types:
            out["stores"] = types
        self.store_type_owners.update(type_owners)
        return out

    def register_cache_backends(self, register: Callable[..., None]) -> None:
        owners: dict[str, str] = {}
        for impl in reversed(self.h.gateway_register_cache_backends.get_hookimpls()):

            def reg(name: str, factory: Any, *, _plugin: str = impl.plugin_name) -> None:
                if name in owners:
                    raise clash(self.pm, f"the cache backend {name!r}", owners[name], _plugin)
                owners[name] = _plugin
                register(name, factory)

            impl.function(*[{"register": reg}[a] for a in impl.argnames])

    def register_journal_backends(self, register: Callable[..., None]) -> None:
        self.h.gateway_register_journal_backends(register=register)

    def register_reverts(self, register: Callable[..., None]) -> None:
        self.h.gateway_register_reverts(register=register)

    def register_tools(self, register: Callable[..., None], gateway: Gateway) -> None:
        """Give each plugin a register() that records its name (for ``tools`` and error messages) and,
        for a plugin that registered exactly one store type, makes its tools that type's tools."""
        owned: dict[str, list[str]] = {}
        for type_name in gateway.config.store_types:
            owned.setdefault(self.store_type_owners.get(type_name, ""), []).append(type_name)
        for impl in reversed(self.h.gateway_register_tools.get_hookimpls()):  # pluggy's order
            mine = owned.get(impl.plugin_name, [])

            def reg(
                fn: Callable[..., Any],
                *,
                _plugin: str = impl.plugin_name,
                _type: str | None = mine[0] if len(mine) == 1 else None,
                **kw: Any,
            ) -> None:
                kw.setdefault("store_type", _type)
                try:
                    register(fn, plugin=_plugin, **kw)
                except PluginClash as err:
                    raise clash(self.pm, err.what, err.first, err.second) from None

            impl.function(*[{"register": reg, "gateway": gateway}[a] for a in impl.argnames])

    def instructions(self) -> list[str]:
        texts = self.h.gateway_instructions(gateway=self.gateway)  # in pluggy's order
        return [t.strip() for t in texts if isinstance(t, str) and t.strip()]

    def register_commands(self, cli: Commands) -> None:
        self.h.gateway_register_commands(cli=cli)

    def register_routes(self, register: Callable[..., None], gateway: Gateway) -> None:
        self.h.gateway_register_routes(register=register, gateway=gateway)

    async def startup(self, gateway: Gateway) -> None:
        for _plugin, call in _one_by_one(self.h.gateway_startup, {"gateway": gateway}):
            await await_me_maybe(call())

    async def shutdown(self, gateway: Gateway) -> None:
        # The reverse of startup's order, and each impl on its own: one failure must not leave the
        # others' resources open.
        for plugin, call in _one_by_one(self.h.gateway_shutdown, {"gateway": gateway}, reverse=True):
            try:
                await await_me_maybe(call())
            except Exception:
                log.exception("plugin %r failed during shutdown", plugin)

    # --- the object workflow ------------------------------------------------------------------

    @staticmethod
    def _declined(hook: str, ref: Ref) -> GatewayError:
        return InternalError(
            f"no plugin handles {hook} for {ref.kind!r} objects in store {ref.store!r}",
            hint="Check that the store plugin is installed and enabled (mcp-gateway plugins).",
        )

    async def fetch(self, ref: Ref, *, reserve: int = 0) -> dict[str, Any]:
        aw = self.h.gateway_fetch(ref=ref, gateway=self.gateway, reserve=reserve)
        if aw is None:
            raise self._declined("gateway_fetch", ref)
        result: dict[str, Any] = await aw
        return result

    def merge(self, ref: Ref, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        merged = self.h.gateway_merge(ref=ref, current=current, changes=changes, gateway=self.gateway)
        if merged is None:
            raise self._declined("gateway_merge", ref)
        if inspect.isawaitable(merged):
            raise InternalError("gateway_merge must be synchronous and return a dict, not an awaitable")
        result: dict[str, Any] = merged
        return result

    def diff(self, ref: Ref, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        changes = self.h.gateway_diff(ref=ref, before=before, after=after, gateway=self.gateway)
        if changes is None:
            raise self._declined("gateway_diff", ref)
        result: list[dict[str, Any]] = changes
        return result

    async def upload(
        self, ref: Ref, obj: dict[str, Any], fetched: dict[str, Any], *, reserve: int = 0
    ) -> dict[str, Any]:
        aw = self.h.gateway_upload(ref=ref, obj=obj, fetched=fetched, gateway=self.gateway, reserve=reserve)
        if aw is None:
            raise self._declined("gateway_upload", ref)
        result: dict[str, Any] = await aw
        return result

    def reconcile(
        self, ref: Ref, before: dict[str, Any], intended: dict[str, Any], current: dict[str, Any]
    ) -> str:
        verdict = self.h.gateway_reconcile(
            ref=ref, before=before, intended=intended, current=current, gateway=self.gateway
        )
        if verdict not in ("applied", "already", "not_applied", "unknown"):
            raise InternalError(f"gateway_reconcile returned {verdict!r} for {ref}")
        result: str = verdict
        return result

    async def create(self, ref: Ref, body: dict[str, Any], *, reserve: int = 0) -> dict[str, Any]:
        aw = self.h.gateway_create(ref=ref, body=body, gateway=self.gateway, reserve=reserve)
        if aw is None:
            raise self._declined("gateway_create", ref)
        result: dict[str, Any] = await aw
        return result

    async def delete(self, ref: Ref, *, reserve: int = 0) -> None:
        aw = self.h.gateway_delete(ref=ref, gateway=self.gateway, reserve=reserve)
        if aw is None:
            raise self._declined("gateway_delete", ref)
        await aw

    async def invalidate(self, ref: Ref, lists: bool, gateway: Gateway) -> None:
        """Run every impl; a failing one is logged, never raised: the write it follows has happened."""
        kwargs = {"ref": ref, "lists": lists, "gateway": gateway}
        for plugin, call in _one_by_one(self.h.gateway_invalidate, kwargs):
            try:
                await await_me_maybe(call())
            except Exception:
                log.exception(
                    "plugin %r failed to invalidate %s; cached data may be stale until TTL", plugin, ref
                )

    # --- policy ---------------------------------------------------------------------------------

    async def pre_invoke(self, call: ToolCall) -> None:
        # In pluggy's order (tryfirst first); the first refusal stops the chain.
        kwargs = {"call": call, "gateway": self.gateway}
        for _plugin, run in _one_by_one(self.h.gateway_tool_pre_invoke, kwargs):
            await await_me_maybe(run())

    async def post_invoke(
        self, call: ToolCall, outcome: str, error: Exception | None, elapsed_ms: float
    ) -> None:
        # Each impl on its own: one failing plugin neither changes the result nor skips the others.
        kwargs = {
            "call": call,
            "outcome": outcome,
            "error": error,
            "elapsed_ms": elapsed_ms,
            "gateway": self.gateway,
        }
        for plugin, run in _one_by_one(self.h.gateway_tool_post_invoke, kwargs):
            try:
                await await_me_maybe(run())
            except Exception:
                log.exception("plugin %r failed in gateway_tool_post_invoke for %s", plugin, call.name)
