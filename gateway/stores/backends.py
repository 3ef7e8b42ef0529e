"""The set of shared-state implementations one instance runs with: memory, or Redis."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ..config import Config
from ..registry import Registry
from ..tasks import TaskOwner
from ..upstream_queue import MemoryUpstreamQueue, UpstreamQueue
from .conversations import ConversationStore
from .conversations_memory import MemoryConversationStore
from .conversations_redis import RedisConversationStore
from .events import Bus
from .events_memory import LocalBus
from .events_redis import RedisBus
from .images import ImageStore
from .images_memory import MemoryImageStore
from .images_redis import RedisImageStore
from .lifecycle import Lifecycle
from .presence import Presence
from .presence_memory import LocalPresence
from .presence_redis import RedisPresence
from .ratelimits import RateLimiter
from .ratelimits_memory import MemoryRateLimiter
from .ratelimits_redis import RedisRateLimiter
from .redis_client import KeySpace, Redis
from .replies import ReplyStore
from .replies_memory import MemoryReplyStore
from .replies_redis import RedisReplyStore
from .turn_writes import TurnWrites
from .turn_writes_memory import SteppedTurnWrites
from .turn_writes_redis import RedisTurnWrites
from .upstream_queue_redis import RedisUpstreamQueue
from .usage import UsageStore
from .usage_memory import MemoryUsageStore
from .usage_redis import RedisUsageStore
from .window_counters import WindowCounter
from .window_counters_memory import MemoryWindowCounter
from .window_counters_redis import RedisWindowCounter


@dataclass(frozen=True, slots=True)
class Backends:
    """One implementation of each seam, and their lifecycle as one.

    :meth:`run` starts every backend's ``run()`` as a task and returns; :meth:`aclose`
    closes the replies first (a publisher writes what it holds), then stops those tasks,
    then closes the other backends (presence leaves at once). ``usage`` and ``windows`` (the
    per-address sliding windows), ``upstream_queue`` (the concurrency cap) and ``turn_writes``
    (a turn's writes across the others) hold no task or connection of their own.
    """

    conversations: ConversationStore
    replies: ReplyStore
    bus: Bus
    presence: Presence
    rate_limiter: RateLimiter
    usage: UsageStore
    windows: WindowCounter
    upstream_queue: UpstreamQueue
    turn_writes: TurnWrites
    images: ImageStore = field(default_factory=MemoryImageStore)
    _tasks: TaskOwner = field(default_factory=TaskOwner, init=False, repr=False)

    async def run(self) -> None:
        for name, backend in self._backends():
            self._tasks.spawn(backend.run(), name)

    async def aclose(self) -> None:
        await self.replies.aclose()
        await self._tasks.aclose()
        for name, backend in self._backends():
            if name != "replies":
                await backend.aclose()

    def _backends(self) -> list[tuple[str, Lifecycle]]:
        return [
            ("conversations", self.conversations),
            ("replies", self.replies),
            ("events", self.bus),
            ("presence", self.presence),
            ("rate limits", self.rate_limiter),
            ("images", self.images),
        ]


def memory_backends(config: Config, registry: Registry) -> Backends:
    limits = config.limits
    images = MemoryImageStore(limits.pending_images_cap, limits.pending_image_ttl_s)
    conversations = MemoryConversationStore(
        limits.history_max_messages,
        anonymous_ttl_s=limits.anonymous_history_ttl_s,
        max_conversations=limits.memory_max_conversations,
        max_bytes=limits.memory_max_history_bytes,
        viewed=lambda: {conn.conversation_id for conn in registry},
        on_forget=images.forget,
    )
    replies = MemoryReplyStore(limits.resume_window_s, limits.memory_max_reply_bytes)
    bus, rate_limiter = LocalBus(), MemoryRateLimiter(limits.messages_per_minute)
    usage, windows = MemoryUsageStore(limits.usage_retention_days), MemoryWindowCounter()
    return Backends(
        conversations=conversations,
        replies=replies,
        bus=bus,
        presence=LocalPresence(registry),
        rate_limiter=rate_limiter,
        usage=usage,
        windows=windows,
        upstream_queue=MemoryUpstreamQueue(
            config.upstream.max_concurrent, config.upstream.queue_timeout_s
        ),
        turn_writes=SteppedTurnWrites(conversations, replies, bus, rate_limiter, windows, usage),
        images=images,
    )


def redis_backends(config: Config, redis: Redis, registry: Registry, instance: str) -> Backends:
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
    usage = RedisUsageStore(redis, keys.prefix, limits.usage_retention_days)
    windows = RedisWindowCounter(redis, keys.prefix)
    per_minute = limits.messages_per_minute
    return Backends(
        conversations=conversations,
        replies=replies,
        bus=bus,
        presence=presence,
        rate_limiter=RedisRateLimiter(redis, keys, per_minute),
        usage=usage,
        windows=windows,
        upstream_queue=RedisUpstreamQueue(
            redis, keys.prefix, config.upstream.max_concurrent, config.upstream.queue_timeout_s
        ),
        turn_writes=RedisTurnWrites(
            redis, keys, conversations, replies, bus, windows, usage, per_minute
        ),
        images=RedisImageStore(
            redis,
            keys,
            config.redis.history_ttl_s,
            limits.pending_images_cap,
            limits.pending_image_ttl_s,
        ),
    )
