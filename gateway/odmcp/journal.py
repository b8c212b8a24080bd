"""The durable journal: idempotency records of keyed calls, and one record per write (intent, then outcome).

A cache may forget; a journal may not. Promises that must survive a restart live here:

* a **job** per keyed call (``idempotency_key``), scoped per caller, store and tool: the fingerprint of
  its canonical arguments, whether it finished, and its result;
* a **write** per target of every write, recorded *before* the request is sent (``state="intent"``,
  with the witness the write route read under the lock) and again after (its outcome). A repeat after
  a crash finds targets with an intent and no outcome and reconciles them against their witness before
  deciding to send.

Backends are plugins (``gateway_register_journal_backends``), chosen by ``journal.backend``: ``sqlite``
(embedded default, a file in the user's state directory) or ``redis`` (shared by replicas).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from odmcp.errors import ConfigError

if TYPE_CHECKING:
    from odmcp.config import Config, JournalSettings

#: what became of one write. ``intent``: recorded before sending, no outcome yet (a crash, or in flight)
WriteState = Literal["intent", "applied", "already", "not_applied", "unknown", "failed", "dry_run"]


class JobRecord(msgspec.Struct, kw_only=True):
    """One keyed call: the same key with the same arguments returns ``result`` (even after a restart)."""

    #: digest of caller, store, tool and idempotency key
    key: str
    #: digest of the canonical arguments
    fingerprint: str
    status: Literal["running", "finished"] = "running"
    #: the call's result (plain JSON) once finished
    result: Any = None
    created: float = 0.0
    updated: float = 0.0


class WriteRecord(msgspec.Struct, kw_only=True):
    """One target of one write: its intent, then its outcome (same ``id``, recorded twice)."""

    #: change id (unique; a revert names it)
    id: str
    #: the tool call's id (:attr:`odmcp.tools.ToolCall.call_id`, unique per call; a revert of a bulk
    #: call without an idempotency key names it)
    call_id: str
    #: the keyed job it belongs to (``JobRecord.key``), or None
    job: str | None = None
    #: the target's name within its job (bulk report name; the object id for a single write)
    target: str = ""
    time: float = 0.0
    caller: str | None = None
    tool: str = ""
    store: str = ""
    kind: str = ""
    object_id: str = ""
    #: what the write does (``update``, ``add_item``, ``add_note``, ``delete``, ``move``, ``create``...)
    action: str = ""
    state: WriteState = "intent"
    #: what the snapshot (read under the lock) showed that decides whether this write is there
    witness: Any = None
    #: values of the changed fields before and after (never secrets)
    before: dict[str, Any] = msgspec.field(default_factory=dict)
    after: dict[str, Any] = msgspec.field(default_factory=dict)
    attempts: int = 0
    reconciled: bool = False
    #: the error when failed/unknown: ``{"code", "message", "retryable"}``
    error: dict[str, Any] | None = None
    #: anything else the store recorded (created ids, the deleted object)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


class ChangeQuery(msgspec.Struct, kw_only=True):
    """A filter over write records, newest first."""

    store: str | None = None
    object_id: str | None = None
    caller: str | None = None
    tool: str | None = None
    job: str | None = None
    call_id: str | None = None
    since: float | None = None
    states: list[str] | None = None
    limit: int = 50
    offset: int = 0

    def matches(self, rec: WriteRecord) -> bool:
        """Whether ``rec`` passes every filter (a backend that can't filter on its own uses this)."""
        for name in ("store", "object_id", "caller", "tool", "job", "call_id"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(rec, name) != wanted:
                return False
        if self.since is not None and rec.time < self.since:
            return False
        return self.states is None or rec.state in self.states


class JournalBackend(Protocol):
    """What a journal backend offers. Every method raises an ``Exception`` when storage fails; the
    host turns that into a clear error and never writes upstream without its intent recorded."""

    name: str

    async def open(self) -> None: ...

    async def get_job(self, key: str) -> JobRecord | None: ...

    async def put_job(self, job: JobRecord) -> None: ...

    async def put_write(self, rec: WriteRecord) -> None:
        """Insert or replace the record with ``rec.id``."""
        ...

    async def get_write(self, write_id: str) -> WriteRecord | None: ...

    async def query(self, q: ChangeQuery) -> list[WriteRecord]: ...

    async def prune(self, now: float) -> int:
        """Drop records older than the retention, and the oldest beyond the size bounds; how many."""
        ...

    async def problems(self) -> list[str]:
        """Warnings for ``config check`` (e.g. a Redis that may evict journal keys)."""
        ...

    async def close(self) -> None: ...


#: ``factory(settings, config)``: builds a backend (nothing opened yet; :meth:`JournalBackend.open` does)
JournalFactory = Callable[["JournalSettings", "Config"], JournalBackend]

_encoder = msgspec.json.Encoder()
_write_decoder = msgspec.json.Decoder(WriteRecord)
_job_decoder = msgspec.json.Decoder(JobRecord)


def encode(rec: WriteRecord | JobRecord) -> bytes:
    """The stored form of a record (msgspec JSON); its length is what ``journal.max_bytes`` counts."""
    return _encoder.encode(rec)


def decode_write(data: bytes | str) -> WriteRecord:
    return _write_decoder.decode(data)


def decode_job(data: bytes | str) -> JobRecord:
    return _job_decoder.decode(data)


def job_time(job: JobRecord) -> float:
    """When a job was last touched: retention and ordering count from here."""
    return job.updated or job.created


class JournalRegistry:
    """Journal backends registered by plugins (``gateway_register_journal_backends``); configuration
    (``journal.backend`` / ``GATEWAY_JOURNAL``) picks one by name."""

    def __init__(self) -> None:
        self.factories: dict[str, JournalFactory] = {}

    def register(self, name: str, factory: JournalFactory) -> None:
        if name in self.factories:
            raise ValueError(f"journal backend {name!r} registered twice")
        self.factories[name] = factory

    def check(self, cfg: Config) -> None:
        """Raise :class:`ConfigError` naming the registered backends when ``journal.backend`` is unknown."""
        name = cfg.journal.backend
        if name not in self.factories:
            raise ConfigError(
                f"{cfg.where('journal.backend')}: unknown journal backend {name!r}; "
                f"available: {', '.join(sorted(self.factories)) or '(none installed)'}"
            )

    def create(self, cfg: Config) -> JournalBackend:
        """The configured backend, not opened yet."""
        self.check(cfg)
        return self.factories[cfg.journal.backend](cfg.journal, cfg)
