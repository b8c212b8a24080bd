"""``cache.redis_url`` forms: one server, Cluster, Sentinel; mistakes are one clear line, never a TypeError
at the first command, and never show the password."""

from __future__ import annotations

from typing import Any

import pytest

from odmcp_cache_redis.urls import parse_target


@pytest.mark.parametrize(
    ("url", "mode", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "auto", "standalone"),
        ("rediss://u:pw@h:6380/1", "auto", "standalone"),
        ("redis+cluster://h:7000", "auto", "cluster"),
        ("rediss+cluster://u:pw@h:7000", "auto", "cluster"),
        ("redis://h:7000?cluster=true", "auto", "cluster"),
        ("redis://h:7000", "cluster", "cluster"),
        ("redis+sentinel://s1:26379,s2:26380/mymaster/2", "auto", "sentinel"),
    ],
)
def test_the_url_names_the_deployment(url: str, mode: str, expected: str) -> None:
    assert parse_target(url, mode).mode == expected


def test_a_sentinel_url_lists_every_sentinel_the_master_and_the_credentials() -> None:
    t = parse_target("rediss+sentinel://app:s3cret@s1:26379,s2/mymaster/2?sentinel_password=sp")
    assert t.sentinels == [("s1", 26379), ("s2", 26379)] and t.service == "mymaster"
    assert t.kwargs == {"db": 2, "username": "app", "password": "s3cret", "ssl": True}
    assert t.sentinel_kwargs == {"password": "sp"}
    assert "s3cret" not in t.where and t.where == "rediss+sentinel://s1:26379,s2/mymaster/2"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("memcached://h:11211", "unsupported Redis URL scheme"),
        ("unix:///tmp/redis.sock", "unix socket"),
        ("redis://:s3cret@h:6379?bogus=1", "unsupported option"),
        ("redis://h:6379?cluster=maybe", "cluster=true"),
        ("redis+sentinel://:s3cret@s1:26379", "name the master"),
        ("redis+sentinel://s1:26379/m?cluster=true", "can't be a cluster"),
    ],
)
def test_a_bad_url_is_one_clear_line_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as info:
        parse_target(url)
    assert "s3cret" not in str(info.value) and "\n" not in str(info.value)


def test_the_backend_refuses_an_unknown_option_when_it_is_made(gateway_factory: Any) -> None:
    """Not at the first command (a TypeError on every call, served fail-open): the CLI reports this
    at start-up in one line (tests/gateway/test_cli.py)."""
    gw = gateway_factory(
        overrides={"cache.backend": "redis", "cache.redis_url": "redis://127.0.0.1:6379?cluster_mode=1"}
    )
    with pytest.raises(ValueError, match="unsupported option"):
        gw.caches.create(gw.config)
