"""The hardening settings: defaults and one-line errors for impossible values."""

from __future__ import annotations

import pytest

from odmcp.config import load_config
from odmcp.errors import ConfigError


def test_defaults_bound_everything() -> None:
    cfg = load_config(None, env={})
    assert cfg.http.read_timeout <= 15
    assert (cfg.http.max_sessions, cfg.http.max_sessions_per_token) == (1000, 100)
    assert cfg.http.session_idle_timeout == 600 and cfg.http.max_concurrent_requests == 256
    assert cfg.cache.max_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("http.read_timeout", 0, "key http.read_timeout: expected seconds > 0, got 0"),
        ("http.session_idle_timeout", -1.0, "key http.session_idle_timeout: expected seconds > 0"),
        ("http.max_sessions", 0, "key http.max_sessions: expected an integer >= 1, got 0"),
        ("http.max_sessions_per_token", 0, "key http.max_sessions_per_token: expected an integer >= 1"),
        ("http.max_concurrent_requests", 0, "key http.max_concurrent_requests: expected an integer >= 1"),
        ("cache.max_bytes", 10, "key cache.max_bytes: expected an integer >= 1024, got 10"),
    ],
)
def test_impossible_limits_are_refused_in_one_line(key: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides={key: value})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_max_result_bytes_has_a_floor() -> None:
    assert load_config(None, {}, {}, {"gateway.max_result_bytes": 4096}).gateway.max_result_bytes == 4096
    with pytest.raises(ConfigError, match="max_result_bytes"):
        load_config(None, {}, {}, {"gateway.max_result_bytes": 100})
