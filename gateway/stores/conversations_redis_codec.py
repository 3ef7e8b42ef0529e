"""How the Redis conversation store talks to its scripts, without talking to Redis.

A history message is kept as JSON (:func:`encode_message`); a conversation's header as a
hash. Each script of :mod:`.conversations_lua` is sent the keys and arguments packed here
and its answer is read here, into the snapshot in hand. The store runs the scripts one
call at a time; :class:`~.turn_writes_redis.RedisTurnWrites` runs :data:`_ADD`,
:data:`_CLAIM` and :data:`_SETTLE` inside its own, with the same packing, so a turn and a
call write the same.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from ..conversations import Claim, Conversation, HistoryMessage, ImageRef, SessionType, Status
from . import conversation_edits as edits
from .redis_client import KeySpace


class RedisConversationCodec:
    """The keys and arguments of each conversation script, and what its answer makes of
    the snapshot: ``*_request`` packs a script's call (and makes the snapshot's own part of
    the edit, where the script needs the result), the matching past-tense method applies
    the answer. Only the clock is read; the history kept is the newest ``max_messages``,
    every key expiring ``ttl_s`` (at least 1 s) after its last write; a claim names
    ``live_id`` (this process's alive marker), when given, instead of the instance."""

    def __init__(self, keys: KeySpace, max_messages: int, ttl_s: float, live_id: str = "") -> None:
        self._k = keys
        self._max = max_messages
        self.ttl = max(1, int(ttl_s))
        self._live_id = live_id

    def read_keys(self, cid: str) -> list[str]:
        """:data:`_READ`'s keys (whose last argument is ``keys.alive_prefix``)."""
        k = self._k
        return [k.conv(cid), k.members(cid), k.order(cid), k.msgs(cid), k.clients(cid)]

    @staticmethod
    def snapshot(cid: str, found: list[Any]) -> Conversation | None:
        """The conversation from :data:`_READ`'s answer; ``None`` when there is none."""
        meta_flat, members, order, msgs_flat, clients_flat, alive = found
        meta = pairs(meta_flat)
        if "owner" not in meta:
            return None
        msgs = pairs(msgs_flat)
        conv = header(cid, meta, set(members))
        conv.messages = [decode_message(msgs[i]) for i in order if i in msgs]
        conv.replies_by_client_id = pairs(clients_flat)
        # A running reply whose instance died is none: the next message replaces it.
        conv.running = (meta.get("running") or None) if alive else None
        return conv

    def create_request(
        self, cid: str, owner: str, session_type: SessionType, assistant: str
    ) -> tuple[list[str], list[Any]]:
        """:data:`_CREATE_AND_READ`'s keys and arguments (its answer: :meth:`snapshot`)."""
        k = self._k
        keys = [*self.read_keys(cid), k.user_convs(owner)]
        args = [*(owner, session_type, assistant, time.time(), cid), *(self.ttl, k.alive_prefix)]
        return keys, args

    def add_request(
        self, conversation: Conversation, messages: tuple[HistoryMessage, ...]
    ) -> tuple[list[str], list[Any], float, str]:
        """:data:`_ADD`'s keys and arguments for ``messages``, with the time and the title
        :meth:`added` puts in the snapshot once the script has run."""
        k, cid, now = self._k, conversation.id, time.time()
        title = edits.new_title(conversation, messages)
        fields = [field for m in messages for field in (m.id, encode_message(m))]
        keys = [k.order(cid), k.msgs(cid), k.conv(cid), k.members(cid)]
        return keys, [self._max, now, title, self.ttl, k.user_prefix, cid, *fields], now, title

    def added(
        self,
        conversation: Conversation,
        messages: tuple[HistoryMessage, ...],
        now: float,
        title: str,
    ) -> None:
        """The snapshot after :data:`_ADD` stored ``messages``."""
        edits.append(conversation, messages, max_messages=self._max, now=now, title=title)

    def update_request(
        self, conversation: Conversation, message_id: str, text: tuple[str, Status, str]
    ) -> tuple[list[str], list[str]] | None:
        """:data:`_UPDATE`'s keys and arguments, the snapshot's message given ``text``
        (content, status, reasoning) now; None when the snapshot no longer holds it
        (trimmed or cleared: nothing to send)."""
        message = edits.set_text(conversation, message_id, *text)
        if message is None:
            return None
        return [self._k.msgs(conversation.id)], [message_id, encode_message(message)]

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
            *(k.alive_prefix, self.ttl),
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
            encoded = encode_message(message) if message is not None else ""
        k = self._k
        return [k.msgs(conversation.id), k.conv(conversation.id)], [message_id, encoded]

    @staticmethod
    def settled(conversation: Conversation, message_id: str) -> None:
        """The snapshot after :data:`_SETTLE` freed the claim."""
        edits.end_reply(conversation, message_id)


def encode_message(message: HistoryMessage) -> str:
    """A history message as the JSON its hash field holds (``reasoning`` only when set)."""
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


def decode_message(raw: str) -> HistoryMessage:
    """:func:`encode_message`'s JSON back (fields added since default when missing)."""
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


def pairs(flat: list[str]) -> dict[str, str]:
    """An ``HGETALL`` answer (field, value, field, value...) as a dict."""
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def header(cid: str, meta: dict[str, str], members: set[str]) -> Conversation:
    """A conversation without history from its hash (``meta``) and ``members``."""
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
