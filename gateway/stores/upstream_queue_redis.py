"""The upstream concurrency cap shared by every instance: a fair queue in Redis.

Keys (``P`` is ``redis.key_prefix``)::

    P upq:holders   zset  slot token -> lease deadline (Redis time); a holder refreshes it
    P upq:waiters   zset  waiter token -> arrival ticket (from P upq:ticket)
    P upq:seen      zset  waiter token -> the time of its last poll
    P upq:ticket    string the arrival counter

One Lua script does a waiter's whole step atomically: drop expired holders and waiters that
stopped polling (their instance died), join the line once (a ticket from the counter), and
take a place when fewer than ``max_concurrent`` are held and the waiter is among the first
waiters that the free places can serve. Otherwise it answers the waiter's position.

Fairness: strictly first come, first served across instances, by arrival ticket. A freed
place is taken by the earliest waiter when it next polls: at once on the instance that freed
it (its waiters are woken), within ``poll_s`` on another. A newcomer is never served ahead of
a waiter. A dead instance's places come back after ``lease_s`` (holders refresh every third
of it), its waiters leave the line after ``stale_s`` without a poll.

While Redis is down, this instance caps itself alone (a :class:`MemoryUpstreamQueue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from types import TracebackType

import structlog
from redis.exceptions import RedisError

from ..tasks import cancel_and_wait
from ..upstream_queue import (
    MemorySlot,
    MemoryUpstreamQueue,
    PositionCallback,
    tell,
    waited_too_long,
)
from .redis_client import Redis

log = structlog.get_logger("gateway.queue")

# KEYS: holders, waiters, seen, ticket. ARGV: token, max, lease_s, stale_s.
# Returns 0 when the place is taken, else the position in line (1: next).
_STEP = """
local token, max = ARGV[1], tonumber(ARGV[2])
local lease, stale = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - stale)
for _, w in ipairs(gone) do
  if w ~= token then
    redis.call('ZREM', KEYS[2], w)
    redis.call('ZREM', KEYS[3], w)
  end
end
if not redis.call('ZSCORE', KEYS[2], token) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), token)
end
redis.call('ZADD', KEYS[3], now, token)
local rank = redis.call('ZRANK', KEYS[2], token)
local free = max - redis.call('ZCARD', KEYS[1])
if rank < free then
  redis.call('ZREM', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
  redis.call('ZADD', KEYS[1], now + lease, token)
  return 0
end
if free < 0 then free = 0 end
return rank - free + 1
"""

# KEYS: holders. ARGV: token, lease_s. Extends a held place; 0 when it was lost.
_REFRESH = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[2]), ARGV[1])
return 1
"""


class RedisSlot:
    """A place held in Redis, its lease refreshed by a task until released."""

    def __init__(self, queue: RedisUpstreamQueue, token: str) -> None:
        self._queue: RedisUpstreamQueue | None = queue
        self.token = token
        self._refresher = asyncio.create_task(queue._keep(token))

    async def release(self) -> None:
        queue, self._queue = self._queue, None
        if queue is None:
            return
        await cancel_and_wait([self._refresher])  # (it sends Redis commands: see tasks)
        await queue._release(self.token)

    async def __aenter__(self) -> RedisSlot:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


class RedisUpstreamQueue:
    """:class:`~gateway.upstream_queue.UpstreamQueue` across instances (see the module)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        max_concurrent: int,
        queue_timeout_s: float,
        *,
        poll_s: float = 0.1,
        lease_s: float = 30.0,
        stale_s: float = 10.0,
    ) -> None:
        self._redis = redis
        self._max = max_concurrent
        self._timeout = queue_timeout_s
        self._poll, self._lease, self._stale = poll_s, lease_s, stale_s
        p = f"{prefix}upq:"
        self.keys = [f"{p}holders", f"{p}waiters", f"{p}seen", f"{p}ticket"]
        self._step = redis.register_script(_STEP)
        self._refresh = redis.register_script(_REFRESH)
        self._wake = asyncio.Event()
        self._fallback = MemoryUpstreamQueue(max_concurrent, queue_timeout_s)

    async def acquire(self, on_position: PositionCallback | None = None) -> RedisSlot | MemorySlot:
        if self._max <= 0:
            return MemorySlot(None)
        token = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        position = 0
        taken = False
        try:
            while True:
                wake = self._wake
                place = int(
                    await self._step(
                        keys=self.keys, args=[token, self._max, self._lease, self._stale]
                    )
                )
                if place == 0:
                    taken = True
                    return RedisSlot(self, token)
                if place != position:
                    position = place
                    tell(on_position, position)
                left = deadline - loop.time()
                if left <= 0:
                    raise waited_too_long(self._timeout)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self._poll, left)):
                        await wake.wait()
        except RedisError as exc:
            log.warning("upstream queue local while redis is down", error=type(exc).__name__)
            return await self._fallback.acquire(on_position)
        finally:
            if not taken:
                await self._forget(token)

    async def _forget(self, token: str) -> None:
        """Leave the line, and give back a place granted to an answer never read."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys[1], token)
                pipe.zrem(self.keys[2], token)
                pipe.zrem(self.keys[0], token)
                removed = await pipe.execute()
        except RedisError:
            return
        if removed[2]:
            self._notify()

    async def _release(self, token: str) -> None:
        try:
            await self._redis.zrem(self.keys[0], token)
        except RedisError as exc:  # the lease runs out on its own
            log.warning("upstream queue release failed", error=type(exc).__name__)
        self._notify()

    async def _keep(self, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                if not await self._refresh(keys=self.keys[:1], args=[token, self._lease]):
                    log.warning("upstream queue place expired while held")
                    return
            except RedisError as exc:
                log.warning("upstream queue lease refresh failed", error=type(exc).__name__)

    def _notify(self) -> None:
        """Wake this instance's waiters to poll now."""
        self._wake.set()
        self._wake = asyncio.Event()
