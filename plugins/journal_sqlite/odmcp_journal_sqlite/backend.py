"""The embedded journal: one sqlite file (stdlib ``sqlite3``), the default for a desktop gateway.

* **Durable across restarts and crashes.** WAL mode with ``synchronous=NORMAL``: every put is its own
  transaction, committed to the WAL before the call returns, so a ``kill -9`` loses nothing; a power
  loss may lose the last commits before a checkpoint (sqlite's documented trade-off for NORMAL).
* **On the event loop.** A put is one small ``INSERT ... ON CONFLICT`` (tens of µs, see
  ``bench/bench_journal.py``), cheaper than a hop to a thread. Several processes may share the file:
  WAL lets readers run beside the one writer, and a writer waits up to :data:`BUSY_TIMEOUT` for
  another's commit.
* **Queryable.** The record is stored as msgspec JSON, next to indexed columns for every
  :class:`~odmcp.journal.ChangeQuery` filter; ``put_write`` is an upsert by id.
* **Bounded.** ``prune(now)`` drops records older than ``retention``, then the oldest beyond
  ``max_entries`` (writes and jobs together) and ``max_bytes`` (their JSON); it also runs every
  :data:`PRUNE_EVERY` puts.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odmcp.api import (
    ChangeQuery,
    ConfigError,
    JobRecord,
    WriteRecord,
    decode_job,
    decode_write,
    encode,
    job_time,
)

if TYPE_CHECKING:
    from odmcp.api import Config, JournalSettings

#: the schema this code writes (``PRAGMA user_version``); a newer file is refused, not guessed at
SCHEMA_VERSION = 1
#: seconds a writer waits for another process's transaction before the put fails
BUSY_TIMEOUT = 5.0
#: puts between two opportunistic prunes
PRUNE_EVERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    id TEXT NOT NULL PRIMARY KEY,
    time REAL NOT NULL,
    store TEXT NOT NULL,
    object_id TEXT NOT NULL,
    caller TEXT,
    tool TEXT NOT NULL,
    job TEXT,
    call_id TEXT NOT NULL,
    state TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS writes_time ON writes (time, id);
CREATE INDEX IF NOT EXISTS writes_store ON writes (store, time);
CREATE INDEX IF NOT EXISTS writes_object ON writes (object_id, time);
CREATE INDEX IF NOT EXISTS writes_caller ON writes (caller, time);
CREATE INDEX IF NOT EXISTS writes_tool ON writes (tool, time);
CREATE INDEX IF NOT EXISTS writes_job ON writes (job, time);
CREATE INDEX IF NOT EXISTS writes_call ON writes (call_id, time);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT NOT NULL PRIMARY KEY,
    time REAL NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_time ON jobs (time);
"""

_PUT_WRITE = """
INSERT INTO writes (id, time, store, object_id, caller, tool, job, call_id, state, size, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    time = excluded.time, store = excluded.store, object_id = excluded.object_id,
    caller = excluded.caller, tool = excluded.tool, job = excluded.job, call_id = excluded.call_id,
    state = excluded.state, size = excluded.size, data = excluded.data
"""

_PUT_JOB = """
INSERT INTO jobs (key, time, size, data) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET time = excluded.time, size = excluded.size, data = excluded.data
"""

#: the filters that are columns, in the order they are checked
_COLUMNS = ("store", "object_id", "caller", "tool", "job", "call_id")


class SqliteJournal:
    """A journal in one sqlite file; see the module docstring."""

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: float = 7 * 86_400.0,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        where: str = "journal.path",
    ) -> None:
        self.path = Path(path)
        self.retention = retention
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: how error messages name the setting (``GATEWAY_JOURNAL_PATH`` or the file and key)
        self.where = where
        self._db: sqlite3.Connection | None = None
        self._puts = 0

    @classmethod
    def from_settings(cls, settings: JournalSettings, config: Config) -> SqliteJournal:
        return cls(
            settings.path,
            retention=settings.retention,
            max_entries=settings.max_entries,
            max_bytes=settings.max_bytes,
            where=config.where("journal.path"),
        )

    # --- lifecycle --------------------------------------------------------------------------------

    def _unusable(self, err: BaseException) -> ConfigError:
        reason = getattr(err, "strerror", None) or str(err)
        if isinstance(err, FileExistsError):  # mkdir met a file where a directory must be
            reason = f"{err.filename!r} is not a directory"
        return ConfigError(
            f"{self.where}: the journal file {str(self.path)!r} can't be used: {reason}; "
            "set journal.path (GATEWAY_JOURNAL_PATH) to a writable file"
        )

    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise self._unusable(err) from None
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.where}: the journal file {str(self.path)!r} was written by a newer gateway "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade, or use another file"
                )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except ConfigError:
            db.close()
            raise
        except sqlite3.Error as err:  # not a database, read-only, disk full, locked for too long
            db.close()
            raise self._unusable(err) from None
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the sqlite journal is not open")
        return self._db

    # --- records ----------------------------------------------------------------------------------

    async def get_job(self, key: str) -> JobRecord | None:
        row = self.db.execute("SELECT data FROM jobs WHERE key = ?", (key,)).fetchone()
        return decode_job(row[0]) if row else None

    async def put_job(self, job: JobRecord) -> None:
        data = encode(job)
        self.db.execute(_PUT_JOB, (job.key, job_time(job), len(data), data))
        await self._maybe_prune()

    async def put_write(self, rec: WriteRecord) -> None:
        """Insert or replace the record with ``rec.id``."""
        data = encode(rec)
        self.db.execute(
            _PUT_WRITE,
            (
                rec.id,
                rec.time,
                rec.store,
                rec.object_id,
                rec.caller,
                rec.tool,
                rec.job,
                rec.call_id,
                rec.state,
                len(data),
                data,
            ),
        )
        await self._maybe_prune()

    async def get_write(self, write_id: str) -> WriteRecord | None:
        row = self.db.execute("SELECT data FROM writes WHERE id = ?", (write_id,)).fetchone()
        return decode_write(row[0]) if row else None

    async def query(self, q: ChangeQuery) -> list[WriteRecord]:
        where: list[str] = []
        params: list[Any] = []
        for column in _COLUMNS:
            value = getattr(q, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if q.since is not None:
            where.append("time >= ?")
            params.append(q.since)
        if q.states is not None:
            where.append(f"state IN ({', '.join('?' * len(q.states))})" if q.states else "0")
            params.extend(q.states)
        sql = "SELECT data FROM writes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, id DESC LIMIT ? OFFSET ?"
        params += [max(q.limit, 0), max(q.offset, 0)]
        return [decode_write(row[0]) for row in self.db.execute(sql, params)]

    # --- bounds -----------------------------------------------------------------------------------

    async def _maybe_prune(self) -> None:
        self._puts += 1
        if self._puts % PRUNE_EVERY == 0:
            await self.prune(time.time())

    async def prune(self, now: float) -> int:
        """Drop records older than the retention, and the oldest beyond the size bounds; how many."""
        db = self.db
        cutoff = now - self.retention
        with db:  # one transaction: a reader sees the journal before or after, never half pruned
            db.execute("BEGIN IMMEDIATE")
            dropped = db.execute("DELETE FROM writes WHERE time < ?", (cutoff,)).rowcount
            dropped += db.execute("DELETE FROM jobs WHERE time < ?", (cutoff,)).rowcount
            count, size = db.execute(
                "SELECT (SELECT count(*) FROM writes) + (SELECT count(*) FROM jobs),"
                " (SELECT total(size) FROM writes) + (SELECT total(size) FROM jobs)"
            ).fetchone()
            extra, excess = count - self.max_entries, size - self.max_bytes
            if extra > 0 or excess > 0:
                oldest = db.execute(
                    "SELECT 'w', id, time, size FROM writes UNION ALL SELECT 'j', key, time, size FROM jobs"
                    " ORDER BY time, 2"
                )
                doomed: dict[str, list[tuple[str]]] = {"w": [], "j": []}
                for kind, ident, _time, nbytes in oldest:
                    if extra <= 0 and excess <= 0:
                        break
                    doomed[kind].append((ident,))
                    extra, excess = extra - 1, excess - nbytes
                oldest.close()
                db.executemany("DELETE FROM writes WHERE id = ?", doomed["w"])
                db.executemany("DELETE FROM jobs WHERE key = ?", doomed["j"])
                dropped += len(doomed["w"]) + len(doomed["j"])
        return int(dropped)

    async def problems(self) -> list[str]:
        """Warnings for ``config check``: a journal file that can't be created or written."""
        target = self.path
        while not target.exists() and target != target.parent:
            target = target.parent  # the first part that exists: open() creates the directories below it
        if target != self.path and not target.is_dir():
            why = f"{str(target)!r} is not a directory"
        elif target == self.path and not target.is_file():
            why = "it is not a file"
        elif not os.access(target, os.W_OK):
            why = f"{str(target)!r} is not writable"
        else:
            return []
        return [
            f"{self.where}: the journal file {str(self.path)!r} can't be used ({why}); "
            "set journal.path (GATEWAY_JOURNAL_PATH) to a writable file"
        ]
