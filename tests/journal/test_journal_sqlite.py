"""What only the sqlite journal has: a file that survives ``kill -9``, shared by processes, refused clearly
when unusable, bounded as it writes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from odmcp.errors import ConfigError
from odmcp.journal import ChangeQuery, JobRecord, WriteRecord
from odmcp_journal_sqlite import backend as sqlite_backend
from odmcp_journal_sqlite.backend import SqliteJournal

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from odmcp.journal import JobRecord, WriteRecord
    from odmcp_journal_sqlite.backend import SqliteJournal

    async def main():
        j = SqliteJournal(sys.argv[1])
        await j.open()
        await j.put_job(JobRecord(key="job", fingerprint="fp", created=time.time()))
        for n in range(50):
            await j.put_write(WriteRecord(id=f"w{n}", call_id="c", job="job", time=time.time(), state="intent"))
            await j.put_write(WriteRecord(id=f"w{n}", call_id="c", job="job", time=time.time(), state="applied"))
        print("written", flush=True)
        await asyncio.sleep(60)  # killed here, the connection still open

    asyncio.run(main())
    """
)


async def test_every_acknowledged_put_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "written\n"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    j = SqliteJournal(path)
    await j.open()
    try:
        assert (await j.get_job("job")) is not None
        got = await j.query(ChangeQuery(job="job", limit=100))
        assert len(got) == 50 and {r.state for r in got} == {"applied"}
    finally:
        await j.close()


async def test_two_processes_share_one_file(tmp_path: Path) -> None:
    """Two connections (as two gateway processes would hold) write at once and read each other's records."""
    path = tmp_path / "journal.sqlite"
    a, b = SqliteJournal(path), SqliteJournal(path)
    await a.open()
    await b.open()
    try:
        now = time.time()

        async def put(j: SqliteJournal, name: str) -> None:
            for n in range(50):
                await j.put_write(WriteRecord(id=f"{name}{n}", call_id=name, time=now + n))
                await asyncio.sleep(0)

        await asyncio.gather(put(a, "a"), put(b, "b"))
        assert len(await a.query(ChangeQuery(call_id="b", limit=100))) == 50
        assert len(await b.query(ChangeQuery(call_id="a", limit=100))) == 50
    finally:
        await a.close()
        await b.close()


async def test_the_file_is_in_wal_mode_with_normal_sync(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / "j.sqlite")
    await j.open()
    try:
        assert j.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert j.db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        await j.close()


async def test_a_file_from_a_newer_gateway_is_refused_not_guessed_at(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 9")
    db.close()
    with pytest.raises(ConfigError, match=r"written by a newer gateway \(schema 9, this one knows 1\)"):
        await SqliteJournal(path, where="key journal.path").open()


async def test_another_programs_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(
        ConfigError, match=r"is a database of something else \(tables customers\), not a journal"
    ):
        await SqliteJournal(path).open()
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("customers",)]
    db.close()


async def test_a_file_that_is_not_a_database_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a journal\n" * 100)
    with pytest.raises(ConfigError) as info:
        await SqliteJournal(path, where="environment variable GATEWAY_JOURNAL_PATH").open()
    assert str(info.value) == (
        f"environment variable GATEWAY_JOURNAL_PATH: the journal file {str(path)!r} can't be used: "
        "file is not a database; set journal.path (GATEWAY_JOURNAL_PATH) to a writable file"
    )


async def test_problems_name_a_path_that_cannot_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    assert await SqliteJournal(tmp_path / "new" / "deeper" / "j.sqlite").problems() == []
    [problem] = await SqliteJournal(tmp_path / "dir").problems()
    assert "it is not a file" in problem


async def test_puts_prune_on_their_own_every_so_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "PRUNE_EVERY", 10)
    j = SqliteJournal(tmp_path / "j.sqlite", max_entries=5)
    await j.open()
    try:
        now = time.time()
        for n in range(9):
            await j.put_write(WriteRecord(id=f"w{n}", call_id="c", time=now + n))
        assert len(await j.query(ChangeQuery(limit=100))) == 9
        await j.put_job(JobRecord(key="k", fingerprint="f", created=now + 9))  # the 10th put prunes ...
        await j.settled()  # ... in a thread
        assert [r.id for r in await j.query(ChangeQuery(limit=100))] == ["w8", "w7", "w6", "w5"]
    finally:
        await j.close()
