"""``[journal]``: defaults, environment, errors; the gateway opens the chosen backend; ``config check`` warns."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from odmcp.app import Gateway
from odmcp.cli import main
from odmcp.config import load_config
from odmcp.errors import ConfigError
from odmcp.journal import JobRecord
from odmcp.testing import delete_redis_prefix

STORE = {"stores": [{"name": "main", "store_id": "1001", "api_key": "k"}]}


def test_defaults_put_the_sqlite_file_in_the_state_directory(tmp_path: Path) -> None:
    cfg = load_config(None, {"XDG_STATE_HOME": str(tmp_path)})
    j = cfg.journal
    assert (j.backend, j.prefix, j.redis_url) == ("sqlite", "mcpgw", "")
    assert (j.retention, j.max_entries, j.max_bytes) == (7 * 86_400.0, 100_000, 64 * 1024 * 1024)
    assert j.path == str(tmp_path / "mcp-gateway" / "journal.sqlite")


def test_without_xdg_state_home_the_file_is_under_local_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    for env in ({}, {"XDG_STATE_HOME": "relative/dir"}):  # a relative value is ignored (XDG spec)
        assert load_config(None, env).journal.path == "/home/someone/.local/state/mcp-gateway/journal.sqlite"


def test_environment_and_file_set_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "gw.toml"
    path.write_text(
        '[journal]\nbackend = "redis"\npath = "~/j.sqlite"\nredis_url = "redis://10.0.0.5:6379/2"\n'
        'prefix = "fleet-a"\nretention = 3600\nmax_entries = 500\nmax_bytes = 2048\n'
    )
    j = load_config(str(path), {}).journal
    assert (j.backend, j.path, j.redis_url, j.prefix) == (
        "redis",
        str(tmp_path / "j.sqlite"),
        "redis://10.0.0.5:6379/2",
        "fleet-a",
    )
    assert (j.retention, j.max_entries, j.max_bytes) == (3600.0, 500, 2048)
    env = {"GATEWAY_JOURNAL": "sqlite", "GATEWAY_JOURNAL_PATH": "/data/journal.db"}
    cfg = load_config(str(path), env)
    assert (cfg.journal.backend, cfg.journal.path) == ("sqlite", "/data/journal.db")
    assert cfg.where("journal.path") == "environment variable GATEWAY_JOURNAL_PATH"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[journal]\nretension = 3\n", "key journal.retension: unknown key; did you mean retention?"),
        ("[journal]\nretention = 0\n", "key journal.retention: expected seconds > 0, got 0"),
        ("[journal]\nmax_entries = 0\n", "key journal.max_entries: expected an integer >= 1, got 0"),
        ("[journal]\nmax_bytes = 100\n", "key journal.max_bytes: expected an integer >= 1024, got 100"),
        ('[journal]\nprefix = "a b"\n', "key journal.prefix: expected 1-64 of letters"),
        ("[journal]\nbackend = 3\n", "key journal.backend: expected str, got int"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    assert str(info.value).startswith(str(path)) and expected in str(info.value), str(info.value)


def test_an_unknown_backend_fails_when_the_gateway_is_built_listing_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as info:
        Gateway.from_config(None, env={"GATEWAY_JOURNAL": "postgres"}, overrides=STORE)
    assert str(info.value) == (
        "environment variable GATEWAY_JOURNAL: unknown journal backend 'postgres'; available: redis, sqlite"
    )


def test_registering_a_name_twice_is_an_error() -> None:
    class Twice:
        from odmcp import hookimpl

        @hookimpl
        def gateway_register_journal_backends(self, register: Any) -> None:
            register("sqlite", lambda settings, config: None)

    with pytest.raises(Exception, match="registered twice|gateway_register_journal_backends") as info:
        Gateway.from_config(None, env={}, overrides=STORE, extra_plugins=[Twice()])
    cause = info.value if isinstance(info.value, ValueError) else info.value.__cause__
    assert str(cause) == "journal backend 'sqlite' registered twice"


def _the_tests_own(path: Path, tmp_path: Path) -> bool:
    """A new file in the kit's directory for this test (on tmpfs when there is one)."""
    kit_dirs = (tmp_path, *Path("/dev/shm").glob("odmcp-journal-*"))
    return path.name == "journal.sqlite" and not path.exists() and path.parent in kit_dirs


async def test_the_gateway_opens_the_journal_at_start_up_and_closes_it(
    gateway_factory: Any, tmp_path: Path
) -> None:
    gw = gateway_factory()
    path = Path(gw.config.journal.path)
    assert gw.journal is None and _the_tests_own(path, tmp_path)
    await gw.startup()
    try:
        assert gw.journal is not None and gw.journal.name == "sqlite"
        await gw.journal.put_job(JobRecord(key="k", fingerprint="f"))
    finally:
        await gw.shutdown()
    assert gw.journal is None
    db = sqlite3.connect(path)
    assert db.execute("SELECT key FROM jobs").fetchall() == [("k",)]
    db.close()
    # a restarted gateway (same test, same journal) finds the record
    again = gateway_factory()
    await again.startup()
    try:
        assert await again.journal.get_job("k") == JobRecord(key="k", fingerprint="f")
    finally:
        await again.shutdown()


async def test_an_unusable_journal_path_stops_start_up_in_one_line(
    gateway_factory: Any, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    gw = gateway_factory(overrides={"journal.path": str(tmp_path / "a-file" / "journal.sqlite")})
    with pytest.raises(ConfigError) as info:
        await gw.startup()
    message = str(info.value)
    assert message.startswith("<defaults>: key journal.path: the journal file ")
    assert f"can't be used: {str(tmp_path / 'a-file')!r} is not a directory; set journal.path" in message
    assert "\n" not in message and gw.journal is None and gw.cache is None


async def test_a_redis_journal_that_does_not_answer_stops_start_up(gateway_factory: Any) -> None:
    from odmcp.testing import free_port

    url = f"redis://:pw-secret@127.0.0.1:{free_port()}/0"
    gw = gateway_factory(overrides={"journal.backend": "redis", "journal.redis_url": url})
    with pytest.raises(ConfigError) as info:
        await gw.startup()
    message = str(info.value)
    assert "journal's Redis at redis://:***@127.0.0.1" in message and "does not answer" in message
    assert "pw-secret" not in message and gw.journal is None


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], journal: str) -> tuple[dict[str, Any], str]:
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[[stores]]\nname = "main"\nstore_id = "9"\napi_key = "k-1"\n' + journal)
    assert main(["config", "check", "--config", str(cfg)]) == 0
    out, err = capsys.readouterr()
    return json.loads(out.split("\n", 1)[1]), err


def test_config_check_shows_the_journal_and_says_nothing_when_sqlite_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    effective, err = _check(tmp_path, capsys, f'[journal]\npath = "{tmp_path / "new" / "j.sqlite"}"\n')
    assert effective["journal"]["path"] == str(tmp_path / "new" / "j.sqlite") and err == ""
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_config_check_warns_about_an_unusable_sqlite_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    _effective, err = _check(tmp_path, capsys, f'[journal]\npath = "{tmp_path / "a-file" / "j.sqlite"}"\n')
    assert err.startswith("mcp-gateway: warning: ") and "is not a directory" in err
    assert len(err.splitlines()) == 1


def test_config_check_warns_that_the_shared_redis_keeps_nothing_on_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test Redis on 6379 runs without AOF or RDB (noeviction): the warning says what to set."""
    monkeypatch.setenv("MY_REDIS", "redis://default:hunter2-secret@127.0.0.1:6379/0")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    journal = f'[journal]\nbackend = "redis"\nredis_url = {{ "$env" = "MY_REDIS" }}\nprefix = "{prefix}"\n'
    try:
        effective, err = _check(tmp_path, capsys, journal)
    finally:
        delete_redis_prefix("redis://127.0.0.1:6379/0", prefix)
    assert effective["journal"]["redis_url"] == "redis://default:***@127.0.0.1:6379/0"
    assert "hunter2-secret" not in err
    assert err.splitlines() == [
        "mcp-gateway: warning: the journal's Redis at redis://default:***@127.0.0.1:6379/0: persistence "
        'is off (appendonly no, save ""): a Redis restart loses the journal; set appendonly yes '
        "(appendfsync everysec)"
    ]


def test_the_state_directory_of_the_test_session_is_not_the_users() -> None:
    assert os.environ["XDG_STATE_HOME"] != str(Path.home() / ".local" / "state")
    assert load_config(None, {}).journal.path.startswith(os.environ["XDG_STATE_HOME"])
