"""The shared journal: records in Redis, for replicas that must agree on what was written.

Layout. Every key is ``<prefix>:journal:{<prefix>}:<name>``: the hash tag puts them all in one slot, so
each Lua script below names every key it touches in ``KEYS`` and runs on Redis Cluster as on one
server. Nine keys, whatever the number of records:

* ``rec`` (hash): ``w:<write id>`` / ``j:<job key>`` -> the record's msgspec JSON;
* ``ix`` (hash): the same fields -> what the record's index entries are made of (its time and indexed
  values, a few dozen bytes), so an upsert or a prune removes exactly those without decoding the record;
* ``bytes`` (string): the total length of the JSON in ``rec`` (what ``journal.max_bytes`` bounds);
* ``t`` (sorted set): every record, ``<time>\\0<field>``, oldest first (what prunes walk);
* ``w`` (sorted set): every write record, ``<time>\\0<id>``, for queries without an indexed filter;
* ``object``, ``caller``, ``job``, ``call`` (sorted sets): ``<value>\\0<time>\\0<id>``, for
  :class:`~odmcp.journal.ChangeQuery` filters. ``store`` and ``tool`` are checked on the records read
  (they narrow little on their own, and each index costs about 150 B of Redis memory per record).

Every index is a lexicographic sorted set (all scores 0): a member starts with the indexed value
(JSON-escaped, so it holds no raw control characters), then the time in zero-padded microseconds, so
``ZREVRANGEBYLEX`` over one value's range lists its records newest first, and ``since`` is a bound.

Writes are one round trip: ``put_write`` and ``put_job`` are one script each call (upsert, index
moves, byte count, and dropping at most :data:`PUT_PRUNE` records beyond the bounds). Nothing has a TTL,
so no ``volatile-*`` eviction can touch the journal; ``problems()`` warns about ``allkeys-*`` policies and
a Redis without persistence.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from odmcp.api import (
    ChangeQuery,
    ConfigError,
    JobRecord,
    WriteRecord,
    decode_job,
    decode_write,
    encode,
    job_time,
    mask_url,
)

if TYPE_CHECKING:
    from odmcp.api import Config, JournalSettings

#: socket timeout of journal commands; unlike the cache, a journal that does not answer fails the write
OP_TIMEOUT = 2.0
#: connections to Redis at most; more concurrent calls wait (up to :data:`POOL_WAIT` s) for one
MAX_CONNECTIONS = 64
POOL_WAIT = 10.0
#: records beyond the bounds that one put drops (keeps the journal bounded without a separate call)
PUT_PRUNE = 2
#: records one prune script drops before it yields to other clients
PRUNE_BATCH = 500
#: records one query script reads at most (Lua's ``unpack`` takes a few thousand values at most)
PAGE_MAX = 1000
#: the indexes of write records, in the order of the ``KEYS`` after ``t``; ``w`` holds them all, the
#: others one value each (``store`` and ``tool`` have none: a query by them alone reads ``w``, filtered)
INDEXES = ("w", "object", "caller", "job", "call")
#: the record fields of the value indexes, in that order
INDEXED = ("object_id", "caller", "job", "call_id")
#: query filter -> its index, most selective first: a query walks the index of its first filter
_PICK: tuple[tuple[str, str], ...] = (("call_id", "call"), ("job", "job"), ("object_id", "object"))
_PICK += (("caller", "caller"),)
#: every filter that is a field (those without an index are checked on the records read)
_FILTERS = ("call_id", "job", "object_id", "caller", "tool", "store")
#: policies that may evict a key without a TTL
EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")

# KEYS: rec, ix, bytes, t, w, object, caller, job, call.
# A record's ix entry is the JSON list [time µs, escaped value per index or null] (just [time] for a
# job); members() turns it into its index members, aligned with KEYS[4..] (false: not indexed).
_LIB = r"""
local function members(field, ix)
  local v = cjson.decode(ix)
  local out = {v[1] .. '\0' .. field, false, false, false, false, false}
  if string.sub(field, 1, 2) == 'w:' then
    local tail = v[1] .. '\0' .. string.sub(field, 3)
    out[2] = tail
    for i = 2, 5 do
      if v[i] ~= cjson.null then out[i + 1] = v[i] .. '\0' .. tail end
    end
  end
  return out
end

local function unindex(field)
  local ix = redis.call('HGET', KEYS[2], field)
  if ix then
    for i, m in ipairs(members(field, ix)) do
      if m then redis.call('ZREM', KEYS[3 + i], m) end
    end
  end
end

local function drop(field)
  unindex(field)
  local len = redis.call('HSTRLEN', KEYS[1], field)
  redis.call('HDEL', KEYS[1], field)
  redis.call('HDEL', KEYS[2], field)
  if len > 0 then redis.call('DECRBY', KEYS[3], len) end
end

-- drop the oldest records while one is older than cutoff or the bounds are exceeded; never `keep`
local function prune(cutoff, max_entries, max_bytes, budget, keep)
  local dropped = 0
  while dropped < budget do
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0)
    if #oldest == 0 then break end
    local member = oldest[1]
    if tonumber(string.sub(member, 1, 17)) >= cutoff
      and redis.call('ZCARD', KEYS[4]) <= max_entries
      and tonumber(redis.call('GET', KEYS[3]) or '0') <= max_bytes then
      break
    end
    local field = string.sub(member, 19)
    if field == keep then break end
    redis.call('ZREM', KEYS[4], member)
    drop(field)
    dropped = dropped + 1
  end
  return dropped
end
"""

# ARGV: field, json, ix entry, cutoff µs, max entries, max bytes, budget
_PUT = (
    _LIB
    + r"""
local field = ARGV[1]
unindex(field)
local oldlen = redis.call('HSTRLEN', KEYS[1], field)
redis.call('HSET', KEYS[1], field, ARGV[2])
redis.call('HSET', KEYS[2], field, ARGV[3])
redis.call('INCRBY', KEYS[3], string.len(ARGV[2]) - oldlen)
for i, m in ipairs(members(field, ARGV[3])) do
  if m then redis.call('ZADD', KEYS[3 + i], 0, m) end
end
return prune(tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), field)
"""
)

# ARGV: cutoff µs, max entries, max bytes, budget
_PRUNE = _LIB + "return prune(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), '')"

# KEYS: an index, rec. ARGV: max, min, offset, count, separators before the id.
# Returns {members read, records (false where one is missing)}.
_PAGE = r"""
local members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', ARGV[3], ARGV[4])
if #members == 0 then return {0, {}} end
local fields = {}
for i, m in ipairs(members) do
  local pos = 0
  for _ = 1, tonumber(ARGV[5]) do pos = string.find(m, '\0', pos + 1, true) end
  fields[i] = 'w:' .. string.sub(m, pos + 1)
end
return {#members, redis.call('HMGET', KEYS[2], unpack(fields))}
"""


def _micros(t: float) -> str:
    """A time as 17 zero-padded digits of microseconds: sorts as text as it does as a number."""
    return f"{max(0, math.floor(t * 1e6)):017d}"


def _escaped(value: str) -> str:
    """``value`` as inside a JSON string: no raw control characters, so ``\\0`` can separate parts."""
    return msgspec.json.encode(value)[1:-1].decode()


class RedisJournal:
    """A journal shared by every replica that uses the same Redis and ``journal.prefix``."""

    name = "redis"

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "mcpgw",
        retention: float = 7 * 86_400.0,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        url: str = "",
        where: str = "journal.redis_url",
    ) -> None:
        self._client = client
        self.retention = retention
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: the Redis URL with any password hidden, and where it was set, for messages
        self.url = mask_url(url)
        self.where = where
        base = f"{prefix}:journal:{{{prefix}}}"
        #: every key this journal uses (tests delete exactly these)
        self.keys = [f"{base}:{name}" for name in ("rec", "ix", "bytes", "t", *INDEXES)]
        self._index = dict(zip(INDEXES, self.keys[4:], strict=True))
        self._put = client.register_script(_PUT)
        self._prune = client.register_script(_PRUNE)
        self._page = client.register_script(_PAGE)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: JournalSettings, config: Config) -> RedisJournal:
        key = "journal.redis_url" if settings.redis_url else "cache.redis_url"
        url = settings.redis_url or config.cache.redis_url
        try:
            client = client_for(url)
        except ValueError as err:
            text = str(err).replace(url, mask_url(url))
            where = config.where(key)
            raise ConfigError(f"{where}: not a usable Redis URL for the journal: {text}") from None
        return cls(
            client,
            prefix=settings.prefix,
            retention=settings.retention,
            max_entries=settings.max_entries,
            max_bytes=settings.max_bytes,
            url=url,
            where=config.where(key),
        )

    @property
    def client(self) -> Redis | RedisCluster:
        return self._client

    async def open(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as err:
            raise ConfigError(
                f"{self.where}: the journal's Redis at {self.url} does not answer ({type(err).__name__}); "
                "start it, or choose the embedded journal with GATEWAY_JOURNAL=sqlite"
            ) from None

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    # --- records ----------------------------------------------------------------------------------

    def _bounds(self) -> list[Any]:
        return [_micros(time.time() - self.retention), self.max_entries, self.max_bytes]

    async def _store(self, field: str, data: bytes, ix: list[str | None]) -> None:
        args = [field, data, msgspec.json.encode(ix), *self._bounds(), PUT_PRUNE]
        await self._put(keys=self.keys, args=args)

    async def put_write(self, rec: WriteRecord) -> None:
        """Insert or replace the record with ``rec.id``, in one round trip."""
        values = [getattr(rec, name) for name in INDEXED]
        ix = [_micros(rec.time), *(None if v is None else _escaped(v) for v in values)]
        await self._store(f"w:{rec.id}", encode(rec), ix)

    async def put_job(self, job: JobRecord) -> None:
        await self._store(f"j:{job.key}", encode(job), [_micros(job_time(job))])

    async def get_write(self, write_id: str) -> WriteRecord | None:
        data = await self._client.hget(self.keys[0], f"w:{write_id}")
        return decode_write(data) if data else None

    async def get_job(self, key: str) -> JobRecord | None:
        data = await self._client.hget(self.keys[0], f"j:{key}")
        return decode_job(data) if data else None

    async def query(self, q: ChangeQuery) -> list[WriteRecord]:
        if q.limit <= 0:
            return []
        index, value = "w", None
        for attr, name in _PICK:
            if getattr(q, attr) is not None:
                index, value = name, getattr(q, attr)
                break
        head = b"" if value is None else _escaped(value).encode() + b"\0"
        high = b"[" + head + b"\xff"
        if q.since is not None:
            low = b"[" + head + _micros(q.since).encode()
        else:
            low = b"[" + head if head else b"-"
        others = sum(getattr(q, attr) is not None for attr in _FILTERS) - (value is not None)
        # the index answers the query by itself: let Redis skip the offset
        exact = others == 0 and q.states is None
        offset, want = (max(q.offset, 0), q.limit) if exact else (0, max(q.offset, 0) + q.limit)
        batch = min(want if exact else max(want, 100), PAGE_MAX)
        found: dict[str, WriteRecord] = {}
        while True:
            args: list[Any] = [high, low, offset, batch, 1 if value is None else 2]
            count, values = await self._page(keys=[self._index[index], self.keys[0]], args=args)
            for data in values:
                if data:
                    rec = decode_write(data)
                    if q.matches(rec):
                        found.setdefault(rec.id, rec)
            if count < batch or len(found) >= want:
                break
            offset, batch = offset + count, min(batch * 2, PAGE_MAX)
        records = list(found.values())
        return records[: q.limit] if exact else records[max(q.offset, 0) : max(q.offset, 0) + q.limit]

    # --- bounds -----------------------------------------------------------------------------------

    async def prune(self, now: float) -> int:
        """Drop records older than the retention, and the oldest beyond the size bounds; how many."""
        args: list[Any] = [_micros(now - self.retention), self.max_entries, self.max_bytes, PRUNE_BATCH]
        total = 0
        while True:
            dropped = int(await self._prune(keys=self.keys, args=args))
            total += dropped
            if dropped < PRUNE_BATCH:
                return total

    async def problems(self) -> list[str]:
        """What could make this Redis lose journal records: eviction, no persistence, no answer."""
        there = f"the journal's Redis at {self.url}"
        try:
            async with asyncio.timeout(2 * OP_TIMEOUT):
                return await self._problems(there)
        except (RedisError, OSError, TimeoutError) as err:
            return [f"{there} does not answer ({type(err).__name__}); check {self.where}"]

    async def _problems(self, there: str) -> list[str]:
        out: list[str] = []
        try:
            policies = await self._setting("maxmemory-policy")
            saves = await self._setting("save")
        except ResponseError as err:  # managed services often refuse CONFIG
            out.append(
                f"{there}: maxmemory-policy and the save schedule could not be read ({err}); make sure "
                "maxmemory-policy is noeviction or volatile-lru and appendonly is yes, or journal records "
                "may be evicted or lost on a restart"
            )
            policies, saves = set(), set()
        evicting = sorted(policies & set(EVICTING))
        if evicting:
            out.append(
                f"{there}: maxmemory-policy is {evicting[0]}, which may evict journal records (they have "
                "no TTL); set maxmemory-policy volatile-lru (evicts only keys with a TTL, such as the "
                "cache's) or noeviction"
            )
        nodes = _per_node(await self._client.info("persistence"))
        if saves and any(str(n.get("aof_enabled")) == "0" for n in nodes):
            if any(not save.strip() for save in saves):
                out.append(
                    f'{there}: persistence is off (appendonly no, save ""): a Redis restart loses the '
                    "journal; set appendonly yes (appendfsync everysec)"
                )
            else:
                out.append(
                    f"{there}: only RDB snapshots are on (appendonly no): a crash loses the journal records "
                    "written since the last snapshot; set appendonly yes (appendfsync everysec)"
                )
        return out

    async def _setting(self, name: str) -> set[str]:
        """``CONFIG GET name`` of every node (one value on a single server)."""
        return {str(node.get(name, "")) for node in _per_node(await self._client.config_get(name))}


def client_for(url: str) -> Redis:
    """The journal's client: short socket timeouts, one retry, and a pool that makes a burst wait for a
    connection instead of failing."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        socket_timeout=OP_TIMEOUT,
        socket_connect_timeout=OP_TIMEOUT,
        retry=Retry(NoBackoff(), 1),  # every command here is safe to send twice (upserts, reads, prunes)
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def _per_node(reply: Any) -> list[dict[str, Any]]:
    """A reply as one dict per node: ``RedisCluster`` answers ``{node: reply}`` for all-node commands."""
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        return list(reply.values())
    return [reply] if isinstance(reply, dict) else []
