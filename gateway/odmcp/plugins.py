"""The plugin manager: built-ins and entry points, validation, error attribution and tracing.

Built-in plugins load through the ``mcp_gateway`` entry-point group, exactly as third-party plugins
do. The host's own defaults (``odmcp.builtins``) are registered directly because they are part of
the host, not of an installed distribution.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib import metadata
from typing import Any

import pluggy

from odmcp import hookspecs
from odmcp.errors import ConfigError, GatewayError, InternalError, PluginClash

log = logging.getLogger("odmcp.plugins")
#: hook-call tracing (GATEWAY_TRACE_HOOKS=1); INFO records, shown whatever the configured log level
trace_log = logging.getLogger("odmcp.plugins.trace")
hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

#: host defaults, registered before entry points (so plugins override them)
HOST_PLUGINS = ("odmcp.builtins", "odmcp.changes_tools")
#: the distribution that ships the host and the built-in plugins
DISTRIBUTION = "orderdesk-mcp-gateway"
#: fan-out hooks whose impls the host calls one by one (gateway.hooks), awaiting each result before the
#: next call: a wrapper impl would never see the awaited result, so registration refuses one.
EACH_IMPL_HOOKS = frozenset(
    {
        "gateway_register_tools",
        "gateway_startup",
        "gateway_shutdown",
        "gateway_invalidate",
        "gateway_tool_pre_invoke",
        "gateway_tool_post_invoke",
    }
)


class PluginError(InternalError):
    """A plugin raised something other than a GatewayError inside a hook."""


class GatewayPluginManager(pluggy.PluginManager):
    """A PluginManager that enforces the async rules and names the plugin behind every failure."""

    def __init__(self, *, trace: bool = False) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self._trace = False
        self.trace_hooks = trace
        #: plugin name -> "built-in" | "entry point <dist> <version>" | "registered"
        self.sources: dict[str, str] = {}

    def get_canonical_name(self, plugin: object) -> str:
        """Modules and classes by ``__name__``; an instance by its class name (``-2``, ``-3``... if taken).

        pluggy's default names an instance by ``id()``, which made errors and ``plugins`` unreadable.
        """
        name = getattr(plugin, "__name__", None)
        if isinstance(name, str) and name:
            return name
        base = candidate = type(plugin).__name__
        n = 1
        while self.has_plugin(candidate):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    @property
    def trace_hooks(self) -> bool:
        return self._trace

    @trace_hooks.setter
    def trace_hooks(self, on: bool) -> None:
        self._trace = on
        if on:  # asked for explicitly: show it even when the log level is WARNING
            trace_log.setLevel(logging.INFO)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        plugin_name = super().register(plugin, name)
        if plugin_name is None:  # blocked
            return None
        try:
            for caller in self.get_hookcallers(plugin) or []:
                spec = caller.spec
                firstresult = bool(spec and spec.opts.get("firstresult"))
                for impl in caller.get_hookimpls():
                    if impl.plugin is not plugin:
                        continue
                    if (impl.wrapper or impl.hookwrapper) and caller.name in EACH_IMPL_HOOKS:
                        raise pluggy.PluginValidationError(
                            plugin,
                            f"plugin {plugin_name!r}: hook {caller.name} does not take wrapper impls: the "
                            "host awaits each impl on its own (an async result can't be wrapped); use "
                            "tryfirst/trylast to run before or after the others",
                        )
                    if impl.wrapper or impl.hookwrapper:
                        continue
                    if firstresult and inspect.iscoroutinefunction(impl.function):
                        raise pluggy.PluginValidationError(
                            plugin,
                            f"plugin {plugin_name!r}: hook {caller.name} is firstresult, so its impl must be "
                            "a "
                            "plain 'def' that returns an awaitable (or None to decline), not 'async def'",
                        )
                    # HookImpl.function is read by pluggy on every call; wrapping it once here gives
                    # error attribution and tracing without re-implementing pluggy's call loop.
                    impl.function = _attributed(impl.function, plugin_name, caller.name, self)  # type: ignore[misc]
        except Exception:
            self.unregister(plugin)
            raise
        self.sources.setdefault(plugin_name, "registered")
        return plugin_name


def _attributed(
    fn: Callable[..., Any], plugin: str, hook: str, pm: GatewayPluginManager
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            res = fn(*args)
        except (GatewayError, ConfigError):  # a refusal or a clash, not a bug in the plugin
            raise
        except Exception as exc:
            raise _plugin_error(exc, plugin, hook) from exc
        if inspect.isawaitable(res):
            return _await_attributed(res, plugin, hook, pm, t0)
        if pm.trace_hooks:
            trace_log.info("hook %s: plugin %s took %.3f ms", hook, plugin, (time.perf_counter() - t0) * 1000)
        return res

    return call


async def _await_attributed(
    aw: Awaitable[Any], plugin: str, hook: str, pm: GatewayPluginManager, t0: float
) -> Any:
    try:
        return await aw
    except GatewayError:
        raise
    except Exception as exc:
        raise _plugin_error(exc, plugin, hook) from exc
    finally:
        if pm.trace_hooks:
            trace_log.info("hook %s: plugin %s took %.3f ms", hook, plugin, (time.perf_counter() - t0) * 1000)


def _plugin_error(exc: Exception, plugin: str, hook: str) -> PluginError:
    log.error("plugin %r raised %s in %s", plugin, type(exc).__name__, hook, exc_info=exc)
    return PluginError(
        f"plugin {plugin!r} failed in hook {hook} ({type(exc).__name__})",
        hint="This is a bug in that plugin; the server log has the traceback. Disable it with "
        "gateway.disabled_plugins if it keeps failing.",
        plugin=plugin,
        hook=hook,
    )


def clash(pm: GatewayPluginManager, what: str, first: str, second: str) -> PluginClash:
    """The one-line error for two plugins registering ``what``, in their registration order: it suggests
    disabling the one that does not ship with the gateway (the later one when both or neither do)."""
    order = [name for name, _plugin in pm.list_name_plugin()]
    if first in order and second in order and order.index(first) > order.index(second):
        first, second = second, first
    shipped = {name for name in (first, second) if pm.sources.get(name, "").startswith("built-in")}
    disable = first if shipped == {second} else second
    return PluginClash(what, first, second, disable)


def build_plugin_manager(
    *,
    load_entrypoints: bool = True,
    disabled: Iterable[str] = (),
    extra: Iterable[object] = (),
    trace: bool | None = None,
) -> GatewayPluginManager:
    """Create the manager: host defaults, entry points (minus ``disabled``), then ``extra`` plugins.

    ``check_pending()`` runs last, so a misspelled hook name fails at start-up with the plugin named.
    """
    if trace is None:
        trace = os.environ.get("GATEWAY_TRACE_HOOKS", "").lower() in {"1", "true", "yes", "on"}
    pm = GatewayPluginManager(trace=trace)
    for modname in HOST_PLUGINS:
        mod = __import__(modname, fromlist=["_"])
        pm.register(mod, name=modname)
        pm.sources[modname] = "built-in (host)"
    for name in disabled:
        pm.set_blocked(name)
    if load_entrypoints:
        for ep in _entry_points():
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as err:
                raise ConfigError(
                    f"plugin {ep.name!r} (entry point {ep.value}) failed to load: "
                    f"{type(err).__name__}: {err}; "
                    f"disable it with gateway.disabled_plugins = [{ep.name!r}] or reinstall it"
                ) from err
            pm.register(plugin, name=ep.name)
            dist = ep.dist
            builtin = dist is not None and dist.metadata["Name"] == DISTRIBUTION
            where = f"{dist.metadata['Name']} {dist.version}" if dist else "?"
            pm.sources[ep.name] = ("built-in" if builtin else "entry point") + f" ({where})"
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=hookspecs.PROJECT), key=lambda ep: ep.name)


def plugin_version(pm: GatewayPluginManager, name: str) -> str:
    plugin = pm.get_plugin(name)
    for p, dist in pm.list_plugin_distinfo():
        if p is plugin:
            return str(dist.version)
    for ep in _entry_points():
        if ep.name == name and ep.dist is not None:
            return str(ep.dist.version)
    from odmcp import __version__

    return __version__ if name.startswith("odmcp.") else "?"


def describe_plugins(pm: GatewayPluginManager) -> list[dict[str, Any]]:
    """Name, version, source and implemented hooks of every registered plugin (for ``plugins``)."""
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda x: x[0]):
        if plugin is None:
            continue
        hooks = sorted(c.name for c in (pm.get_hookcallers(plugin) or []))
        out.append(
            {
                "name": name,
                "version": plugin_version(pm, name),
                "source": pm.sources.get(name, "?"),
                "hooks": hooks,
            }
        )
    return out
