"""The set of shared-state implementations one instance runs with: memory, or Redis."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from ..config import Config
from ..conversations import ConversationStore, MemoryConversationStore
from ..ratelimits import RateLimiter
from ..registry import Registry
from ..replies import ReplyStore
from .interfaces import Bus, Presence
from .memory import LocalBus, LocalPresence
from .redis_bus import RedisBus
from .redis_client import KeySpace, Redis
from .redis_conversations import RedisConversationStore
from .redis_presence import RedisPresence
from .redis_ratelimits import RedisRateLimiter
from .redis_replies import RedisReplyStore


class Limiter(Protocol):
    async def allow(self, user: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Backends:
    conversations: ConversationStore
    replies: ReplyStore
    bus: Bus
    presence: Presence
    rate_limiter: Limiter


def memory_backends(config: Config, registry: Registry) -> Backends:
    limits = config.limits
    return Backends(
        conversations=MemoryConversationStore(limits.history_max_messages),
        replies=ReplyStore(limits.resume_window_s),
        bus=LocalBus(),
        presence=LocalPresence(registry),
        rate_limiter=RateLimiter(limits.messages_per_minute),
    )


@dataclass(frozen=True, slots=True)
class RedisBackends(Backends):
    redis_bus: RedisBus
    redis_presence: RedisPresence  # (the two with background loops, typed for app.py)


def redis_backends(
    config: Config, redis: Redis, registry: Registry, instance: str
) -> RedisBackends:
    limits, keys = config.limits, KeySpace(config.redis.key_prefix)
    # Liveness is per process: an instance restarted under the same id (a restart policy)
    # must not keep its dead predecessor's replies and claims looking alive.
    live_id = f"{instance}~{secrets.token_hex(4)}"
    conversations = RedisConversationStore(
        redis, keys, limits.history_max_messages, config.redis.history_ttl_s, live_id
    )
    replies = RedisReplyStore(
        redis,
        keys,
        live_id,
        limits.resume_window_s,
        conversations,
        config.redis.wait_replicas,
        config.redis.wait_timeout_ms,
        config.redis.heartbeat_s * 3,
    )
    presence = RedisPresence(redis, keys, live_id, registry, config.redis.heartbeat_s, replies)
    bus = RedisBus(redis, keys.events, instance)
    return RedisBackends(
        conversations=conversations,
        replies=replies,
        bus=bus,
        presence=presence,
        rate_limiter=RedisRateLimiter(redis, keys, limits.messages_per_minute),
        redis_bus=bus,
        redis_presence=presence,
    )
