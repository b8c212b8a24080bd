"""The Gateway object: configuration, plugins, cache, locks, audit and metrics, wired together.

Plugins receive it in hooks (``gateway``) and use :attr:`workflow` for reads and writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import tomllib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from odmcp.audit import AuditLog
from odmcp.bulk import BulkRunner
from odmcp.cache import Cache, digest
from odmcp.cache_backend import CacheBackend, CacheFactory
from odmcp.changes import Reverts
from odmcp.config import Config, RateLimitSettings, StoreSettings, load_config
from odmcp.errors import ConfigError, ValidationFailed
from odmcp.hooks import Hooks
from odmcp.journal import JournalBackend, JournalRegistry
from odmcp.locks import MutationLocks
from odmcp.metrics import Metrics
from odmcp.plugins import GatewayPluginManager, build_plugin_manager
from odmcp.ratelimit import LeakyBucket, RateLimiter, SharedBucket
from odmcp.route import WriteRoute
from odmcp.toollist import HintWords, visible
from odmcp.tools import ToolCall, ToolRegistry, ToolSpec, current_call, wire_name
from odmcp.workflow import Workflow

log = logging.getLogger("odmcp")


class CacheRegistry:
    """Cache backends registered by plugins; configuration picks one by name (tox's registry pattern)."""

    def __init__(self) -> None:
        self.factories: dict[str, CacheFactory] = {}

    def register(self, name: str, factory: CacheFactory) -> None:
        if name in self.factories:
            raise ValueError(f"cache backend {name!r} registered twice")
        self.factories[name] = factory

    def create(self, cfg: Config) -> CacheBackend:
        name = cfg.cache.backend
        if name not in self.factories:
            raise ConfigError(
                f"{cfg.where('cache.backend')}: unknown cache backend {name!r}; "
                f"available: {', '.join(sorted(self.factories)) or '(none installed)'}"
            )
        return self.factories[name](cfg.cache)


class Gateway:
    def __init__(
        self,
        config: Config,
        pm: GatewayPluginManager,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.pm = pm
        self.hooks = Hooks(pm, self)
        self.hooks.register_config()  # which plugin registered which store type (its tools are of it)
        self.metrics = Metrics()
        self.audit = AuditLog(config.audit.path, config.audit.on_error)
        self.caches = CacheRegistry()
        self.hooks.register_cache_backends(self.caches.register)
        if config.cache.enabled and config.cache.backend not in self.caches.factories:
            self.caches.create(config)  # raises ConfigError naming the available backends
        self.cache: Cache | None = None
        self.journals = JournalRegistry()
        self.hooks.register_journal_backends(self.journals.register)
        self.journals.check(config)  # an unknown journal.backend fails here, naming the available ones
        #: the durable journal (``journal.backend``), open between startup and shutdown
        self.journal: JournalBackend | None = None
        self.locks = MutationLocks(
            None,
            config.mutations.lock_lease,
            config.mutations.lock_wait,
            enabled=config.mutations.lock,
            local_when_unavailable=config.mutations.local_locks_when_shared_unavailable,
        )
        self.workflow = Workflow(self, sleep=sleep, rng=rng)
        #: the one write route every write goes through (odmcp.route)
        self.route = WriteRoute(self)
        self.bulk = BulkRunner(self)
        #: how to undo each kind of change (``gateway_register_reverts``; odmcp.changes)
        self.reverts = Reverts()
        self.hooks.register_reverts(self.reverts.register)
        self.tools = ToolRegistry()
        self.hooks.register_tools(self.tools.register, self)
        #: the toolsets served (``gateway.toolsets``); an unknown name fails here, at start-up
        self.toolsets = self.tools.chosen(config.gateway.toolsets, config.source)
        self._users = 0
        self._start_lock = asyncio.Lock()
        #: free-form per-plugin state (e.g. HTTP clients), keyed by plugin name
        self.state: dict[str, Any] = {}
        #: this process among the replicas sharing a cache backend (rate-limit bucket membership)
        self.replica_id = uuid.uuid4().hex[:12]
        self._limiters: dict[str, RateLimiter] = {}
        #: tool names in hints, and the tools each kind of caller sees (:meth:`for_caller`)
        self._hint_words: HintWords | None = None
        self._shown: dict[Any, frozenset[str]] = {}

    @classmethod
    def from_config(
        cls,
        path: str | None = None,
        *,
        env: dict[str, str] | None = None,
        overrides: dict[str, Any] | None = None,
        extra_plugins: Iterable[object] = (),
        load_entrypoints: bool = True,
        **kw: Any,
    ) -> Gateway:
        """Build the plugin manager, read the config (with every plugin's section), build the Gateway."""
        environ = dict(os.environ if env is None else env)
        # Blocked before entry points load, so a plugin that fails to import can be disabled.
        disabled = _disabled_plugins(path or environ.get("GATEWAY_CONFIG"), overrides, environ)
        pm = build_plugin_manager(load_entrypoints=load_entrypoints, disabled=disabled, extra=extra_plugins)
        sections = Hooks(pm).register_config()
        for name in disabled:  # a disabled plugin's section may stay in the file, unvalidated
            sections.setdefault(name, dict)
        config = load_config(path, environ, sections, overrides)
        for name in config.gateway.disabled_plugins:
            if pm.has_plugin(name):
                pm.unregister(name=name)
            pm.set_blocked(name)
        pm.trace_hooks = pm.trace_hooks or config.gateway.trace_hooks
        return cls(config, pm, **kw)

    def for_caller(self, text: str, token: Any = None) -> str:
        """``text`` (an error hint, a bulk report's message) as the caller of the tool being served (or
        ``token``'s holder) may read it: tools it sees spelled as on its wire, the clause that points to
        a tool it does not see left out (:class:`odmcp.toollist.HintWords`)."""
        if token is None:
            call = current_call.get()
            token = call.token if call is not None else None
        style = self.config.gateway.tool_names
        if self._hint_words is None:
            self._hint_words = HintWords([t.name for t in self.tools], lambda n: wire_name(n, style))
        kind = None if token is None else (bool(token.read_only), tuple(token.stores))
        shown = self._shown.get(kind)
        if shown is None:
            served = {wire_name(t.name, style): t for t in self.served_tools()}
            shown = self._shown[kind] = visible(served, self.config, token)
        return self._hint_words.rewrite(text, shown)

    def served_tools(self) -> list[ToolSpec]:
        """The registered tools of the chosen toolsets (tools without a toolset are always served),
        less the tools of a store type no ``[[stores]]`` entry has (once any store is configured)."""
        return [
            t
            for t in self.tools
            if (t.toolset is None or t.toolset in self.toolsets) and self.serves_type(t.store_type)
        ]

    def serves_type(self, store_type: str | None) -> bool:
        """Whether tools of ``store_type`` are served: some store is of that type (or none is configured
        at all, so ``tools`` still lists what a config could serve)."""
        cfg = self.config
        return store_type is None or not cfg.stores or bool(cfg.stores_of(store_type))

    # --- stores ---------------------------------------------------------------------------------

    def store(self, name: str | None, store_type: str | None = None) -> StoreSettings:
        """The configured store called ``name``, of the store type of the tool being served (or
        ``store_type``); without a name, the caller's default store of that type (the type's default
        store, or the first one granted to a token that may not use it). VALIDATION if there is none."""
        call = current_call.get()
        if store_type is None and call is not None and call.spec is not None:
            store_type = call.spec.store_type
        cfg = self.config
        token = call.token if call is not None else None
        found = (
            cfg.default_for(token, store_type)
            if not name
            else next((s for s in cfg.stores if s.name == name), None)
        )
        if found is not None and (store_type is None or found.store_type == store_type):
            return found
        if not name and found is None and not cfg.stores:
            return cfg.default_store  # raises: no store configured, and how to add one
        names = [s.name for s in self.visible_stores(store_type)]
        kind = f"{store_type} " if store_type and len(cfg.store_types) > 1 else ""
        if found is not None:
            what = f"store {name!r} is of type {found.store_type!r}; this tool works on {store_type!r} stores"
        elif name:
            what = f"unknown store {name!r}"
        else:
            what = f"no {kind}store is configured"
        raise ValidationFailed(
            f"{what}; {kind}stores you may use: {', '.join(names) or '(none)'}",
            hint="Call again with one of those store names, or without store for the default.",
        )

    def store_id(self, name: str | None) -> str:
        """The upstream store id of the store called ``name`` (cache keys, locks and audit lines)."""
        try:
            return self.config.store(name).store_id
        except KeyError:
            return self.store(name).store_id  # raises VALIDATION naming the stores

    def visible_stores(
        self, store_type: str | None = None, *, call: ToolCall | None = None
    ) -> list[StoreSettings]:
        """The configured stores ``call``'s caller (default: the caller of the tool being served) may
        use (all of them outside a call, or for a caller without a token), of ``store_type`` (default:
        the tool's own type). Store-agnostic tools list only these."""
        call = call if call is not None else current_call.get()
        token = call.token if call is not None else None
        if store_type is None and call is not None and call.spec is not None:
            store_type = call.spec.store_type
        return [s for s in self.config.stores_of(store_type) if token is None or token.allows_store(s.name)]

    # --- rate limits ----------------------------------------------------------------------------

    def rate_limiter(self, name: str, settings: RateLimitSettings) -> RateLimiter:
        """The rate-limit bucket called ``name`` (one per name; the first caller's settings apply).

        With a shared cache backend that offers fleet primitives (Redis) it is one bucket for every
        replica with the same ``cache.prefix``; otherwise an in-process bucket. Call it from
        ``gateway_startup`` on (the cache backend exists by then).
        """
        limiter = self._limiters.get(name)
        if limiter is None:
            cache = self.cache
            if cache is not None and cache.fleet is not None and settings.enabled:
                key = cache.key(digest(name), "bucket")
                limiter = SharedBucket(cache, cache.fleet, key, settings, name=name, member=self.replica_id)
            else:
                limiter = LeakyBucket.from_settings(settings)
            self._limiters[name] = limiter
        return limiter

    # --- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Start once, however many server lifespans (in-process clients) enter."""
        async with self._start_lock:
            if self._users:
                self._users += 1
                return
            try:
                if self.config.cache.enabled:
                    backend = self.caches.create(self.config)
                    self.cache = Cache(backend, self.config.cache, self.metrics)
                    self.locks.cache = self.cache
                    if not backend.local and not await self.cache._call("ping", backend.ping, False):
                        log.warning(
                            "cache backend %r did not answer at start-up; serving fail-open", backend.name
                        )
                    check = getattr(backend, "startup_check", None)
                    problem = await check() if check is not None else None
                    if problem:
                        raise ConfigError(problem)
                self.journal = self.journals.create(self.config)
                await self.journal.open()
                await self.hooks.startup(self)
            except BaseException:
                await self._close()  # a half-started gateway must not leak pools or sessions
                raise
            self._users = 1

    async def shutdown(self) -> None:
        async with self._start_lock:
            self._users -= 1
            if self._users > 0:
                return
            await self._close()

    async def _close(self) -> None:
        await self.hooks.shutdown(self)
        self._limiters.clear()
        if self.cache is not None:
            await self.cache.close()
            self.cache = self.locks.cache = None
        if self.journal is not None:
            journal, self.journal = self.journal, None
            await journal.close()
        self.audit.close()


def _disabled_plugins(
    path: str | None, overrides: dict[str, Any] | None, env: Mapping[str, str] | None = None
) -> list[str]:
    """``gateway.disabled_plugins`` (or ``GATEWAY_DISABLED_PLUGINS``, comma-separated) read ahead of the
    plugins, with the config's precedence; load_config reports any error in it."""
    value: Any = None
    if path:
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            value = doc.get("gateway", {}).get("disabled_plugins")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            value = None
    raw = (os.environ if env is None else env).get("GATEWAY_DISABLED_PLUGINS")
    if raw is not None:
        value = [part.strip() for part in raw.split(",") if part.strip()]
    ov = overrides or {}
    if "gateway.disabled_plugins" in ov:
        value = ov["gateway.disabled_plugins"]
    elif isinstance(ov.get("gateway"), dict) and "disabled_plugins" in ov["gateway"]:
        value = ov["gateway"]["disabled_plugins"]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
