"""Conversations in Redis: any instance reads and writes the same history and running reply.

A :class:`~gateway.conversations.Conversation` here is a snapshot: :meth:`get` reads it
whole (one script, :data:`_READ`), and each write goes to Redis and to the snapshot in
hand. The one-reply-at-a-time rule and the idempotent client ids are decided in one Lua
script (:data:`_CLAIM`), so two instances cannot both start a reply. A running reply whose
instance stopped heart-beating is stale: the next message replaces it.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from ..conversations import Claim, Conversation, HistoryMessage, ImageRef, SessionType, Status
from . import conversation_edits as edits
from .redis_client import KeySpace, Redis, guarded

# The conversation whole, in one answer: its header, members, history order, messages and
# client ids, and whether the instance of its running reply is alive (1 or 0). KEYS: conv,
# members, order, msgs, clients; the last ARGV is the alive key prefix.
_READ = """
local alive = 0
local running = redis.call('HGET', KEYS[1], 'running')
if running and running ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'running_instance') or ''
  alive = redis.call('EXISTS', ARGV[#ARGV] .. owner .. '}')
end
return {redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[2]),
        redis.call('LRANGE', KEYS[3], 0, -1), redis.call('HGETALL', KEYS[4]),
        redis.call('HGETALL', KEYS[5]), alive}
"""

# Create it unless it exists, then _READ. KEYS: conv, members, order, msgs, clients,
# user_convs. ARGV: owner, session_type, assistant, now, id, ttl, alive key prefix.
_CREATE_AND_READ = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'session_type', ARGV[2], 'assistant', ARGV[3],
             'created_at', ARGV[4], 'updated_at', ARGV[4], 'title', '')
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[5])
  redis.call('EXPIRE', KEYS[6], ARGV[6])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
"""
    + _READ
)

# KEYS: order, msgs, conv, members. ARGV: max, now, title, ttl, user key prefix, conversation
# id, then id and JSON of each message. Every member's list of conversations is touched too
# (the key is built here: one Redis primary, no cluster slots to respect).
_ADD = """
for i = 7, #ARGV, 2 do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local extra = redis.call('LLEN', KEYS[1]) - tonumber(ARGV[1])
for _ = 1, extra do
  redis.call('HDEL', KEYS[2], redis.call('LPOP', KEYS[1]))
end
redis.call('HSET', KEYS[3], 'updated_at', ARGV[2])
if ARGV[3] ~= '' and (redis.call('HGET', KEYS[3], 'title') or '') == '' then
  redis.call('HSET', KEYS[3], 'title', ARGV[3])
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
for _, member in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local list = ARGV[5] .. member .. '}:convs'
  redis.call('ZADD', list, ARGV[2], ARGV[6])
  redis.call('EXPIRE', list, ARGV[4])
end
return 1
"""

# KEYS: msgs. ARGV: id, json. A message gone (trimmed, reset) stays gone.
_UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: conv, clients. ARGV: message id, client id, instance, interrupt, alive key prefix, ttl
_CLAIM = """
local seen = redis.call('HGET', KEYS[2], ARGV[2])
if seen then return {'duplicate', seen, '0'} end
local current = redis.call('HGET', KEYS[1], 'running')
local outcome = {'started', '', '0'}
if current and current ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'running_instance') or ''
  local live = redis.call('EXISTS', ARGV[5] .. owner .. '}') == 1
  if live and ARGV[4] ~= '1' then return {'busy', current, '0'} end
  outcome = {'started', current, live and '0' or '1'}
end
redis.call('HSET', KEYS[1], 'running', ARGV[1], 'running_instance', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return outcome
"""

# _UPDATE, then _END: KEYS: msgs, conv. ARGV: message id, JSON ('': no text to store)
_SETTLE = """
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
if redis.call('HGET', KEYS[2], 'running') == ARGV[1] then
  redis.call('HDEL', KEYS[2], 'running', 'running_instance')
end
return 1
"""

# KEYS: conv. ARGV: message id
_END = """
if redis.call('HGET', KEYS[1], 'running') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'running', 'running_instance')
  return 1
end
return 0
"""

# KEYS: conv, members, order, clients, user_convs. ARGV: id
_FORGET = """
if redis.call('LLEN', KEYS[3]) > 0 or (redis.call('HGET', KEYS[1], 'running') or '') ~= '' then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""

# KEYS: order, msgs. ARGV: keep. The history after its first ``keep`` messages is dropped.
_TRUNCATE = """
local keep = tonumber(ARGV[1])
for _, id in ipairs(redis.call('LRANGE', KEYS[1], keep, -1)) do
  redis.call('HDEL', KEYS[2], id)
end
if keep == 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, keep - 1) end
return 1
"""

# KEYS: conv. ARGV: title, now. A conversation deleted meanwhile stays deleted.
_RENAME = """
if redis.call('HEXISTS', KEYS[1], 'owner') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'updated_at', ARGV[2])
return 1
"""

# KEYS: conv, members, order, msgs, clients. ARGV: id, user key prefix
_DELETE = """
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZREM', ARGV[2] .. member .. '}:convs', ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
"""


def _encode(message: HistoryMessage) -> str:
    body = {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": message.created_at,
        "user": message.user,
        "client_id": message.client_id,
        "images": [[i.id, i.media_type, i.bytes, i.url] for i in message.images],
    }
    if message.reasoning:
        body["reasoning"] = message.reasoning
    return json.dumps(body, ensure_ascii=False)


def _decode(raw: str) -> HistoryMessage:
    body = json.loads(raw)
    return HistoryMessage(
        body["id"],
        body["role"],
        body["content"],
        body["status"],
        float(body["created_at"]),
        user=body.get("user", ""),
        client_id=body.get("client_id", ""),
        reasoning=body.get("reasoning", ""),
        images=tuple(ImageRef(*image) for image in body.get("images", ())),
    )


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _header(cid: str, meta: dict[str, str], members: set[str]) -> Conversation:
    return Conversation(
        id=cid,
        owner=meta["owner"],
        session_type=cast(SessionType, meta["session_type"]),
        assistant=meta["assistant"],
        created_at=float(meta["created_at"]),
        updated_at=float(meta["updated_at"]),
        title=meta.get("title", ""),
        members=members,
    )


class RedisConversationStore:
    """Conversations in Redis (see the module's docstring), every key expiring
    ``ttl_s`` after its last write; nothing runs in the background."""

    def __init__(
        self, redis: Redis, keys: KeySpace, max_messages: int, ttl_s: float, live_id: str = ""
    ) -> None:
        self._redis = redis
        self._live_id = live_id  # this process's alive marker, if not the instance id itself
        self._k = keys
        self._max = max_messages
        self._ttl = max(1, int(ttl_s))
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
                keys=self._read_keys(conversation_id), args=[self._k.alive_prefix]
            )
        return self._snapshot(conversation_id, found)

    def _read_keys(self, cid: str) -> list[str]:
        k = self._k
        return [k.conv(cid), k.members(cid), k.order(cid), k.msgs(cid), k.clients(cid)]

    @staticmethod
    def _snapshot(cid: str, found: list[Any]) -> Conversation | None:
        """The conversation from :data:`_READ`'s answer; ``None`` when there is none."""
        meta_flat, members, order, msgs_flat, clients_flat, alive = found
        meta = _pairs(meta_flat)
        if "owner" not in meta:
            return None
        msgs = _pairs(msgs_flat)
        conv = _header(cid, meta, set(members))
        conv.messages = [_decode(msgs[i]) for i in order if i in msgs]
        conv.replies_by_client_id = _pairs(clients_flat)
        # A running reply whose instance died is none: the next message replaces it.
        conv.running = (meta.get("running") or None) if alive else None
        return conv

    async def create(
        self, conversation_id: str, owner: str, session_type: SessionType, assistant: str
    ) -> Conversation:
        """Create it unless it exists, and read it back, in one script."""
        k = self._k
        with guarded():
            found = await self._create_and_read(
                keys=[*self._read_keys(conversation_id), k.user_convs(owner)],
                args=[
                    *(owner, session_type, assistant, time.time(), conversation_id),
                    *(self._ttl, k.alive_prefix),
                ],
            )
        conv = self._snapshot(conversation_id, found)
        if conv is None:  # not created (an owner-less hash was there): what was asked for
            conv = Conversation(conversation_id, owner, session_type, assistant, members={owner})
        return conv

    async def join(self, conversation: Conversation, user: str) -> None:
        k = self._k
        with guarded():
            pipe = self._redis.pipeline(transaction=True)
            pipe.sadd(k.members(conversation.id), user)
            pipe.zadd(k.user_convs(user), {conversation.id: conversation.updated_at})
            pipe.expire(k.user_convs(user), self._ttl)
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
                row = _header(cid, meta, {user})
                row.message_count = count
                rows.append(row)
        return rows

    async def add_messages(self, conversation: Conversation, *messages: HistoryMessage) -> None:
        keys, args, now, title = self.add_request(conversation, messages)
        with guarded():
            await self._add(keys=keys, args=args)
        self.added(conversation, messages, now, title)

    def add_request(
        self, conversation: Conversation, messages: tuple[HistoryMessage, ...]
    ) -> tuple[list[str], list[Any], float, str]:
        """:data:`_ADD`'s keys and arguments for ``messages``, with the time and the title
        :meth:`added` puts in the snapshot once the script has run."""
        k, cid, now = self._k, conversation.id, time.time()
        title = edits.new_title(conversation, messages)
        pairs = [field for m in messages for field in (m.id, _encode(m))]
        keys = [k.order(cid), k.msgs(cid), k.conv(cid), k.members(cid)]
        return keys, [self._max, now, title, self._ttl, k.user_prefix, cid, *pairs], now, title

    def added(
        self,
        conversation: Conversation,
        messages: tuple[HistoryMessage, ...],
        now: float,
        title: str,
    ) -> None:
        """The snapshot after :data:`_ADD` stored ``messages``."""
        edits.append(conversation, messages, max_messages=self._max, now=now, title=title)

    async def update_message(
        self,
        conversation: Conversation,
        message_id: str,
        content: str,
        status: Status,
        *,
        reasoning: str = "",
    ) -> None:
        message = edits.set_text(conversation, message_id, content, status, reasoning)
        if message is None:
            return  # not in this snapshot: trimmed or cleared
        with guarded():
            await self._update(
                keys=[self._k.msgs(conversation.id)], args=[message_id, _encode(message)]
            )

    async def claim_reply(
        self,
        conversation: Conversation,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Claim:
        keys, args = self.claim_request(conversation, message_id, client_id, instance, interrupt)
        with guarded():
            answer = await self._claim(keys=keys, args=args)
        return self.claimed(conversation, answer, message_id, client_id)

    def claim_request(
        self,
        conversation: Conversation,
        message_id: str,
        client_id: str,
        instance: str,
        interrupt: bool,
    ) -> tuple[list[str], list[Any]]:
        """:data:`_CLAIM`'s keys and arguments."""
        k = self._k
        keys = [k.conv(conversation.id), k.clients(conversation.id)]
        args = [
            *(message_id, client_id, self._live_id or instance, int(interrupt)),
            *(k.alive_prefix, self._ttl),
        ]
        return keys, args

    @staticmethod
    def claimed(
        conversation: Conversation, answer: list[str], message_id: str, client_id: str
    ) -> Claim:
        """The claim :data:`_CLAIM` answered, applied to the snapshot."""
        outcome, previous, stale = answer
        claim = Claim(cast(Any, outcome), previous or None, stale == "1")
        return edits.mark_claimed(conversation, claim, message_id, client_id)

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
        keys, args = self.settle_request(conversation, message_id, text)
        with guarded():
            await self._settle(keys=keys, args=args)
        self.settled(conversation, message_id)

    def settle_request(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
    ) -> tuple[list[str], list[str]]:
        """:data:`_SETTLE`'s keys and arguments (the snapshot's message gets ``text`` now)."""
        encoded = ""
        if text is not None:
            message = edits.set_text(conversation, message_id, *text)
            encoded = _encode(message) if message is not None else ""
        k = self._k
        return [k.msgs(conversation.id), k.conv(conversation.id)], [message_id, encoded]

    @staticmethod
    def settled(conversation: Conversation, message_id: str) -> None:
        """The snapshot after :data:`_SETTLE` freed the claim."""
        edits.end_reply(conversation, message_id)

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
            await self._delete(
                keys=[k.conv(cid), k.members(cid), k.order(cid), k.msgs(cid), k.clients(cid)],
                args=[cid, k.user_prefix],
            )
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
