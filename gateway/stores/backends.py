"""The set of shared-state implementations one instance runs with: memory, or Redis."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..registry import Registry
from ..tasks import TaskOwner
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


@dataclass(frozen=True, slots=True)
class Backends:
    """One implementation of each seam, and their lifecycle as one.

    :meth:`run` starts every backend's ``run()`` as a task and returns; :meth:`aclose`
    closes the replies first (a publisher writes what it holds), then stops those tasks,
    then closes the other backends (presence leaves at once).
    """

    conversations: ConversationStore
    replies: ReplyStore
    bus: Bus
    presence: Presence
    rate_limiter: RateLimiter
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
    images = MemoryImageStore()
    conversations = MemoryConversationStore(
        limits.history_max_messages,
        anonymous_ttl_s=limits.anonymous_history_ttl_s,
        max_conversations=limits.memory_max_conversations,
        max_bytes=limits.memory_max_history_bytes,
        viewed=lambda: {conn.conversation_id for conn in registry},
        on_forget=images.forget,
    )
    return Backends(
        conversations=conversations,
        replies=MemoryReplyStore(limits.resume_window_s, limits.memory_max_reply_bytes),
        bus=LocalBus(),
        presence=LocalPresence(registry),
        rate_limiter=MemoryRateLimiter(limits.messages_per_minute),
        images=images,
    )


def redis_backends(config: Config, redis: Redis, registry: Registry, instance: str) -> Backends:
    limits, keys = config.limits, KeySpace(config.redis.key_prefix)
    conversations = RedisConversationStore(
        redis, keys, limits.history_max_messages, config.redis.history_ttl_s
    )
    presence = RedisPresence(redis, keys, instance, registry, config.redis.heartbeat_s)
    bus = RedisBus(redis, keys.events, instance)
    return Backends(
        conversations=conversations,
        replies=RedisReplyStore(redis, keys, instance, limits.resume_window_s, conversations),
        bus=bus,
        presence=presence,
        rate_limiter=RedisRateLimiter(redis, keys, limits.messages_per_minute),
        images=RedisImageStore(redis, keys, config.redis.history_ttl_s),
    )
