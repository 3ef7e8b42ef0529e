"""Sliding-window counters shared by every instance: a sorted set of event times per key.

Keys: ``P window:{key}`` zset, member a unique token per event, score its time (Redis's
clock, so instances agree); it expires one window after its last event. One Lua script
trims, counts and adds, so two instances never both take the last place.
"""

from __future__ import annotations

import uuid

import structlog
from redis.exceptions import RedisError

from .redis_client import Redis
from .window_counters_memory import MemoryWindowCounter

log = structlog.get_logger("gateway.quotas")

# KEYS: the zset. ARGV: limit, window in seconds, a unique member.
_HIT = """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return 1
"""


class RedisWindowCounter:
    """Falls back to this instance's own counter while Redis is down (never a crash)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._prefix = prefix
        self._hit = redis.register_script(_HIT)
        self._fallback = MemoryWindowCounter()

    def key(self, key: str) -> str:
        return f"{self._prefix}window:{key}"

    async def hit(self, key: str, limit: int, window_s: float) -> bool:
        try:
            ok = await self._hit(keys=[self.key(key)], args=[limit, window_s, uuid.uuid4().hex])
        except RedisError as exc:
            log.warning("window counter local while redis is down", error=type(exc).__name__)
            return self._fallback.hit_now(key, limit, window_s)
        return bool(ok)
