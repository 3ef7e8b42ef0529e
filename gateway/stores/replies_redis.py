"""Reply logs in Redis Streams: produced once, followed from any instance, resumable anywhere.

The instance that reads the upstream keeps the :class:`~gateway.replies.ReplyLog` in memory,
writes its header (:data:`_HEADER`) before anyone is told of it, and hands it to its one
:class:`~.reply_publisher.ReplyPublisher`, which copies every running log to its stream by
group commit and lets viewers read only what a write made durable: whatever any viewer
received is in Redis, and a crash of this instance loses nothing a viewer saw.

Another instance that needs the reply (a viewer resumes there, a room member is there)
builds a *mirror* of it from the stream and follows it: that half of the store is
:class:`~.reply_mirrors.ReplyMirrors` (one reader task, watched marks, reaping the replies of
dead producers). :class:`RedisReplyStore` owns both.
"""

from __future__ import annotations

from redis.typing import EncodableT

from ..replies import ReplyLog
from .conversations import ConversationStore
from .redis_client import CommandLane, KeySpace, Redis, guarded
from .replies_memory import MemoryReplyStore
from .reply_mirrors import ReplyMirrors
from .reply_publisher import RUNNING_TTL_S, ReplyPublisher, end_fields

# KEYS: the reply's header. ARGV: its TTL (s), then its fields and values.
_HEADER = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class RedisReplyStore(MemoryReplyStore):
    """The memory store's logs, each also in Redis: see the module's docstring.

    Logs produced here are written by its :class:`~.reply_publisher.ReplyPublisher`;
    mirrors of other instances' replies are loaded, followed and reaped by its
    :class:`~.reply_mirrors.ReplyMirrors`, and held here like any log. :meth:`aclose` gives
    the publisher a grace to write what it holds, then the mirrors' tasks theirs, then
    stops every task.
    """

    def __init__(
        self,
        redis: Redis,
        keys: KeySpace,
        instance: str,
        resume_window_s: float,
        conversations: ConversationStore,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
        outage_grace_s: float = 0.0,
    ) -> None:
        super().__init__(resume_window_s)
        self._redis = redis
        self._k = keys
        self._instance = instance
        self._add_header = redis.register_script(_HEADER)
        self._lane = CommandLane(redis.connection_pool)
        self._publisher = ReplyPublisher(
            self._lane,
            keys,
            max(1000, int(resume_window_s * 1000)),
            wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms,
        )
        self._mirrors = ReplyMirrors(
            redis,
            keys,
            instance,
            self._lane,
            conversations,
            hold=self._hold,
            expire_later=self.expire_later,
            end_fields=end_fields,
            outage_grace_s=outage_grace_s,
        )

    # ---------------------------------------------------------------- producing here

    async def add(self, log_: ReplyLog) -> None:
        """Write the reply's header (before anyone is told of it), then publish its steps."""
        keys, args = self.header_request(log_)
        with guarded():
            await self._add_header(keys=keys, args=args)
        await self.produce_here(log_)

    def header_request(self, log_: ReplyLog) -> tuple[list[str], list[EncodableT]]:
        """:data:`_HEADER`'s keys and arguments for a reply produced here."""
        log_.mark_produced_by(self._instance)
        header: dict[str, EncodableT] = {
            "conversation_id": log_.conversation_id,
            "owner": log_.owner,
            "reply_to": log_.reply_to,
            "model": log_.model,
            "started_at": log_.started_at,
            "instance": self._instance,
        }
        return [self._k.reply(log_.message_id)], [
            RUNNING_TTL_S,
            *(x for kv in header.items() for x in kv),
        ]

    async def produce_here(self, log_: ReplyLog) -> None:
        """Once its header is written: hold the log and publish its steps as they come."""
        await super().add(log_)
        self._publisher.publish(log_)

    # ---------------------------------------------------------------- mirrors

    async def find(self, message_id: str) -> ReplyLog | None:
        local = self.get(message_id)
        if local is not None:
            return local
        return await self._mirrors.load(message_id)

    def _hold(self, mirror: ReplyLog) -> None:
        """Keep a mirror just loaded among the logs held here (what :meth:`get` finds)."""
        self._logs[mirror.message_id] = mirror

    async def watched_elsewhere(self, message_id: str) -> bool:
        return await self._mirrors.watched_elsewhere(message_id)

    async def forget(self, message_id: str) -> None:
        """Drop the reply here (nothing more of it is published) and its keys in Redis."""
        log_ = self.get(message_id)
        if log_ is not None:
            self._publisher.forget(log_)
        self._mirrors.unfollow(message_id)
        await super().forget(message_id)
        k = self._k
        with guarded():
            await self._redis.delete(
                k.reply(message_id), k.steps(message_id), k.watched(message_id)
            )

    async def reap_stale(self, message_id: str) -> None:
        """A claim replaced a reply whose instance died: mark what reached Redis as failed."""
        mirror = await self.find(message_id)
        if mirror is not None and not mirror.ended:
            await self._mirrors.reap(mirror)

    # ---------------------------------------------------------------- tasks

    async def aclose(self, grace_s: float = 2.0) -> None:
        """Let the publisher write what it holds (ends included) for ``grace_s``; stop the
        rest."""
        publisher = await self._publisher.aclose(grace_s)
        await self._mirrors.aclose(grace_s, alongside={publisher} if publisher else set())
        await self._publisher.disconnect()
        await self._lane.aclose()
        await super().aclose()
