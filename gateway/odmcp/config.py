"""Configuration: a TOML file plus environment overrides, validated with msgspec.

Precedence (lowest first): defaults, the file (``--config FILE`` or ``GATEWAY_CONFIG``), environment.
Secrets may be written as ``{"$env" = "NAME"}`` anywhere in the file; they are resolved at load time
and held in :class:`Secret`, whose ``str``/``repr`` never show the value.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from odmcp.errors import ConfigError

T = TypeVar("T")


class Secret:
    """A credential. Use :meth:`reveal` at the one place it is sent; everything else sees ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class RateLimitSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A store's upstream rate limit. The host knows no upstream: off unless the store plugin's
    settings model gives its upstream's limit as the defaults (a subclass of this with its own
    field defaults, as the ``rate_limit`` field of its :class:`StoreSettings` subclass)."""

    #: bucket size (requests in a burst) ...
    capacity: int = 1
    #: ... refilled at this many per second
    refill_per_sec: float = 1.0
    enabled: bool = False
    #: With a shared cache the whole fleet uses one bucket. While the cache does not answer, each
    #: replica uses this fraction of it on its own (default: 1 / the replicas last seen on the
    #: bucket, 1/2 before any was seen). Never more than the whole bucket, never unlimited.
    fallback_share: float | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be >= 1")
        if self.refill_per_sec <= 0:
            raise ValueError("refill_per_sec must be > 0")
        if self.fallback_share is not None and not 0 < self.fallback_share <= 1:
            raise ValueError("fallback_share must be > 0 and <= 1")


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One ``[[stores]]`` entry, as far as the host needs it.

    A store plugin registers a subclass with its own fields (credentials, endpoint) as
    ``register("stores", Subclass)`` from ``gateway_register_config``. Its ``STORE_TYPE`` names the
    store type (the entry's ``type = "..."``; the plugin's name when unset); its ``ENV`` class attribute
    maps environment variables to fields of that type's default store (e.g. a store id and an API key).
    """

    #: the store type this model validates (``type = "orderdesk"`` in a ``[[stores]]`` entry)
    STORE_TYPE: ClassVar[str] = ""
    #: environment variable -> field of the default store (set by the store plugin's subclass)
    ENV: ClassVar[dict[str, str]] = {}

    name: str
    #: the upstream's own id of the store: cache keys, locks and audit lines carry it
    store_id: str
    default: bool = False
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)

    def problems(self) -> list[tuple[str, str]]:
        """``(field, what is wrong)`` for the store plugin's own fields; checked at start-up."""
        return []

    def warnings(self) -> list[tuple[str, str]]:
        """``(field, what looks wrong)``: valid, but likely a mistake (``config check`` shows them)."""
        return []

    @property
    def store_type(self) -> str:
        """The type of this entry (empty when no store plugin registered one)."""
        return type(self).STORE_TYPE


class TokenSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    token: Secret
    #: store names this token may use; ``["*"]`` means all
    stores: list[str] = msgspec.field(default_factory=lambda: ["*"])
    read_only: bool = False
    #: extra grants: ``changes:all`` sees and reverts every caller's changes (not only its own)
    grants: list[str] = msgspec.field(default_factory=list)

    def allows_store(self, store: str) -> bool:
        return "*" in self.stores or store in self.stores


class OAuthScopes(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[http.oauth.scopes]``: the scope names that grant what a static token's settings grant."""

    #: read tools
    read: str = "orders:read"
    #: write tools too (implies read)
    write: str = "orders:write"
    #: ``store:<name>`` limits the caller to the stores named; no such scope means every store
    store_prefix: str = "store:"


#: signature algorithms an access token may use (asymmetric only: never ``none``, never HMAC)
OAUTH_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OAuthSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[http.oauth]``: the gateway as an OAuth 2.1 resource server (MCP authorization)."""

    #: the authorization server's issuer URL; tokens' ``iss`` must equal it
    issuer: str
    #: this gateway's canonical URL (``https://mcp.example.com/mcp``); tokens' ``aud`` must contain it
    resource: str
    #: where the signing keys are; default: the ``jwks_uri`` of the issuer's metadata
    jwks_uri: str | None = None
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256"])
    #: clock skew allowed on ``exp``/``nbf``/``iat``, seconds
    leeway_s: float = 60.0
    #: a token naming an unknown key re-fetches the key set at most once per this many seconds
    jwks_refetch_s: float = 30.0
    scopes: OAuthScopes = msgspec.field(default_factory=OAuthScopes)


class HttpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    #: one shared bearer token (``GATEWAY_HTTP_TOKEN``); see ``tokens`` for per-caller tokens
    token: Secret | None = None
    tokens: list[TokenSettings] = msgspec.field(default_factory=list)
    #: Host headers accepted besides the bind address (DNS-rebinding protection stays on)
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    max_body_bytes: int = 1_000_000
    #: ``json_response=True`` answers legacy clients with plain JSON instead of SSE
    json_response: bool = False
    #: shared key(s) that seal multi-round elicitation state, so replicas can continue each other's calls
    request_state_keys: list[Secret] = msgspec.field(default_factory=list)
    #: seconds a connection has to send a complete request: the headers within this of connecting (or of
    #: the previous response, which makes it the keep-alive timeout too), then the body within this again
    read_timeout: float = 10.0
    #: requests served at once (not counting legacy sessions' GET streams); more get 503 + Retry-After
    max_concurrent_requests: int = 256
    #: requests served at once without credentials (public plugin routes while tokens are set)
    max_anonymous_requests: int = 16
    #: a legacy (2025-11-25) session with no request in flight for this long is closed
    session_idle_timeout: float = 600.0
    #: legacy sessions open at once, all callers together
    max_sessions: int = 1000
    #: legacy sessions open at once per token (all callers share one principal when no token is set)
    max_sessions_per_token: int = 100
    #: sign-in with an identity provider (OAuth access tokens), beside or instead of ``tokens``
    oauth: OAuthSettings | None = None
    #: serve ``GET /changes``: the latest journaled changes for people (read-only, same bearer auth)
    changes_page: bool = False


DEFAULT_TTL = 30.0
DEFAULT_LIST_TTL = 10.0


class CacheSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    backend: str = "memory"
    #: every key starts with this prefix (give each deployment or test its own)
    prefix: str = "mcpgw"
    #: ``redis://`` or ``rediss://`` (one server), ``redis+cluster://host:port`` (Redis Cluster: any
    #: node; TLS: ``rediss+cluster://``), ``redis+sentinel://host:26379[,host2:26379]/mymaster[/db]``
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: ``auto`` (from the URL's scheme), or ``cluster`` to treat a ``redis://`` URL as a cluster node
    redis_mode: Literal["auto", "standalone", "cluster"] = "auto"
    #: per-operation timeout for shared backends; a slow Redis counts as a miss (fail-open)
    op_timeout: float = 0.25
    #: shared backends: the lease of a cross-replica single-flight load, renewed every lease/3 s while
    #: the load runs; if its replica dies, another takes the load over within this many seconds
    flight_lease: float = 3.0
    #: LRU bound of the memory backend, in entries ...
    max_entries: int = 10_000
    #: ... and in bytes of stored payload (the JSON of each value); whichever is reached first evicts
    max_bytes: int = 64 * 1024 * 1024
    #: seconds a cached value stays fresh, by object kind (``[cache.ttl] order = 30``, any kind a plugin
    #: caches), plus ``list`` for list and search pages and ``default`` for kinds not named
    ttl: dict[str, float] = msgspec.field(default_factory=dict)
    idempotency_ttl: float = 86_400.0
    enabled: bool = True

    def __post_init__(self) -> None:
        for kind, seconds in self.ttl.items():
            if not 0 <= seconds < float("inf"):
                raise ValueError(f"ttl.{kind} must be a number of seconds >= 0")

    def ttl_for(self, kind: str, default: float | None = None) -> float:
        """Seconds ``kind`` stays cached: ``[cache.ttl]``, else the plugin's ``default``, else 30 s."""
        if kind in self.ttl:
            return self.ttl[kind]
        if default is not None:
            return default
        return self.ttl.get("default", DEFAULT_TTL)

    @property
    def ttl_list(self) -> float:
        return self.ttl.get("list", DEFAULT_LIST_TTL)


class MutationSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: total tries of fetch -> merge -> upload before CONFLICT is returned
    attempts: int = 5
    #: sleep before retry n (seconds); the last value repeats if attempts exceed the list
    backoff: list[float] = msgspec.field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0])
    #: +/- fraction of random jitter on each backoff
    jitter: float = 0.2
    #: re-read the object right before the upload and treat any change of its content as a conflict
    precondition: bool = False
    #: after a write that timed out or lost its connection, wait this long before the re-read that
    #: decides whether it was applied (the request may still be in flight upstream)
    reconcile_settle: float = 1.0
    #: serialise mutations of one object (per process, and across replicas on a shared cache)
    lock: bool = True
    #: the cross-replica lock's lease. It is renewed every lease/3 s while held (so slow attempts keep
    #: it); it only bounds how long a crashed holder blocks the object.
    lock_lease: float = 5.0
    #: how long a writer waits for the lock before giving up with CONFLICT
    lock_wait: float = 120.0
    #: the longest a write request may live once sent (connect, send, wait, retries), in seconds. A
    #: holder records ``now + write_deadline`` on its lock before each write (the fence); a replica that
    #: takes the lock over from a holder that died with a write in flight waits until then. Must be at
    #: least the store's own bound on a write (``orderdesk.deadline``, which the OrderDesk plugin cuts
    #: to this for writes), plus a margin for a request the store still processes after the gateway
    #: gave up on it.
    write_deadline: float = 75.0
    #: with a shared cache backend that does not answer, take the lock in this process only and write
    #: anyway, instead of refusing with UNAVAILABLE. Risk: replicas then no longer exclude each other,
    #: so concurrent updates of one object from two replicas can overwrite each other (lost updates)
    local_locks_when_shared_unavailable: bool = False
    #: deprecated, no effect: refusing writes while the shared lock is unavailable is the default now
    #: (kept so older files load; see ``local_locks_when_shared_unavailable`` to opt out)
    require_shared_lock: bool | None = None

    def __post_init__(self) -> None:
        if self.lock_lease <= 0:
            raise ValueError("lock_lease must be > 0 seconds")
        if self.write_deadline <= 0:
            raise ValueError("write_deadline must be > 0 seconds")


class AuditSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: a file path, ``"-"`` for stderr, or empty to disable
    path: str = ""
    #: ``"fail_closed"`` refuses the mutation when the line can't be written; ``"warn"`` logs and goes on
    on_error: Literal["fail_closed", "warn"] = "fail_closed"


class JournalSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[journal]``: the durable record of keyed calls and of every write (see :mod:`odmcp.journal`)."""

    #: ``sqlite`` (a file; the embedded default) or ``redis`` (shared by replicas), or a plugin's backend
    backend: str = "sqlite"
    #: the sqlite file (``~`` is expanded); empty means ``$XDG_STATE_HOME/mcp-gateway/journal.sqlite``
    #: (falling back to ``~/.local/state/...``), filled in when the config is loaded
    path: str = ""
    #: the Redis of the ``redis`` backend; empty means ``cache.redis_url``
    redis_url: str = ""
    #: every Redis key starts with ``<prefix>:journal:``
    prefix: str = "mcpgw"
    #: seconds a record is kept (7 days) ...
    retention: float = 7 * 86_400.0
    #: ... and the most records (writes and keyed calls together) ...
    max_entries: int = 100_000
    #: ... and bytes of records (their JSON) kept; beyond either bound the oldest go first
    max_bytes: int = 64 * 1024 * 1024


def default_journal_path(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_STATE_HOME/mcp-gateway/journal.sqlite``, else ``~/.local/state/mcp-gateway/journal.sqlite``.

    ``XDG_STATE_HOME`` is read from ``env`` first, then from the process environment (where the user's
    state directory is, like the home directory, is a fact of the machine, not a gateway setting); a
    relative value is ignored, as the XDG spec says.
    """
    state = (env or {}).get("XDG_STATE_HOME") or os.environ.get("XDG_STATE_HOME") or ""
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return str(base / "mcp-gateway" / "journal.sqlite")


class GatewaySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: the MCP server name clients show
    name: str = "mcp-gateway"
    tool_names: Literal["underscore", "dotted"] = "underscore"
    read_only: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    #: plugins (by name) not to load, e.g. ``["cache_redis"]``
    disabled_plugins: list[str] = msgspec.field(default_factory=list)
    trace_hooks: bool = False
    #: tool families to serve (``orders``, ``items``, ``shipments``, ``inventory``, ``store``, ``bulk``,
    #: or ``all``); names are checked against the registered tools at start-up
    toolsets: list[str] = msgspec.field(default_factory=lambda: ["default"])
    #: the most text one tool result may carry (bytes of its JSON); a list that would exceed it returns
    #: the records that fit, ``truncated`` and a ``next_offset`` (:mod:`odmcp.budget`)
    max_result_bytes: int = 100_000

    def __post_init__(self) -> None:
        if self.max_result_bytes < 4_096:
            raise ValueError("max_result_bytes must be >= 4096")


class BulkSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: targets of one bulk call worked on at the same time
    concurrency: int = 4
    #: rate-limit tokens a bulk job leaves for interactive calls (more than ``concurrency``)
    reserve: int = 5
    #: the longest gap between two progress notifications (seconds)
    progress_interval: float = 1.5

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 32:
            raise ValueError("concurrency must be from 1 to 32")
        if self.reserve < 0:
            raise ValueError("reserve must be >= 0")
        if self.progress_interval <= 0:
            raise ValueError("progress_interval must be > 0 seconds")


class Config(msgspec.Struct, kw_only=True):
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    mutations: MutationSettings = msgspec.field(default_factory=MutationSettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    bulk: BulkSettings = msgspec.field(default_factory=BulkSettings)
    journal: JournalSettings = msgspec.field(default_factory=JournalSettings)
    stores: list[StoreSettings] = msgspec.field(default_factory=list)
    #: plugin sections, validated by each plugin's registered Struct
    plugins: dict[str, Any] = msgspec.field(default_factory=dict)
    #: where the file came from (for messages)
    source: str = "<defaults>"
    #: keys whose value an environment variable set (``"cache.backend": "GATEWAY_CACHE"``), for messages
    origins: dict[str, str] = msgspec.field(default_factory=dict)
    #: the variables that define the default store (the registered store types' ``ENV``), for messages
    store_env: list[str] = msgspec.field(default_factory=list)
    #: the same, one group per store type (``[["ORDERDESK_STORE_ID", "ORDERDESK_API_KEY"]]``)
    store_env_groups: list[list[str]] = msgspec.field(default_factory=list)
    #: the registered store types, by name
    store_types: list[str] = msgspec.field(default_factory=list)

    def section(self, name: str) -> Any:
        return self.plugins[name]

    def where(self, key: str) -> str:
        """Where ``key``'s value came from, to start an error message: the variable or the file and key."""
        return _where(self.source, key, self.origins)

    @property
    def default_store(self) -> StoreSettings:
        for s in self.stores:
            if s.default:
                return s
        if not self.stores:
            env = ", or ".join(" and ".join(group) for group in self.store_env_groups if group)
            raise ConfigError(
                "no store configured: " + (f"set {env}, or " if env else "") + "add a [[stores]] entry"
            )
        return self.stores[0]

    def default_for(self, token: TokenSettings | None, store_type: str | None = None) -> StoreSettings | None:
        """The store a caller gets when it names none: the default store (of ``store_type``), or, for a
        token that may not use it, the first store of that type the token grants (None: none)."""
        base = self.default_of(store_type)
        if base is None or token is None or token.allows_store(base.name):
            return base
        by_name = {s.name: s for s in self.stores_of(store_type)}
        return next((by_name[n] for n in token.stores if n in by_name), None)

    def store(self, name: str | None) -> StoreSettings:
        if not name:
            return self.default_store
        for s in self.stores:
            if s.name == name:
                return s
        raise KeyError(name)

    def stores_of(self, store_type: str | None) -> list[StoreSettings]:
        """The stores of ``store_type`` (every store for None), in config order."""
        return [s for s in self.stores if store_type is None or s.store_type == store_type]

    def default_of(self, store_type: str | None) -> StoreSettings | None:
        """The store a tool of ``store_type`` uses when the call names none: the default store when it
        is of that type, else the first store of that type (None: no store of that type)."""
        if store_type is None or (self.stores and self.default_store.store_type == store_type):
            return self.default_store if self.stores else None
        return next(iter(self.stores_of(store_type)), None)


HOST_SECTIONS = {"gateway", "http", "cache", "mutations", "audit", "bulk", "journal", "stores"}

# Environment variable -> (dotted key path, kind). Kind drives parsing and the message on error.
ENV_KEYS: dict[str, tuple[str, str]] = {
    "GATEWAY_CACHE": ("cache.backend", "str"),
    "GATEWAY_REDIS_URL": ("cache.redis_url", "str"),
    "GATEWAY_CACHE_PREFIX": ("cache.prefix", "str"),
    "GATEWAY_TOOL_NAMES": ("gateway.tool_names", "str"),
    "GATEWAY_READ_ONLY": ("gateway.read_only", "bool"),
    "GATEWAY_AUDIT_LOG": ("audit.path", "str"),
    "GATEWAY_HTTP_TOKEN": ("http.token", "secret"),
    "GATEWAY_OAUTH_ISSUER": ("http.oauth.issuer", "str"),
    "GATEWAY_OAUTH_RESOURCE": ("http.oauth.resource", "str"),
    "GATEWAY_LOG_LEVEL": ("gateway.log_level", "str"),
    "GATEWAY_TRACE_HOOKS": ("gateway.trace_hooks", "bool"),
    "GATEWAY_TOOLSETS": ("gateway.toolsets", "list"),
    "GATEWAY_JOURNAL": ("journal.backend", "str"),
    "GATEWAY_JOURNAL_PATH": ("journal.path", "str"),
    "GATEWAY_DISABLED_PLUGINS": ("gateway.disabled_plugins", "list"),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"environment variable {name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")


def _resolve_secrets(
    node: Any, where: str, source: str, env: Mapping[str, str], problems: list[str] | None = None
) -> Any:
    """Replace ``{"$env": "NAME"}`` tables by the variable's value (any field, secret or not).

    Every unset variable is added to ``problems`` (so one run names them all); without a list the
    first one raises."""
    if isinstance(node, dict):
        if set(node) == {"$env"}:
            var = node["$env"]
            if not isinstance(var, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
                problem = f"{source}: key {where}: $env expects an environment variable name"
            elif var not in env:
                problem = f"{source}: key {where}: environment variable {var} is not set"
            else:
                # a plain str: a Secret field wraps it on validation, any other field keeps it as text
                return str(env[var])
            if problems is None:
                raise ConfigError(problem)
            problems.append(problem)
            return ""
        return {
            k: _resolve_secrets(v, f"{where}.{k}" if where else k, source, env, problems)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve_secrets(v, f"{where}[{i}]", source, env, problems) for i, v in enumerate(node)]
    return node


def _set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *heads, leaf = dotted.split(".")
    node = doc
    for part in heads:
        node = node.setdefault(part, {})
    node[leaf] = value


def _where(source: str, key: str, origins: Mapping[str, str]) -> str:
    var = origins.get(key)
    return f"environment variable {var}" if var else f"{source}: key {key}"


def _apply_env(
    doc: dict[str, Any], env: Mapping[str, str], store_types: Mapping[str, type[StoreSettings]]
) -> dict[str, str]:
    """Apply the environment to ``doc``; return which key each variable set (for error messages).

    Each store type's ``ENV`` variables define (or override) that type's default store.
    """
    origins: dict[str, str] = {}
    for var, (path, kind) in ENV_KEYS.items():
        if var not in env:
            continue
        raw = env[var]
        value: Any = _parse_bool(var, raw) if kind == "bool" else raw
        if kind == "list":  # comma-separated: GATEWAY_TOOLSETS=orders,store
            value = [part.strip() for part in raw.split(",") if part.strip()]
        _set_path(doc, path, value)
        origins[path] = var
    # [http.oauth] from the variables alone: the one not set is the one to set
    oauth_env = {"http.oauth.issuer": "GATEWAY_OAUTH_ISSUER", "http.oauth.resource": "GATEWAY_OAUTH_RESOURCE"}
    set_in = doc.get("http", {}).get("oauth", {}) if isinstance(doc.get("http"), dict) else {}
    if any(key in origins for key in oauth_env) and isinstance(set_in, dict):
        for key, var in oauth_env.items():
            if key.rsplit(".", 1)[1] not in set_in:
                origins[key] = var
    for type_name, struct in store_types.items():
        if not any(env.get(var) for var in struct.ENV):
            continue
        stores: list[Any] = doc.setdefault("stores", [])
        mine = [
            i for i, s in enumerate(stores) if isinstance(s, dict) and entry_type(s, store_types) == type_name
        ]
        index = next((i for i in mine if stores[i].get("default")), mine[0] if mine else None)
        created = index is None
        if index is None:
            index = len(stores) if any(isinstance(s, dict) and s.get("default") for s in stores) else 0
            taken = {s.get("name") for s in stores if isinstance(s, dict)}
            entry = {"name": "default" if "default" not in taken else type_name, "default": index == 0}
            stores.insert(index, entry if len(store_types) < 2 else {**entry, "type": type_name})
        for var, field in struct.ENV.items():
            if env.get(var):
                stores[index][field] = env[var]
            # a store made from the variables alone: a missing field is a variable to set
            if env.get(var) or created:
                origins[f"stores[{index}].{field}"] = var
    return origins


def entry_type(entry: Mapping[str, Any], store_types: Mapping[str, type[StoreSettings]]) -> str | None:
    """The store type of a raw ``[[stores]]`` entry: its ``type``; without one, the only registered
    type, or else the one type whose fields cover the entry's keys (None: it can't be told)."""
    named = entry.get("type")
    if named is not None:
        return str(named)
    if len(store_types) == 1:
        return next(iter(store_types))
    keys = set(entry)
    fits = [t for t, struct in store_types.items() if keys <= set(struct.__struct_fields__)]
    return fits[0] if len(fits) == 1 else None


def _tagged(type_name: str, struct: type[StoreSettings]) -> type[StoreSettings]:
    """``struct`` as the member ``type = "<type_name>"`` of the tagged union of ``[[stores]]`` entries."""
    tagged: Any = msgspec.defstruct(
        struct.__name__,
        [],
        bases=(struct,),
        tag_field="type",
        tag=type_name,
        namespace={"STORE_TYPE": type_name, "__module__": struct.__module__, "__doc__": struct.__doc__},
        kw_only=True,
        forbid_unknown_fields=True,
    )
    return typing.cast(type[StoreSettings], tagged)


def _type_problems(
    doc: dict[str, Any], store_types: Mapping[str, type[StoreSettings]], source: str
) -> list[str]:
    """Give every ``[[stores]]`` entry its type (see :func:`entry_type`); one line per entry that has
    none or an unknown one."""
    stores = doc.get("stores")
    if not store_types or not isinstance(stores, list):
        return []
    from odmcp.arguments import closest

    installed = ", ".join(repr(t) for t in sorted(store_types))
    problems = []
    for i, entry in enumerate(stores):
        if not isinstance(entry, dict):
            continue
        found = entry_type(entry, store_types)
        if found is None:
            problems.append(
                f"{source}: key stores[{i}]: no type, and several store types are installed; "
                f"add type = one of {installed}"
            )
        elif found not in store_types:
            guess = closest(found, store_types)
            problems.append(
                f"{source}: key stores[{i}].type: unknown store type {found!r}"
                + (f"; did you mean {guess!r}?" if guess else "")
                + f" (installed: {installed})"
            )
        else:
            entry["type"] = found
    return problems


def _unknown_keys(node: Any, tp: Any, key: str, source: str) -> list[str]:
    """One line per key of ``node`` that ``tp`` (a Struct with ``forbid_unknown_fields``, or a list or
    dict of them) has no field for, with the closest field; so one run names every typo."""
    while typing.get_origin(tp) in (types.UnionType, typing.Union):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        # a tagged union (the [[stores]] entries): the member the entry's tag names
        tag = node.get("type") if isinstance(node, dict) else None
        tp = next(
            (m for m in members if getattr(m, "__struct_config__", None) and m.__struct_config__.tag == tag),
            members[0],
        )
    origin = typing.get_origin(tp)
    if origin is list and isinstance(node, list):
        (item,) = typing.get_args(tp) or (Any,)
        return [p for i, v in enumerate(node) for p in _unknown_keys(v, item, f"{key}[{i}]", source)]
    if origin is dict and isinstance(node, dict):
        value_type = (typing.get_args(tp) or (Any, Any))[1]
        return [p for k, v in node.items() for p in _unknown_keys(v, value_type, f"{key}.{k}", source)]
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct) and isinstance(node, dict)):
        return []
    from odmcp.arguments import closest

    cfg = tp.__struct_config__
    fields = set(tp.__struct_fields__) | ({cfg.tag_field} if cfg.tag_field else set())
    hints = typing.get_type_hints(tp)
    out = []
    for name, value in node.items():
        where = f"{key}.{name}" if key else str(name)
        if name in fields:
            out += _unknown_keys(value, hints.get(name), where, source)
        elif cfg.forbid_unknown_fields:
            guess = closest(str(name), fields)
            out.append(f"{source}: key {where}: unknown key" + (f"; did you mean {guess}?" if guess else ""))
    return out


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret:
        if isinstance(obj, str):
            return Secret(str(obj))
        raise msgspec.ValidationError(f"Expected `str`, got `{type(obj).__name__}`")
    raise NotImplementedError


def _allowed_values(root: type[Any], path: str) -> list[Any] | None:
    """The Literal choices of the field at ``path`` (``.gateway.tool_names``), for enum errors."""
    node: Any = root
    for part in [p for p in re.split(r"\.|\[\d+\]", path) if p]:
        hints = typing.get_type_hints(node) if isinstance(node, type) else {}
        node = hints.get(part)
        while typing.get_origin(node) in (list, types.UnionType, typing.Union):
            node = next(a for a in typing.get_args(node) if a is not type(None))
    if typing.get_origin(node) is typing.Literal:
        return list(typing.get_args(node))
    return None


def _friendly(
    err: msgspec.ValidationError,
    source: str,
    prefix: str = "",
    root: type[Any] | None = None,
    origins: Mapping[str, str] | None = None,
    stores: Mapping[str, Any] | None = None,
) -> ConfigError:
    text = str(err)
    m = re.search(r" - at `\$(.*)`$", text)
    path = m.group(1) if m else ""
    key = (prefix + path).lstrip(".") or "(top level)"
    key = re.sub(r"\.?\[(\d+)\]", r"[\1]", key)
    what = (text[: m.start()] if m else text).replace("`", "")
    if what.startswith("Invalid enum value") and root is not None:
        allowed = _allowed_values(root, path)
        if allowed:
            what += f"; expected one of {', '.join(repr(a) for a in allowed)}"
    origins = origins or {}
    missing = re.fullmatch(r"Object missing required field (\w+)", what)
    if missing and f"{key}.{missing.group(1)}" in origins:
        field = missing.group(1)
        var = origins[f"{key}.{field}"]
        return ConfigError(f"environment variable {var} is not set: {key} needs {field}; set {var}")
    entry = re.match(r"stores\[(\d+)\]", key)
    if entry and stores:  # name the entry's store type: its model decides what the entry may hold
        raw = stores.get("stores", [])[int(entry.group(1))]
        if isinstance(raw, dict) and raw.get("type"):
            what += f" (a {raw['type']!r} store)"
    return ConfigError(f"{_where(source, key, origins)}: {what[0].lower() + what[1:]}")


def validate_section(struct: type[T], raw: Any, source: str, section: str) -> T:
    """Validate one section (used for plugin sections too); errors name the file and the key."""
    try:
        return msgspec.convert(raw, struct, dec_hook=_dec_hook, str_keys=True)
    except msgspec.ValidationError as err:
        raise _friendly(err, source, section, struct) from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    plugin_sections: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read, merge and validate. ``overrides`` are dotted keys applied last (CLI flags use them).

    ``plugin_sections`` maps section names to their Struct; ``"stores"`` maps to the registered
    store types (``{type name: StoreSettings subclass}``, or one subclass). Every unknown key and every
    unset ``$env`` variable is reported at once, one line each, in one :class:`ConfigError`.
    """
    env = os.environ if env is None else env
    path = path or env.get("GATEWAY_CONFIG") or None
    doc: dict[str, Any] = {}
    source = "<defaults>"
    problems: list[str] = []
    if path:
        p = Path(path)
        source = str(p)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{source}: invalid TOML: {err}") from None
        doc = _resolve_secrets(doc, "", source, env, problems)
    sections = dict(plugin_sections or {})
    store_types = _store_types(sections.pop("stores", None))
    origins = _apply_env(doc, env, store_types)
    for dotted, value in (overrides or {}).items():
        _set_path(doc, dotted, value)
        # an override replaces what a variable set under it (e.g. --sandbox replaces the stores)
        origins = {k: v for k, v in origins.items() if not re.match(rf"{re.escape(dotted)}(\.|\[|$)", k)}

    plugin_raw = {k: doc.pop(k) for k in list(doc) if k not in HOST_SECTIONS}
    for name in sorted(set(plugin_raw) - set(sections)):
        from odmcp.arguments import closest

        known = sorted(HOST_SECTIONS | set(sections))
        guess = closest(name, known)
        problems.append(
            f"{source}: unknown section [{name}]; known sections: {', '.join(known)}"
            + (f"; did you mean [{guess}]?" if guess else "")
        )
    untyped = _type_problems(doc, store_types, source)
    problems += untyped
    tagged = {t: _tagged(t, struct) for t, struct in store_types.items()}
    entry: Any = StoreSettings
    if tagged:
        entry = typing.Union[tuple(tagged.values())] if len(tagged) > 1 else next(iter(tagged.values()))  # noqa: UP007
    problems += _unknown_keys({k: v for k, v in doc.items() if k != "stores"}, Config, "", source)
    if not untyped:  # an entry without a known type has no fields to check its keys against
        problems += _unknown_keys(doc.get("stores"), list[entry], "stores", source)
    for name, struct in sections.items():
        problems += _unknown_keys(plugin_raw.get(name, {}), struct, name, source)
    if problems:
        raise ConfigError("\n".join(problems))
    # the stores are validated with each entry's type (the host's fields and the store plugin's)
    stores_doc = {"stores": doc.pop("stores")} if "stores" in doc else {}
    stores_type: Any = msgspec.defstruct(
        "Stores", [("stores", list[entry], msgspec.field(default_factory=list))], kw_only=True
    )
    try:
        cfg = msgspec.convert(doc, Config, dec_hook=_dec_hook, str_keys=True)
        stores = msgspec.convert(stores_doc, stores_type, dec_hook=_dec_hook, str_keys=True).stores
    except msgspec.ValidationError as err:
        raise _friendly(err, source, root=Config, origins=origins, stores=stores_doc) from None
    plugins = {
        name: validate_section(struct, plugin_raw.get(name, {}), source, name)
        for name, struct in sections.items()
    }
    cfg = msgspec.structs.replace(
        cfg,
        stores=stores,
        plugins=plugins,
        source=source,
        origins=origins,
        store_env=[var for struct in store_types.values() for var in _required_env(struct)],
        store_env_groups=[_required_env(struct) for struct in store_types.values()],
        store_types=list(store_types),
    )
    journal_path = os.path.expanduser(cfg.journal.path) if cfg.journal.path else default_journal_path(env)
    cfg = msgspec.structs.replace(cfg, journal=msgspec.structs.replace(cfg.journal, path=journal_path))
    _check(cfg)
    return cfg


def _store_types(registered: Any) -> dict[str, type[StoreSettings]]:
    """The registered store types by name (``plugin_sections["stores"]``: a mapping or one class)."""
    if registered is None:
        return {}
    if isinstance(registered, Mapping):
        return dict(registered)
    struct: type[StoreSettings] = registered
    return {struct.STORE_TYPE or "store": struct}


def _required_env(store_type: type[StoreSettings]) -> list[str]:
    """The variables that must be set to define a store from the environment alone."""
    required = {f.name for f in msgspec.structs.fields(store_type) if f.required}
    return [var for var, field in store_type.ENV.items() if field in required]


def _check(cfg: Config) -> None:
    where = cfg.where
    names = [s.name for s in cfg.stores]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(
            f"{where('stores')}: store name {sorted(dupes)[0]!r} is used twice; names must be unique"
        )
    if sum(1 for s in cfg.stores if s.default) > 1:
        raise ConfigError(f"{where('stores')}: more than one store has default = true; mark exactly one")
    types_of: dict[str, set[str]] = {}
    for s in cfg.stores:
        types_of.setdefault(s.store_id, set()).add(s.store_type)
    for store_id, kinds in types_of.items():
        if len(kinds) > 1:  # cache keys, locks and the journal carry the store id
            raise ConfigError(
                f"{where('stores')}: store_id {store_id!r} is used by stores of types "
                f"{', '.join(sorted(kinds))}; cached data is keyed by store id: give them different ids"
            )
    for i, s in enumerate(cfg.stores):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", s.name):
            raise ConfigError(
                f"{where(f'stores[{i}].name')}: expected letters, digits, '_' or '-', got {s.name!r}"
            )
        if not s.store_id:
            raise ConfigError(f"{where(f'stores[{i}].store_id')}: must not be empty")
        for field, problem in s.problems():
            raise ConfigError(f"{where(f'stores[{i}].{field}')}: {problem}")
    m = cfg.mutations
    if m.attempts < 1:
        raise ConfigError(f"{where('mutations.attempts')}: expected an integer >= 1, got {m.attempts}")
    if not m.backoff or any(b < 0 for b in m.backoff):
        raise ConfigError(f"{where('mutations.backoff')}: expected a non-empty list of seconds >= 0")
    if m.lock_lease <= 0:
        raise ConfigError(f"{where('mutations.lock_lease')}: expected seconds > 0")
    c = cfg.cache
    if c.flight_lease <= 0:
        raise ConfigError(f"{where('cache.flight_lease')}: expected seconds > 0")
    if c.max_entries < 1:
        raise ConfigError(f"{where('cache.max_entries')}: expected an integer >= 1")
    if c.max_bytes < 1024:
        raise ConfigError(f"{where('cache.max_bytes')}: expected an integer >= 1024, got {c.max_bytes}")
    h = cfg.http
    for key, value in (("read_timeout", h.read_timeout), ("session_idle_timeout", h.session_idle_timeout)):
        if not 0 < value < 1e9:
            raise ConfigError(f"{where(f'http.{key}')}: expected seconds > 0, got {value}")
    for key, count in (
        ("max_concurrent_requests", h.max_concurrent_requests),
        ("max_anonymous_requests", h.max_anonymous_requests),
        ("max_sessions", h.max_sessions),
        ("max_sessions_per_token", h.max_sessions_per_token),
    ):
        if count < 1:
            raise ConfigError(f"{where(f'http.{key}')}: expected an integer >= 1, got {count}")
    if h.oauth is not None:
        _check_oauth(h.oauth, where)
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", c.prefix):
        raise ConfigError(f"{where('cache.prefix')}: expected 1-64 of letters, digits, '_.:-'")
    j = cfg.journal
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", j.prefix):
        raise ConfigError(f"{where('journal.prefix')}: expected 1-64 of letters, digits, '_.:-'")
    if not 0 < j.retention < 1e10:
        raise ConfigError(f"{where('journal.retention')}: expected seconds > 0, got {j.retention}")
    if j.max_entries < 1:
        raise ConfigError(f"{where('journal.max_entries')}: expected an integer >= 1, got {j.max_entries}")
    if j.max_bytes < 1024:
        raise ConfigError(f"{where('journal.max_bytes')}: expected an integer >= 1024, got {j.max_bytes}")
    for i, t in enumerate(cfg.http.tokens):
        if not t.token:
            raise ConfigError(f"{where(f'http.tokens[{i}].token')}: must not be empty")
        for granted in t.stores:
            if granted != "*" and granted not in names:
                raise ConfigError(
                    f"{where(f'http.tokens[{i}].stores')}: unknown store {granted!r}; known: {names}"
                )


def _check_oauth(o: OAuthSettings, where: Any) -> None:
    for key in ("issuer", "resource", "jwks_uri"):
        url = getattr(o, key)
        if url is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s?#]*", url):
            raise ConfigError(f"{where(f'http.oauth.{key}')}: expected an http(s) URL, got {url!r}")
    bad = [a for a in o.algorithms if a not in OAUTH_ALGORITHMS]
    if bad or not o.algorithms:
        raise ConfigError(
            f"{where('http.oauth.algorithms')}: {bad[0] if bad else 'an empty list'!r} is not allowed; "
            f"use asymmetric algorithms only: {', '.join(OAUTH_ALGORITHMS)}"
        )
    if not 0 <= o.leeway_s <= 600:
        raise ConfigError(f"{where('http.oauth.leeway_s')}: expected seconds from 0 to 600, got {o.leeway_s}")
    if o.jwks_refetch_s < 0:
        raise ConfigError(f"{where('http.oauth.jwks_refetch_s')}: expected seconds >= 0")
    sc = o.scopes
    if len({sc.read, sc.write}) < 2 or not all((sc.read, sc.write, sc.store_prefix)):
        raise ConfigError(
            f"{where('http.oauth.scopes')}: read, write and store_prefix must be set, read and write differ"
        )


#: the user info of ``scheme://user:password@host`` (also ``redis://:password@host``)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")


def _hide_password(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    # without a colon the one part may well be a password (``redis://s3cret@host``): hide it all
    return f"{match['scheme']}{user}:***@" if colon else f"{match['scheme']}***@"


def mask_url(text: str) -> str:
    """``redis://:s3cret@host:6379/0`` -> ``redis://:***@host:6379/0``; text without user info is kept."""
    return _URL_USERINFO.sub(_hide_password, text)


def masked(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data for ``config check``: every secret and every password in a
    URL (a Redis URL's, typically) is shown as ``***``."""

    def enc(obj: Any) -> Any:
        if isinstance(obj, Secret):
            return "***"
        return f"<{type(obj).__name__}>"  # a plugin's own type: never print what it might hold

    def clean(node: Any) -> Any:
        if isinstance(node, str):
            return mask_url(node)
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    out: dict[str, Any] = clean(msgspec.to_builtins(cfg, enc_hook=enc))
    return out
