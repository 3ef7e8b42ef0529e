"""Conversations in Redis: any instance reads and writes the same history and running reply.

A :class:`~gateway.conversations.Conversation` here is a snapshot: :meth:`get` reads it
whole (one script, :data:`~.conversations_lua._READ`), and each write goes to Redis and to
the snapshot in hand. Every write is one script of :mod:`.conversations_lua` (or one
pipeline), packed and read by :mod:`.conversations_redis_codec`; the snapshot is edited as
:mod:`.conversation_edits` says, like the memory store's conversations. The
one-reply-at-a-time rule and the idempotent client ids are decided in one Lua script
(``_CLAIM``), so two instances cannot both start a reply. A running reply whose instance
stopped heart-beating is stale: the next message replaces it.
"""

from __future__ import annotations

import time
from typing import Any, cast

from ..conversations import Claim, Conversation, HistoryMessage, SessionType, Status
from . import conversation_edits as edits
from .conversations_lua import (
    _ADD,
    _CLAIM,
    _CREATE_AND_READ,
    _DELETE,
    _END,
    _FORGET,
    _READ,
    _RENAME,
    _SETTLE,
    _TRUNCATE,
    _UPDATE,
)
from .conversations_redis_codec import RedisConversationCodec, header
from .redis_client import KeySpace, Redis, guarded


class RedisConversationStore:
    """Conversations in Redis (see the module's docstring), every key expiring
    ``ttl_s`` after its last write; nothing runs in the background. Each method is one
    round trip, or none where the snapshot shows there is nothing to write. ``codec``
    packs the scripts' calls, for :class:`~.turn_writes_redis.RedisTurnWrites` too."""

    def __init__(
        self, redis: Redis, keys: KeySpace, max_messages: int, ttl_s: float, live_id: str = ""
    ) -> None:
        self._redis = redis
        self._k = keys
        # live_id: this process's alive marker, if not the instance id itself
        self.codec = RedisConversationCodec(keys, max_messages, ttl_s, live_id)
        self._read = redis.register_script(_READ)
        self._create_and_read = redis.register_script(_CREATE_AND_READ)
        self._settle = redis.register_script(_SETTLE)
        self._add = redis.register_script(_ADD)
        self._update = redis.register_script(_UPDATE)
        self._claim = redis.register_script(_CLAIM)
        self._end = redis.register_script(_END)
        self._forget = redis.register_script(_FORGET)
        self._truncate = redis.register_script(_TRUNCATE)
        self._delete = redis.register_script(_DELETE)
        self._rename = redis.register_script(_RENAME)

    async def get(self, conversation_id: str) -> Conversation | None:
        with guarded():
            found = await self._read(
                keys=self.codec.read_keys(conversation_id), args=[self._k.alive_prefix]
            )
        return self.codec.snapshot(conversation_id, found)

    async def create(
        self, conversation_id: str, owner: str, session_type: SessionType, assistant: str
    ) -> Conversation:
        """Create it unless it exists, and read it back, in one script."""
        keys, args = self.codec.create_request(conversation_id, owner, session_type, assistant)
        with guarded():
            found = await self._create_and_read(keys=keys, args=args)
        conv = self.codec.snapshot(conversation_id, found)
        if conv is None:  # not created (an owner-less hash was there): what was asked for
            conv = Conversation(conversation_id, owner, session_type, assistant, members={owner})
        return conv

    async def join(self, conversation: Conversation, user: str) -> None:
        k = self._k
        with guarded():
            pipe = self._redis.pipeline(transaction=True)
            pipe.sadd(k.members(conversation.id), user)
            pipe.zadd(k.user_convs(user), {conversation.id: conversation.updated_at})
            pipe.expire(k.user_convs(user), self.codec.ttl)
            await pipe.execute()
        conversation.members.add(user)

    async def for_user(self, user: str) -> list[Conversation]:
        k = self._k
        with guarded():
            ids = cast(list[str], await self._redis.zrevrange(k.user_convs(user), 0, 199))
            if not ids:
                return []
            pipe = self._redis.pipeline(transaction=False)
            for cid in ids:
                pipe.hgetall(k.conv(cid))
                pipe.llen(k.order(cid))
            found: list[Any] = await pipe.execute()
            metas: list[dict[str, str]] = found[0::2]
            counts: list[int] = found[1::2]
            gone = [cid for cid, meta in zip(ids, metas, strict=True) if "owner" not in meta]
            if gone:
                await self._redis.zrem(k.user_convs(user), *gone)
        rows = []
        for cid, meta, count in zip(ids, metas, counts, strict=True):
            if "owner" in meta:
                row = header(cid, meta, {user})
                row.message_count = count
                rows.append(row)
        return rows

    async def add_messages(self, conversation: Conversation, *messages: HistoryMessage) -> None:
        keys, args, now, title = self.codec.add_request(conversation, messages)
        with guarded():
            await self._add(keys=keys, args=args)
        self.codec.added(conversation, messages, now, title)

    async def update_message(
        self,
        conversation: Conversation,
        message_id: str,
        content: str,
        status: Status,
        *,
        reasoning: str = "",
    ) -> None:
        request = self.codec.update_request(conversation, message_id, (content, status, reasoning))
        if request is None:
            return  # not in this snapshot: trimmed or cleared
        keys, args = request
        with guarded():
            await self._update(keys=keys, args=args)

    async def claim_reply(
        self,
        conversation: Conversation,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Claim:
        keys, args = self.codec.claim_request(
            conversation, message_id, client_id, instance, interrupt
        )
        with guarded():
            answer = await self._claim(keys=keys, args=args)
        return self.codec.claimed(conversation, answer, message_id, client_id)

    async def end_reply(self, conversation: Conversation, message_id: str) -> None:
        with guarded():
            await self._end(keys=[self._k.conv(conversation.id)], args=[message_id])
        edits.end_reply(conversation, message_id)

    async def settle_reply(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
    ) -> None:
        """:meth:`update_message` with ``text`` (content, status, reasoning) when given, then
        :meth:`end_reply`, in one script."""
        keys, args = self.codec.settle_request(conversation, message_id, text)
        with guarded():
            await self._settle(keys=keys, args=args)
        self.codec.settled(conversation, message_id)

    async def clear(self, conversation: Conversation) -> None:
        k, cid = self._k, conversation.id
        with guarded():
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(k.order(cid), k.msgs(cid), k.clients(cid))
            pipe.hset(k.conv(cid), "updated_at", time.time())
            await pipe.execute()
        edits.clear_history(conversation)

    async def replace_tail(
        self, conversation: Conversation, keep: int, *messages: HistoryMessage
    ) -> None:
        k, cid = self._k, conversation.id
        with guarded():
            await self._truncate(keys=[k.order(cid), k.msgs(cid)], args=[keep])
        edits.keep_first(conversation, keep)
        await self.add_messages(conversation, *messages)

    async def rename(self, conversation: Conversation, title: str) -> None:
        now = time.time()
        with guarded():
            await self._rename(keys=[self._k.conv(conversation.id)], args=[title, now])
        edits.rename(conversation, title, now)

    async def delete(self, conversation: Conversation) -> None:
        k, cid = self._k, conversation.id
        with guarded():
            await self._delete(keys=self.codec.read_keys(cid), args=[cid, k.user_prefix])
        edits.empty(conversation)

    async def forget_if_empty(self, conversation: Conversation) -> None:
        """Drop it in one script when it never had a message; no round trip when the snapshot
        in hand holds messages (:meth:`_had_messages`)."""
        if self._had_messages(conversation):
            return
        k, cid = self._k, conversation.id
        with guarded():
            await self._forget(
                keys=[
                    k.conv(cid),
                    k.members(cid),
                    k.order(cid),
                    k.clients(cid),
                    k.user_convs(conversation.owner),
                ],
                args=[cid],
            )

    @staticmethod
    def _had_messages(conversation: Conversation) -> bool:
        """Whether the snapshot holds messages: then the conversation had some and is no empty
        one to forget (the script would answer so), and the socket's close saves a round
        trip. (History cleared on another instance meanwhile leaves it to its TTL.)"""
        return bool(conversation.messages)

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        pass  # (the client is closed by its owner)
