"""Which Redis deployment a ``cache.redis_url`` names, and a redis-py client for it.

* ``redis://[user:pass@]host:port/db`` and ``rediss://`` (TLS): one server.
* ``redis+cluster://[user:pass@]host:port`` (``rediss+cluster://``), or a plain URL with
  ``cache.redis_mode = "cluster"`` or ``?cluster=true``: Redis Cluster, any node as the seed
  (``redis.asyncio.cluster.RedisCluster`` discovers the rest).
* ``redis+sentinel://[user:pass@]host:26379[,host2:26379]/master[/db]`` (``rediss+sentinel://``: TLS to
  the master): the master Sentinel names ``master`` (``redis.asyncio.sentinel.Sentinel.master_for``, which
  finds the new master after a failover). The credentials are the master's; sentinels that need their
  own password take ``?sentinel_password=...``.

Mistakes are a ``ValueError`` whose message never contains the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

if TYPE_CHECKING:
    from redis.asyncio import Redis

FORMS = "redis://, rediss://, redis+cluster://, rediss+cluster:// or redis+sentinel://host:26379/master"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


@dataclass
class Target:
    #: ``standalone``, ``cluster`` or ``sentinel``
    mode: str
    #: the URL without credentials or options, for messages and logs
    where: str
    #: redis-py connection options (standalone: everything ``parse_url`` gives)
    kwargs: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)
    _sentinel: Sentinel | None = field(default=None, repr=False)

    def client(self, *, socket_connect_timeout: float) -> Redis:
        """The cluster or sentinel-managed client (standalone clients are built by aiocache)."""
        opts = {**self.kwargs, "socket_connect_timeout": socket_connect_timeout}
        if self.mode == "cluster":
            # typed as Redis: every command the backend uses exists on both
            return cast("Redis", RedisCluster.from_url(self.url, **opts))
        sentinel = Sentinel(
            self.sentinels,
            sentinel_kwargs={
                "socket_timeout": opts["socket_timeout"],
                "socket_connect_timeout": socket_connect_timeout,
                **self.sentinel_kwargs,
            },
        )
        self._sentinel = sentinel
        return cast("Redis", sentinel.master_for(self.service, retry=Retry(NoBackoff(), 1), **opts))

    async def aclose(self) -> None:
        """Close the connections to the sentinels themselves (the master client is closed by its owner)."""
        sentinel, self._sentinel = self._sentinel, None
        for client in sentinel.sentinels if sentinel is not None else ():
            await client.aclose()


def parse_target(url: str, mode: str = "auto") -> Target:
    """The deployment ``url`` names (``mode``: ``auto``, ``standalone`` or ``cluster``)."""
    if "://" not in url:  # ``localhost:6379`` or ``notaurl``: urlsplit would read a host as the scheme
        raise ValueError(f"not a Redis URL (no scheme); use {FORMS}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    base, _, variant = scheme.partition("+")
    if base not in ("redis", "rediss") or variant not in ("", "cluster", "sentinel"):
        if scheme == "unix":
            raise ValueError("unsupported Redis URL: a unix socket; use " + FORMS)
        raise ValueError(f"unsupported Redis URL scheme {scheme + '://'!r}; use {FORMS}")
    query = parse_qs(parts.query, keep_blank_values=True)
    flag = query.pop("cluster", [""])[-1].lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(
            f"unsupported Redis URL option cluster={flag!r}; use cluster=true or redis+cluster://"
        )
    if flag in _TRUE or mode == "cluster":
        if variant == "sentinel":
            raise ValueError("a redis+sentinel:// URL can't be a cluster; use redis+cluster://host:port")
        variant = "cluster"
    if mode == "standalone" and variant:
        raise ValueError(f"cache.redis_mode = 'standalone' contradicts a {scheme}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    path = parts.path
    where = f"{scheme}://{hosts}{path}"
    if variant == "sentinel":
        return _sentinel(base, userinfo, hosts, path, query, where)
    plain = urlunsplit((base, parts.netloc, path, urlencode(query, doseq=True), ""))
    kwargs: dict[str, Any] = dict(parse_url(plain))
    if variant == "cluster":
        kwargs.pop("db", None)  # a cluster has database 0 only
        for key in ("host", "port", "username", "password", "connection_class"):
            kwargs.pop(key, None)  # from_url reads them from the URL
        return Target("cluster", where, kwargs, url=plain)
    _check_options(kwargs)
    return Target("standalone", where, kwargs)


def _sentinel(
    base: str, userinfo: str, hosts: str, path: str, query: dict[str, list[str]], where: str
) -> Target:
    sentinels = []
    for hostport in hosts.split(","):
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "26379")
        try:
            sentinels.append((host.strip("[]") or "127.0.0.1", int(port)))
        except ValueError:
            raise ValueError(f"bad sentinel address {hostport!r} in {where}") from None
    names = [p for p in path.split("/") if p]
    if not names or len(names) > 2 or (len(names) == 2 and not names[1].isdigit()):
        raise ValueError(
            f"{where}: name the master after the sentinels, e.g. redis+sentinel://host:26379/mymaster"
        )
    kwargs: dict[str, Any] = {"db": int(names[1]) if len(names) == 2 else 0}
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            kwargs["username"] = unquote(user)
        if password:
            kwargs["password"] = unquote(password)
    if base == "rediss":
        kwargs["ssl"] = True
    sentinel_kwargs = {}
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query.pop("sentinel_password")[-1]
    if query:
        raise ValueError(f"unsupported option(s) in a redis+sentinel:// URL: {', '.join(sorted(query))}")
    return Target(
        "sentinel", where, kwargs, sentinels=sentinels, service=names[0], sentinel_kwargs=sentinel_kwargs
    )


def _check_options(kwargs: dict[str, Any]) -> None:
    """Reject an option redis-py would only refuse at the first connection (a TypeError on every call)."""
    cls = kwargs.get("connection_class", Connection)
    options = {k: v for k, v in kwargs.items() if k not in ("connection_class", "max_connections")}
    try:
        cls(**options)
    except TypeError as err:
        raise ValueError(f"unsupported option in the Redis URL ({err})") from None
