"""One instance: conversations in this process, bounded by count, bytes and an idle TTL."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Container

from ..conversations import Claim, Conversation, HistoryMessage, SessionType, Status
from ..eviction import expired, to_evict


class MemoryConversationStore:
    """Everything in this process; history capped at ``max_messages`` per conversation.

    Bounded (0 turns a bound off): a conversation owned by an anonymous visitor is forgotten
    once idle for ``anonymous_ttl_s``, and past ``max_conversations`` conversations or
    ``max_bytes`` of history the least recently used idle ones are forgotten, down to 15/16
    of the bound (so the next pass is some way off). Idle: no reply running and no viewer on
    this instance (``viewed`` gives the ids of the conversations sockets are open on). Used:
    created, read, or written.
    """

    def __init__(
        self,
        max_messages: int,
        *,
        anonymous_ttl_s: float = 0.0,
        max_conversations: int = 0,
        max_bytes: int = 0,
        viewed: Callable[[], Container[str]] = frozenset,
        on_forget: Callable[[str], None] = lambda conversation_id: None,
    ) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._max = max_messages
        self._ttl = anonymous_ttl_s
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._viewed = viewed
        self._on_forget = on_forget  # what else goes with a conversation (its images)
        self._used: dict[str, float] = {}  # id -> time.monotonic() of last use, oldest first
        self._sizes: dict[str, int] = {}  # id -> bytes its history holds
        self._bytes = 0
        self._sweep: asyncio.TimerHandle | None = None
        self._retry_at = (0, 0)  # (count, bytes): see _bound

    def __len__(self) -> int:
        return len(self._conversations)

    async def run(self) -> None:
        pass  # (the sweep is a timer, armed by the first bounded conversation)

    async def aclose(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    @property
    def history_bytes(self) -> int:
        """About the bytes the histories hold (what ``max_bytes`` bounds)."""
        return self._bytes

    async def get(self, conversation_id: str) -> Conversation | None:
        conv = self._conversations.get(conversation_id)
        if conv is not None:
            self._use(conversation_id)
        return conv

    async def create(
        self, conversation_id: str, owner: str, session_type: SessionType, assistant: str
    ) -> Conversation:
        conv = self._conversations.get(conversation_id)
        if conv is None:
            conv = Conversation(conversation_id, owner, session_type, assistant, members={owner})
            self._conversations[conversation_id] = conv
            self._sizes[conversation_id] = CONVERSATION_BYTES
            self._bytes += CONVERSATION_BYTES
            self._use(conversation_id)
            self._bound(keep=conversation_id)
            if self._sweep is None and (self._ttl or self._max_conversations or self._max_bytes):
                self._arm_sweep()
        else:
            self._use(conversation_id)
        return conv

    async def join(self, conversation: Conversation, user: str) -> None:
        conversation.members.add(user)

    async def for_user(self, user: str) -> list[Conversation]:
        found = [c for c in self._conversations.values() if user in c.members]
        return sorted(found, key=lambda c: c.updated_at, reverse=True)

    async def add_messages(self, conversation: Conversation, *messages: HistoryMessage) -> None:
        conversation.messages.extend(messages)
        if len(conversation.messages) > self._max:
            del conversation.messages[: len(conversation.messages) - self._max]
        if len(conversation.replies_by_client_id) > self._max:  # the newest ids are kept
            ids = conversation.replies_by_client_id
            for client_id in list(ids)[: len(ids) - self._max]:
                del ids[client_id]
        conversation.updated_at = time.time()
        for message in messages:
            if not conversation.title and message.role == "user":
                conversation.title = message.content[:80]
        self._written(conversation)

    async def update_message(
        self,
        conversation: Conversation,
        message_id: str,
        content: str,
        status: Status,
        *,
        reasoning: str = "",
    ) -> None:
        for message in reversed(conversation.messages):
            if message.id == message_id:
                message.content = content
                message.status = status
                message.reasoning = reasoning
                self._written(conversation)
                return

    async def claim_reply(
        self,
        conversation: Conversation,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Claim:
        seen = conversation.replies_by_client_id.get(client_id)
        if seen is not None:
            return Claim("duplicate", seen)
        previous = conversation.running
        if previous is not None and not interrupt:
            return Claim("busy", previous)
        conversation.running = message_id
        conversation.replies_by_client_id[client_id] = message_id
        return Claim("started", previous)

    async def end_reply(self, conversation: Conversation, message_id: str) -> None:
        if conversation.running == message_id:
            conversation.running = None

    async def settle_reply(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
    ) -> None:
        if text is not None:
            content, status, reasoning = text
            await self.update_message(
                conversation, message_id, content, status, reasoning=reasoning
            )
        await self.end_reply(conversation, message_id)

    async def forget_if_empty(self, conversation: Conversation) -> None:
        """(Its last viewer here left: an idle time starts now.)"""
        if not conversation.messages and conversation.running is None:
            self._forget(conversation.id)
        elif self._conversations.get(conversation.id) is conversation:
            self._use(conversation.id)

    async def clear(self, conversation: Conversation) -> None:
        conversation.messages.clear()
        conversation.replies_by_client_id.clear()
        conversation.updated_at = time.time()
        self._written(conversation)

    async def replace_tail(
        self, conversation: Conversation, keep: int, *messages: HistoryMessage
    ) -> None:
        del conversation.messages[keep:]
        await self.add_messages(conversation, *messages)

    async def rename(self, conversation: Conversation, title: str) -> None:
        conversation.title = title
        conversation.updated_at = time.time()
        self._written(conversation)

    async def delete(self, conversation: Conversation) -> None:
        self._forget(conversation.id)
        conversation.messages.clear()
        conversation.replies_by_client_id.clear()
        conversation.running = None

    # ---------------------------------------------------------------- bounds

    def _use(self, conversation_id: str) -> None:
        self._used.pop(conversation_id, None)
        self._used[conversation_id] = time.monotonic()

    def _written(self, conversation: Conversation) -> None:
        """Count the history's bytes again (a write); forget others if past the budget."""
        if self._conversations.get(conversation.id) is not conversation:
            return  # forgotten meanwhile: counts for nothing here
        size = CONVERSATION_BYTES + sum(message_bytes(m) for m in conversation.messages)
        self._bytes += size - self._sizes.get(conversation.id, 0)
        self._sizes[conversation.id] = size
        self._use(conversation.id)
        self._bound()

    def _forget(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)
        self._used.pop(conversation_id, None)
        self._bytes -= self._sizes.pop(conversation_id, 0)
        self._on_forget(conversation_id)

    def _busy(self, keep: str | None = None) -> Callable[[str], bool]:
        viewed = self._viewed()
        conversations = self._conversations

        def busy(conversation_id: str) -> bool:
            conv = conversations[conversation_id]
            return conv.running is not None or conversation_id in viewed or conversation_id == keep

        return busy

    def _bound(self, keep: str | None = None) -> None:
        """Forget the least recently used idle conversations if a bound is passed (never
        ``keep``: one being created, whose socket is not registered yet). A pass that could
        not get under a bound (everything in use) is not tried again until the store has
        grown by a sixteenth of it, or the next sweep."""
        max_count, max_bytes = self._max_conversations, self._max_bytes
        count, size = len(self._conversations), self._bytes
        if not (max_count and count > max_count) and not (max_bytes and size > max_bytes):
            return
        if count < self._retry_at[0] and size < self._retry_at[1]:
            return
        for conversation_id in to_evict(
            ((key, self._sizes[key]) for key in self._used),
            self._busy(keep),
            count=count,
            size=size,
            max_count=max_count - max_count // 16,
            max_bytes=max_bytes - max_bytes // 16,
        ):
            self._forget(conversation_id)
        count, size = len(self._conversations), self._bytes
        if (max_count and count > max_count) or (max_bytes and size > max_bytes):
            self._retry_at = (count + max_count // 16 + 1, size + max_bytes // 16 + 1)

    def _arm_sweep(self) -> None:
        interval = min(SWEEP_MAX_S, max(self._ttl / 4, SWEEP_MIN_S)) if self._ttl else SWEEP_MAX_S
        self._sweep = asyncio.get_running_loop().call_later(interval, self._expire)

    def _expire(self) -> None:
        """The sweep: forget the anonymous visitors' conversations idle past the TTL, and
        try the bounds again (viewers may have left)."""
        self._sweep = None
        conversations = self._conversations
        if self._ttl:
            busy = self._busy()
            for conversation_id in expired(
                self._used.items(),
                lambda key: busy(key) or not is_anonymous(conversations[key].owner),
                before=time.monotonic() - self._ttl,
            ):
                self._forget(conversation_id)
        self._retry_at = (0, 0)
        self._bound()
        if conversations:
            self._arm_sweep()


# What a conversation and a history message cost beyond their text (objects, ids, slots).
CONVERSATION_BYTES = 1024
MESSAGE_BYTES = 256
SWEEP_MIN_S = 0.05
SWEEP_MAX_S = 60.0
ANONYMOUS_PREFIX = "anon-"  # of the ids :func:`gateway.auth.new_anonymous_id` makes


def is_anonymous(user: str) -> bool:
    """Whether ``user`` is an anonymous visitor (their conversations expire when idle)."""
    return user.startswith(ANONYMOUS_PREFIX)


def message_bytes(message: HistoryMessage) -> int:
    """About what a history message holds: its text as Python keeps it (1, 2 or 4 bytes a
    character: one emoji makes every character of a long reply 4 bytes), and the rest."""
    size = sys.getsizeof(message.content) + MESSAGE_BYTES
    return size + sys.getsizeof(message.reasoning) if message.reasoning else size
