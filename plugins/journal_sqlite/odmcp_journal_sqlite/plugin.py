"""Entry point ``journal_sqlite``: registers the embedded journal (one sqlite file) as ``"sqlite"``."""

from __future__ import annotations

from collections.abc import Callable

from odmcp.api import hookimpl
from odmcp_journal_sqlite.backend import SqliteJournal


@hookimpl
def gateway_register_journal_backends(register: Callable[..., None]) -> None:
    register("sqlite", SqliteJournal.from_settings)
