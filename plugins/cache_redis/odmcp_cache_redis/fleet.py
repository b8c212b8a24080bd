"""Fleet primitives on Redis (:class:`odmcp.fleet.FleetPrimitives`): shared GCRA buckets and single-flight.

No library fits: ``limits`` and ``pyrate-limiter`` answer "allowed or not" (callers would have to poll
and race each other when tokens return, which is the thundering herd this avoids) and can't take
corrections from the upstream's own headers. What is needed is small: three Lua scripts, each one
atomic round trip, and one pub/sub subscription per process.

**Buckets** (``BUCKET_LUA``) keep GCRA state in a hash ``{tat, shift}``: ``reserve`` hands out the next
slot (arrival order across the fleet, one interval apart) and returns how long until it starts;
``observe`` lowers the bucket to what the upstream reports; ``penalize`` moves the bucket *and every
slot already handed out* behind a 429's retry delay, by adding to ``shift``, which sleepers read when
they wake. Times come from Redis's own clock (``TIME``), so replicas never compare clocks; tests pass
``now`` instead. A sorted set next to the hash counts the replicas that used the bucket lately.

**Flights** (``CLAIM_LUA``, ``LAND_LUA``): ``claim`` returns the cached value, or takes the flight key
(token, lease), or says how long the current filler's lease has left. ``land`` stores the value only
while the flight is still ours (an invalidation deletes the flight key, so a load from before a write
never lands), deletes it and publishes the key on the deployment's channel. Each process keeps one
subscription to that channel and wakes its local waiters; a wake-up lost in a Redis restart costs a
waiter at most the lease it was told, never a wrong value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from odmcp.fleet import Claim, Reservation
from odmcp.ratelimit import MEMBER_WINDOW

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("odmcp_cache_redis")

BUCKET_LUA = """
-- KEYS[1] bucket hash {tat, shift}; KEYS[2] members (sorted set: replica -> last use)
-- ARGV: op, capacity, interval (s), now ('' = Redis TIME), op argument, member, member window (s),
--       reserve (tokens a reservation leaves for others)
local op, capacity, interval = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local arg = tonumber(ARGV[5])
local tolerance = (capacity - 1) * interval   -- a slot may start while tat - now <= tolerance
local full = capacity * interval              -- tat - now of an empty bucket with nobody waiting
local state = redis.call('HMGET', KEYS[1], 'tat', 'shift')
local tat, shift = tonumber(state[1]), tonumber(state[2]) or 0
local reply
if op == 'reserve' then
  -- a lost bucket (Redis restarted) is rebuilt as drained as the caller last knew it
  if tat == nil then tat = now + math.min(math.max(arg, 0), full) end
  local keep = math.min(math.max(tonumber(ARGV[8]) or 0, 0), capacity - 1) * interval
  local start = math.max(now, tat - tolerance + keep)
  tat = math.max(tat, now) + interval
  local members = 0
  if ARGV[6] ~= '' then
    local window = tonumber(ARGV[7])
    redis.call('ZADD', KEYS[2], now, ARGV[6])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
    redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
    members = redis.call('ZCARD', KEYS[2])
  end
  reply = {string.format('%.6f', start - now), string.format('%.6f', tat - now),
           string.format('%.6f', shift), members}
else
  if tat == nil then tat = now end
  if op == 'observe' then
    -- only ever lower: reservations not sent yet are not in the upstream's count. While callers
    -- wait for slots the bucket believes it is empty, so this never has to move their slots.
    local believed = capacity - math.max(0, tat - now) / interval
    local remaining = math.min(math.max(arg, 0), capacity)
    if remaining < believed then tat = math.max(tat, now) + (believed - remaining) * interval end
  elseif op == 'penalize' then
    local target = now + arg
    local last = tat - full                   -- start of the last slot handed out
    if last > now then                        -- callers are waiting: none may start before target
      local earliest = last - math.floor((last - now) / interval) * interval
      if target > earliest then
        shift = shift + (target - earliest)
        tat = tat + (target - earliest)
      end
    end
    tat = math.max(tat, target + tolerance)   -- one token returns at target
  else
    return redis.error_reply('unknown bucket op ' .. op)
  end
  reply = 1
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', tat), 'shift', string.format('%.6f', shift))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat - now, 0) + 600) * 1000))
return reply
"""

CLAIM_LUA = """
-- KEYS[1] value, KEYS[2] flight; ARGV[1] token, ARGV[2] lease (ms)
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then return {2, ''} end  -- ours already (a claim retried after a lost reply)
if not holder then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {2, ''}
end
return {3, redis.call('PTTL', KEYS[2])}
"""

RENEW_LUA = """
-- KEYS[1] flight; ARGV[1] token, ARGV[2] lease (ms)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

LAND_LUA = """
-- KEYS[1] value, KEYS[2] flight; ARGV[1] token, ARGV[2] value ('' = none), ARGV[3] ttl (ms), ARGV[4] channel
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[2])
local stored = 0
if ARGV[2] ~= '' and redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then stored = 1 end
redis.call('PUBLISH', ARGV[4], KEYS[1])
return stored
"""

#: how long the notifier waits before subscribing again after the subscription broke
RESUBSCRIBE_DELAY = 0.5


def flight_key(key: str) -> str:
    return key + ":flight"


class RedisFleet:
    """Shared buckets and single-flight for every replica on one Redis (see the module docstring)."""

    def __init__(self, client: Redis, serializer: Any, channel: str) -> None:
        self._client = client
        self._serializer = serializer
        self._bucket = client.register_script(BUCKET_LUA)
        self._claim = client.register_script(CLAIM_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._land = client.register_script(LAND_LUA)
        self.notices = FlightNotices(client, channel)

    # --- buckets ---------------------------------------------------------------------------------

    async def _bucket_op(
        self,
        op: str,
        key: str,
        capacity: int,
        interval: float,
        arg: float,
        now: float | None,
        member: str = "",
        reserve: int = 0,
    ) -> Any:
        clock = "" if now is None else repr(now)
        return await self._bucket(
            keys=[key, key + ":replicas"],
            args=[op, capacity, repr(interval), clock, repr(float(arg)), member, MEMBER_WINDOW, reserve],
        )

    async def bucket_reserve(
        self,
        key: str,
        capacity: int,
        interval: float,
        *,
        hint: float,
        member: str,
        now: float | None = None,
        reserve: int = 0,
    ) -> Reservation:
        delay, ahead, shift, replicas = await self._bucket_op(
            "reserve", key, capacity, interval, hint, now, member, reserve
        )
        return Reservation(float(delay), float(ahead), float(shift), int(replicas))

    async def bucket_shift(self, key: str) -> float:
        return float(await self._client.hget(key, "shift") or 0.0)

    async def bucket_observe(
        self, key: str, capacity: int, interval: float, remaining: int, *, now: float | None = None
    ) -> None:
        await self._bucket_op("observe", key, capacity, interval, remaining, now)

    async def bucket_penalize(
        self, key: str, capacity: int, interval: float, retry_after: float, *, now: float | None = None
    ) -> None:
        await self._bucket_op("penalize", key, capacity, interval, retry_after, now)

    # --- single-flight -----------------------------------------------------------------------------

    async def flight_claim(self, key: str, token: str, lease: float) -> Claim:
        kind, payload = await self._claim(keys=[key, flight_key(key)], args=[token, _ms(lease)])
        if kind == 1:
            return Claim("value", value=self._serializer.loads(payload))
        if kind == 2:
            return Claim("claimed")
        return Claim("busy", lease_left=max(int(payload), 0) / 1000.0)

    async def flight_renew(self, key: str, token: str, lease: float) -> bool:
        return bool(await self._renew(keys=[flight_key(key)], args=[token, _ms(lease)]))

    async def flight_land(self, key: str, token: str, value: Any, ttl: float) -> bool | None:
        data = b"" if value is None or ttl <= 0 else self._serializer.dumps(value)
        result = await self._land(
            keys=[key, flight_key(key)], args=[token, data, _ms(ttl), self.notices.channel]
        )
        return None if result == -1 else bool(result)

    async def flight_drop(self, key: str) -> None:
        await self._client.delete(key, flight_key(key))

    def flight_watch(self, key: str) -> contextlib.AbstractAsyncContextManager[FlightWatch]:
        return self.notices.watch(key)

    async def close(self) -> None:
        await self.notices.close()


class FlightWatch:
    """One waiter's wake-ups for one key (see :class:`odmcp.fleet.FlightWatch`)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def arm(self) -> None:
        self._event.clear()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class FlightNotices:
    """One subscription per process to the deployment's flight channel, fanned out to local waiters.

    Started by the first watch. While it is not subscribed (Redis down or restarting) waiters still
    wake when the lease they were told about runs out, so a lost message costs time, never a value.
    """

    def __init__(self, client: Redis, channel: str) -> None:
        self._client = client
        self.channel = channel
        self._watches: dict[str, set[FlightWatch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.subscribed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watch(self, key: str) -> AsyncIterator[FlightWatch]:
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._listen())
            # the first watch waits briefly for the subscription: a wake-up published before it is
            # active would be lost (later ones don't wait: while it is down, leases bound the wait)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await self.subscribed.wait()
        w = FlightWatch()
        self._watches.setdefault(key, set()).add(w)
        try:
            yield w
        finally:
            watchers = self._watches.get(key)
            if watchers is not None:
                watchers.discard(w)
                if not watchers:
                    del self._watches[key]

    def _wake(self, key: str) -> None:
        for w in self._watches.get(key, ()):
            w.wake()

    async def _listen(self) -> None:
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    msg = await pubsub.get_message(timeout=None)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self.subscribed.set()
                    elif msg["type"] == "message":
                        data = msg["data"]
                        self._wake(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError) as err:
                if self.subscribed.is_set():
                    log.warning("flight notices: subscription lost (%s); resubscribing", type(err).__name__)
                self.subscribed.clear()
                for watchers in self._watches.values():  # let waiters look again now
                    for w in watchers:
                        w.wake()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    async def close(self) -> None:
        task, self._task = self._task, None
        self._closed = True
        if task is not None:
            task.cancel()
            # bounded: a cancellation landing inside a redis-py call can be swallowed there
            await asyncio.wait({task}, timeout=1.0)


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)
