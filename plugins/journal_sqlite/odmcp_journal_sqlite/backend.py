"""The embedded journal: one sqlite file (stdlib ``sqlite3``), the default for a desktop gateway.

* **Durable across restarts and crashes.** WAL mode with ``synchronous=NORMAL``: every put is its own
  transaction, committed to the WAL before the call returns, so a ``kill -9`` loses nothing; a power
  loss may lose the last commits before a checkpoint (sqlite's documented trade-off for NORMAL).
* **Puts on the event loop, upkeep in a thread.** A put is one small ``INSERT ... ON CONFLICT``
  (tens of µs, see ``bench/bench_journal.py``), cheaper than a hop to a thread. What takes
  milliseconds runs on a second connection in a worker thread: the WAL checkpoint (its fsync; the
  loop's connection never checkpoints by itself) every :data:`CHECKPOINT_EVERY` puts, and pruning,
  which deletes in short transactions of :data:`PRUNE_BATCH` rows so a put waits for one at most.
  Several processes may share the file: WAL lets readers run beside the one writer, and a writer
  waits up to :data:`BUSY_TIMEOUT` for another's commit.
* **Queryable.** The record is stored as msgspec JSON, next to indexed columns for every
  :class:`~odmcp.journal.ChangeQuery` filter; ``put_write`` is an upsert by id.
* **Bounded.** ``prune(now)`` drops records older than ``retention``, then the oldest beyond
  ``max_entries`` (writes and jobs together) and ``max_bytes`` (their JSON); it also runs by itself
  every :data:`PRUNE_EVERY` puts.
"""

from __future__ import annotations

import asyncio
import logging
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
#: puts between two prunes the journal runs by itself (in a thread)
PRUNE_EVERY = 500
#: puts between two WAL checkpoints (in a thread; about 1 MB of WAL at the bench's record size)
CHECKPOINT_EVERY = 200
#: WAL frames after which a checkpoint also waits for the writer and rewinds the WAL: only a constant
#: stream of puts, with no pause for a checkpoint to catch up, grows it that far (~64 MiB)
WAL_RESTART_FRAMES = 16_384
#: rows one pruning transaction deletes (a put waits for one such transaction at most)
PRUNE_BATCH = 100

log = logging.getLogger("odmcp_journal_sqlite")

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

# pruning: (table, id, time) of the records older than the cutoff; the totals of the others; the others
# oldest first (ties by id, as queries order them) with their sizes; deleting one if its time is unchanged
_OLD = """
SELECT 'w', id, time FROM writes WHERE time < ?1 UNION ALL SELECT 'j', key, time FROM jobs WHERE time < ?1
"""
_TOTALS = """
SELECT (SELECT count(*) FROM writes WHERE time >= ?1) + (SELECT count(*) FROM jobs WHERE time >= ?1),
       (SELECT total(size) FROM writes WHERE time >= ?1) + (SELECT total(size) FROM jobs WHERE time >= ?1)
"""
_OLDEST = """
SELECT 'w', id, time, size FROM writes WHERE time >= ?1
UNION ALL SELECT 'j', key, time, size FROM jobs WHERE time >= ?1 ORDER BY 3, 2
"""
_DELETE = {
    "w": "DELETE FROM writes WHERE id = ? AND time = ?",
    "j": "DELETE FROM jobs WHERE key = ? AND time = ?",
}

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
        #: the upkeep connection (checkpoints, pruning), used by one worker thread at a time
        self._aux: sqlite3.Connection | None = None
        self._aux_lock = asyncio.Lock()
        self._upkeep: asyncio.Task[None] | None = None
        self._puts = 0
        #: a prune fell due while an upkeep was still running: the next upkeep prunes
        self._prune_due = False

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
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 and tables - {"writes", "jobs"}:
                raise ConfigError(
                    f"{self.where}: {str(self.path)!r} is a database of something else (tables "
                    f"{', '.join(sorted(tables)[:3])}), not a journal; set journal.path to a file of its own"
                )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in a thread (_upkeep_sync)
            db.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")  # a rewound WAL shrinks to this
            if version < SCHEMA_VERSION:  # a new file: the schema and its version in one transaction
                db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            aux = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            aux.execute("PRAGMA synchronous=NORMAL")
        except ConfigError:
            db.close()
            raise
        except sqlite3.Error as err:  # not a database, read-only, disk full, locked for too long
            db.close()
            raise self._unusable(err) from None
        self._db, self._aux = db, aux

    async def close(self) -> None:
        if self._upkeep is not None:
            await asyncio.wait({self._upkeep})
        async with self._aux_lock:
            aux, self._aux = self._aux, None
            if aux is not None:
                aux.close()
        db, self._db = self._db, None
        if db is not None:
            db.close()  # the last connection to close checkpoints the WAL into the file

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
        self._after_put()

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
        self._after_put()

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

    def _after_put(self) -> None:
        """Every so many puts, start a checkpoint (and a prune) in a thread, unless one still runs."""
        self._puts += 1
        self._prune_due = self._prune_due or self._puts % PRUNE_EVERY == 0
        due = self._prune_due or self._puts % CHECKPOINT_EVERY == 0
        if due and (self._upkeep is None or self._upkeep.done()):
            prune, self._prune_due = self._prune_due, False
            self._upkeep = asyncio.get_running_loop().create_task(self._run_upkeep(prune, time.time()))

    async def _run_upkeep(self, prune: bool, now: float) -> None:
        try:
            async with self._aux_lock:
                if self._aux is not None:
                    await asyncio.to_thread(self._upkeep_sync, self._aux, prune, now)
        except Exception as err:  # a put stays recorded; the next upkeep tries again
            log.warning("journal upkeep of %s failed: %s", self.path, err)

    def _upkeep_sync(self, db: sqlite3.Connection, prune: bool, now: float) -> None:
        if prune:
            self._prune_sync(db, now)
        _busy, frames, _done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # waits for nobody
        if frames > WAL_RESTART_FRAMES:
            db.execute("PRAGMA wal_checkpoint(RESTART)")  # puts wait for it (busy timeout), this once

    async def settled(self) -> None:
        """Wait for the checkpoint or prune running in the background, if any (for tests and benches)."""
        if self._upkeep is not None:
            await asyncio.wait({self._upkeep})

    async def prune(self, now: float) -> int:
        """Drop records older than the retention, and the oldest beyond the size bounds; how many."""
        async with self._aux_lock:
            if self._aux is None:
                raise RuntimeError("the sqlite journal is not open")
            return await asyncio.to_thread(self._prune_sync, self._aux, now)

    def _prune_sync(self, db: sqlite3.Connection, now: float) -> int:
        """Runs in a worker thread: finds what goes by reading (no lock), then deletes in short
        transactions. A record upserted meanwhile with a new time is not the one that was found: kept."""
        cutoff = now - self.retention
        doomed = db.execute(_OLD, (cutoff,)).fetchall()
        count, size = db.execute(_TOTALS, (cutoff,)).fetchone()
        extra, excess = count - self.max_entries, size - self.max_bytes
        if extra > 0 or excess > 0:
            oldest = db.execute(_OLDEST, (cutoff,))
            for table, ident, at, nbytes in oldest:
                if extra <= 0 and excess <= 0:
                    break
                doomed.append((table, ident, at))
                extra, excess = extra - 1, excess - nbytes
            oldest.close()
        dropped = 0
        for start in range(0, len(doomed), PRUNE_BATCH):
            db.execute("BEGIN IMMEDIATE")
            try:
                for table, ident, at in doomed[start : start + PRUNE_BATCH]:
                    dropped += db.execute(_DELETE[table], (ident, at)).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return dropped

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
