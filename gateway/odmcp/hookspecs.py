"""Every hook the gateway calls. Each stub's docstring is its contract.

How awaitables travel (pluggy itself is synchronous):

* **firstresult hooks** (``gateway_fetch``, ``gateway_upload``, ``gateway_create``,
  ``gateway_delete``) are plain ``def`` functions. An impl decides *synchronously* whether it
  handles the call: it returns ``None`` to decline, or an awaitable that the host awaits. An
  ``async def`` impl of a firstresult hook is rejected at registration, because its coroutine
  would always "win" even when it resolves to ``None``.
* ``gateway_merge``, ``gateway_diff`` and ``gateway_reconcile`` are firstresult and fully
  synchronous (CPU only): they return their value.
* **fan-out hooks** (everything else) may return ``None``, a value, or an awaitable; the host
  awaits every awaitable, one impl at a time.

Order: every hook calls its impls in pluggy's order. ``tryfirst`` impls run first and ``trylast``
impls last; within each group the last registered runs first (the host's defaults are registered
first, then entry points by name, then plugins passed in code). The one exception is
``gateway_shutdown``, which runs in the reverse order, so the first plugin started is the last stopped.

Arguments are passed by keyword; an impl may accept any subset of them. ``gateway`` is the
:class:`odmcp.app.Gateway`: config, plugin state (``gateway.state``), workflow, metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from odmcp.app import Gateway
    from odmcp.cli import Commands
    from odmcp.refs import Ref
    from odmcp.tools import ToolCall

PROJECT = "mcp_gateway"
hookspec = pluggy.HookspecMarker(PROJECT)


# --- start-up --------------------------------------------------------------------------------


@hookspec
def gateway_register_config(register: Callable[..., None]) -> None:
    """Declare this plugin's config section: ``register(section, StructType)``.

    Called once at start-up, before the config file is validated. ``section`` is a top-level TOML
    table (for example ``"orderdesk"``); ``StructType`` is a ``msgspec.Struct`` subclass that
    validates it. The validated instance is available as ``gateway.config.section(section)``.

    A store plugin also registers its store type, what a ``[[stores]]`` entry of that type holds:
    ``register("stores", Sub)`` with ``Sub`` a subclass of :class:`odmcp.config.StoreSettings` adding
    its own fields (credentials, an endpoint). ``Sub.STORE_TYPE`` names the type (an entry's
    ``type = "..."``; the plugin's name when unset); ``Sub.ENV`` maps environment variables to fields of
    that type's default store; ``Sub.problems()`` reports what is wrong with those fields at start-up
    and ``Sub.warnings()`` what ``config check`` should flag. Several store types may be installed;
    each entry is validated against its own type's model. The tools of a plugin that registered one
    store type belong to it (their ``store`` argument names only stores of that type).

    Two plugins registering one section or one store type stop start-up with a
    :class:`odmcp.errors.PluginClash` naming both and how to disable one.
    """


@hookspec
def gateway_register_cache_backends(register: Callable[..., None]) -> None:
    """Register cache backends: ``register(name, factory)``.

    ``factory(settings: gateway.config.CacheSettings) -> gateway.cache.CacheBackend``. The
    configuration (``cache.backend`` / ``GATEWAY_CACHE``) picks one backend by name; an unknown
    name fails at start-up and lists the registered names. Registering a name twice is an error.
    """


@hookspec
def gateway_register_journal_backends(register: Callable[..., None]) -> None:
    """Register journal backends: ``register(name, factory)``.

    ``factory(settings: gateway.config.JournalSettings, config: gateway.config.Config) ->
    gateway.journal.JournalBackend`` builds the backend without opening it; the host calls its
    ``open()`` at start-up and ``close()`` at shutdown. The configuration (``journal.backend`` /
    ``GATEWAY_JOURNAL``) picks one backend by name; an unknown name fails at start-up and lists the
    registered names. Registering a name twice is an error. Unlike a cache, a journal must not
    forget: a record it accepted is kept until ``prune`` drops it (retention and size bounds).
    """


@hookspec
def gateway_register_reverts(register: Callable[..., None]) -> None:
    """Declare how to undo this plugin's changes: ``register(kind, action, builder)``.

    ``kind`` and ``action`` are those a :class:`~odmcp.route.WriteOp` journals (``order``,
    ``update``). ``builder(record, gateway, force)`` gets the journaled
    :class:`~odmcp.journal.WriteRecord` and returns a :class:`~odmcp.changes.RevertStep`: a ``WriteOp``
    that puts the object back (planned from a snapshot inside the lock; it restores only what is still
    as the change left it unless ``force``, and lists the rest in its ``conflicts``), or the reason the
    change can't be undone. ``changes_list`` shows a change without a builder as not revertible.
    """


@hookspec
def gateway_register_tools(register: Callable[..., None], gateway: Gateway) -> None:
    """Register MCP tools: ``register(fn, name=..., ...)`` (see :class:`odmcp.tools.ToolRegistry`).

    ``name`` is the canonical dotted name (``orders.get``); the wire name is derived from the
    configured style. ``fn`` is an ``async def`` whose typed parameters become the input schema and
    whose return annotation becomes the output schema. It raises :class:`odmcp.errors.GatewayError`
    to report a failure. Called once per server build, impl by impl in pluggy's order.
    """


@hookspec
def gateway_instructions(gateway: Gateway) -> str | None:
    """A paragraph for the MCP server's ``instructions`` (what the model reads before any tool).

    Return a short text saying what this plugin's tools are for and how to use them safely, or
    ``None`` (e.g. when ``gateway.serves_type(...)`` says none of its tools is served). Store-specific
    wording (which tool lists the stores, the upstream's limits) belongs here: the host's paragraph
    names no tool. Fan-out: the paragraphs are joined in pluggy's order (``tryfirst`` first, ``trylast`` last,
    otherwise the last registered first), then the host's own paragraph (the ``store`` argument and
    the error codes) follows. Called once per server build.
    """


@hookspec
def gateway_register_commands(cli: Commands) -> None:
    """Add commands and options to the ``mcp-gateway`` command line (llm's ``register_commands``).

    Called once when ``mcp-gateway`` starts, before it parses its arguments; never for a gateway
    built in code. ``cli`` is a :class:`odmcp.cli.Commands`:

    * ``cli.add_command(name, run, help=..., arguments=None)`` adds a subcommand. ``arguments(parser)``
      declares its arguments on an ``argparse.ArgumentParser``; ``run(args)`` gets the parsed
      ``argparse.Namespace`` and returns the exit status (or an awaitable of it).
    * ``cli.add_gateway_option(flag, enter, help=...)`` adds a switch to the commands that build a
      gateway (``serve``, ``tools``, ``call``). When it is given, ``enter(args)`` is entered around the
      command: an async context manager yielding config overrides (dotted keys) for that gateway.

    Raise :class:`odmcp.cli.CliError` for a user mistake: it is printed as one line, exit status 2.
    """


@hookspec
def gateway_register_routes(register: Callable[..., None], gateway: Gateway) -> None:
    """Add HTTP routes: ``register(path, handler, methods=["POST"], public=False)``.

    ``handler`` is a Starlette endpoint ``async (request) -> Response``. Routes are behind the bearer
    token unless ``public=True`` (for callers that authenticate themselves, such as signed webhooks).
    Not called for stdio.
    """


@hookspec
def gateway_startup(gateway: Gateway) -> Awaitable[None] | None:
    """Open resources (HTTP sessions, pools) once the config is validated and the cache is chosen.

    May return an awaitable. The impls run one at a time in pluggy's order (``tryfirst`` first,
    ``trylast`` last, otherwise the last registered first), each awaited before the next is called
    and all before the server accepts calls. Called once per server lifespan.
    """


@hookspec
def gateway_shutdown(gateway: Gateway) -> Awaitable[None] | None:
    """Close what ``gateway_startup`` opened. May return an awaitable. Errors are logged, not raised.

    The impls run one at a time in the reverse of ``gateway_startup``'s order (``trylast`` first,
    ``tryfirst`` last, otherwise the first registered first): the last plugin started stops first.
    """


# --- the object workflow: fetch, merge, upload, invalidate -----------------------------------


@hookspec(firstresult=True)
def gateway_fetch(ref: Ref, gateway: Gateway, reserve: int) -> Awaitable[dict[str, Any]] | None:
    """Get the full current object named by ``ref`` from its source of truth (never from a cache).

    ``reserve`` is how many rate-limit tokens the request must leave for interactive calls (a bulk
    job's reads and writes pass its reserve; 0 otherwise). The write route reads its snapshots and
    re-reads through this hook, inside the object's lock.

    Return ``None`` to decline (this plugin does not serve ``ref.kind``/``ref.store``) or an
    awaitable resolving to the complete object as a plain dict, with every field the upstream sent.
    The awaitable raises :class:`odmcp.errors.NotFound` when the object does not exist.
    """


@hookspec(firstresult=True)
def gateway_merge(
    ref: Ref, current: dict[str, Any], changes: dict[str, Any], gateway: Gateway
) -> dict[str, Any] | None:
    """Apply partial ``changes`` to the full object ``current`` and return the new full object.

    Synchronous and side-effect free: never mutate ``current`` or ``changes``. Return ``None`` to
    decline (a store plugin declines refs of other store types: ``gateway.config.stores_of(type)``).
    The host's default (``trylast``) is a shallow merge where an explicit ``None`` removes a field.
    Raise :class:`odmcp.errors.ValidationFailed` for changes that can never apply.
    """


@hookspec(firstresult=True)
def gateway_diff(
    ref: Ref, before: dict[str, Any], after: dict[str, Any], gateway: Gateway
) -> list[dict[str, Any]] | None:
    """Field-level changes from ``before`` to ``after``: ``[{"path", "before", "after"}]``, sorted by path.

    Synchronous. Return ``None`` to decline (e.g. a ref of another store type). An empty list means
    "nothing to upload": the workflow then skips the upload. Used for dry runs and for the audit log's
    ``changed_fields``. The host's default (``trylast``) compares every leaf; store plugins leave out
    fields the upload never sends.
    """


@hookspec(firstresult=True)
def gateway_upload(
    ref: Ref, obj: dict[str, Any], fetched: dict[str, Any], gateway: Gateway, reserve: int
) -> Awaitable[dict[str, Any]] | None:
    """Store the full object ``obj`` (the merge result); ``fetched`` is the snapshot it was merged into.

    Send it once: never repeat a request whose answer was unclear; raise
    :class:`odmcp.errors.OutcomeUnknown` instead (``answered=True`` after a 5xx), and the write route
    re-reads and reconciles. ``reserve`` as for ``gateway_fetch``.

    Return ``None`` to decline, or an awaitable resolving to the stored object as the upstream now
    has it. Raise :class:`odmcp.errors.Conflict` when the upstream reports that ``fetched`` is
    stale (a 409 or a failed precondition); the host then fetches, merges and uploads again.
    """


@hookspec(firstresult=True)
def gateway_reconcile(
    ref: Ref, before: dict[str, Any], intended: dict[str, Any], current: dict[str, Any], gateway: Gateway
) -> str | None:
    """Decide from a fresh read whether an upload whose outcome was unclear was applied.

    Called after ``gateway_upload`` raised :class:`odmcp.errors.OutcomeUnknown` (a timeout, a dropped
    connection or a 5xx after the body was sent). ``before`` is what was fetched, ``intended`` the
    merged object that was uploaded, ``current`` a fresh ``gateway_fetch``; ``before`` was read inside
    the object's lock, so what changed since is this upload or a writer outside the gateway.
    Synchronous. Return ``"applied"`` (current shows the change), ``"already"`` (current shows the
    intended values but also another writer's change, so it can't be told whether this upload set
    them), ``"not_applied"`` (current shows none of it), ``"unknown"`` (part of it, or something
    else changed the same fields), or ``None`` to decline.
    The host's default (``trylast``) compares ``gateway_diff`` results field by field; store plugins
    override it where an upload creates things the diff can't match (e.g. new list entries that get
    an id upstream). Never guess "not_applied": the host may then upload again.
    """


@hookspec
def gateway_invalidate(ref: Ref, lists: bool, gateway: Gateway) -> Awaitable[None] | None:
    """Drop cached data after ``ref`` changed. ``lists`` is True when list results may have changed too.

    Fan-out: every impl runs, one after another in pluggy's order (``tryfirst`` first, ``trylast``
    last, otherwise the last registered first; each awaitable is awaited before the next impl is
    called); a failing impl is logged and never fails the write it follows.
    Called after every write attempt made through the gateway whose outcome is not a clean refusal
    (success, 5xx, timeout, dropped connection), and for changes announced from outside (webhooks).
    """


@hookspec(firstresult=True)
def gateway_create(
    ref: Ref, body: dict[str, Any], gateway: Gateway, reserve: int
) -> Awaitable[dict[str, Any]] | None:
    """Create a new object of ``ref.kind`` in ``ref.store`` (``ref.id`` is empty) from ``body``.

    Return ``None`` to decline, or an awaitable resolving to the created object. The impl must not
    create a duplicate when it retries after an ambiguous failure. (Store plugins that can find a new
    object by a natural key declare their own create operation for the write route instead.)
    """


@hookspec(firstresult=True)
def gateway_delete(ref: Ref, gateway: Gateway, reserve: int) -> Awaitable[Any] | None:
    """Delete the object named by ``ref``. Return ``None`` to decline, or an awaitable (result ignored).

    Send it once (an unclear answer raises :class:`odmcp.errors.OutcomeUnknown`; the write route
    re-reads: gone means deleted). The awaitable raises :class:`odmcp.errors.NotFound` when the object
    does not exist.
    """


# --- policy around every tool call -----------------------------------------------------------


@hookspec
def gateway_tool_pre_invoke(call: ToolCall, gateway: Gateway) -> Awaitable[None] | None:
    """Called before every tool call, after read-only checks. Raise a GatewayError to refuse it.

    ``call`` carries the canonical tool name, the arguments, the principal and the request id.
    May return an awaitable. The impls run one at a time in pluggy's order (``tryfirst`` first,
    ``trylast`` last, otherwise the last registered first), and the first refusal stops the chain.
    A refusal is audited and reaches the client as an ``isError`` result with the error's code; the
    tool does not run.
    """


@hookspec
def gateway_tool_post_invoke(
    call: ToolCall, outcome: str, error: Exception | None, elapsed_ms: float, gateway: Gateway
) -> Awaitable[None] | None:
    """Called after every tool call, including refused and failed ones. For metrics and recording.

    ``outcome`` is ``"ok"``, ``"error"`` or ``"denied"``; ``error`` is the GatewayError (or None).
    May return an awaitable. The impls run one at a time in pluggy's order, so the host's audit impl
    (``tryfirst``) comes first. Exceptions raised here are logged, never change the result and never
    skip the other impls.
    """
