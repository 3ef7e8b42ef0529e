"""``limits.messages_per_minute`` shared by every instance: a token bucket in a Lua script."""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError

from .ratelimits_memory import MemoryRateLimiter
from .redis_client import KeySpace, Redis

log = structlog.get_logger("gateway.ratelimits")

# KEYS: bucket. ARGV: capacity, tokens per second. Redis's clock, so instances agree.
_TAKE = """
local cap, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or cap
local at = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 1)
return ok
"""


class RedisRateLimiter:
    """One bucket per user in Redis, shared by every instance (Redis's clock, one script
    call a message); falls back to this instance's own bucket while Redis is down (never a
    crash). Nothing runs in the background."""

    def __init__(self, redis: Redis, keys: KeySpace, per_minute: int) -> None:
        self._redis = redis
        self._k = keys
        self._per_minute = per_minute
        self._take = redis.register_script(_TAKE)
        self._fallback = MemoryRateLimiter(per_minute)

    async def allow(self, user: str) -> bool:
        if self._per_minute <= 0:
            return True
        try:
            ok = await self._take(
                keys=[self._k.rate(user)], args=[self._per_minute, self._per_minute / 60.0]
            )
        except RedisError as exc:
            log.warning("rate limit local while redis is down", error=type(exc).__name__)
            return self._fallback.allow_now(user)
        return bool(ok)

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
