"""One instance: conversations in this process, bounded by count, bytes and an idle TTL."""

from __future__ import annotations

import time
from collections.abc import Callable, Container

from ..conversations import Claim, Conversation, HistoryMessage, SessionType, Status
from . import conversation_edits as edits
from .conversations_bounds import BoundedConversations


class MemoryConversationStore:
    """Everything in this process; history capped at ``max_messages`` per conversation.

    The conversations handed out are the ones kept: each write is an edit of
    :mod:`.conversation_edits` on them, so the claim is atomic by being synchronous. They
    are bounded (an anonymous visitor's idle TTL, a count, bytes) by
    :class:`~.conversations_bounds.BoundedConversations`, which this store tells of each
    use and write; client ids seen are kept for the newest ``max_messages`` too.
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
        self._max = max_messages
        self._kept = BoundedConversations(
            anonymous_ttl_s=anonymous_ttl_s,
            max_conversations=max_conversations,
            max_bytes=max_bytes,
            viewed=viewed,
            on_forget=on_forget,
        )

    def __len__(self) -> int:
        return len(self._kept)

    async def run(self) -> None:
        pass  # (the sweep is a timer, armed by the first bounded conversation)

    async def aclose(self) -> None:
        self._kept.close()

    @property
    def history_bytes(self) -> int:
        """About the bytes the histories hold (what ``max_bytes`` bounds)."""
        return self._kept.history_bytes

    async def get(self, conversation_id: str) -> Conversation | None:
        conv = self._kept.get(conversation_id)
        if conv is not None:
            self._kept.use(conversation_id)
        return conv

    async def create(
        self, conversation_id: str, owner: str, session_type: SessionType, assistant: str
    ) -> Conversation:
        conv = self._kept.get(conversation_id)
        if conv is None:
            conv = Conversation(conversation_id, owner, session_type, assistant, members={owner})
            self._kept.put(conv)
        else:
            self._kept.use(conversation_id)
        return conv

    async def join(self, conversation: Conversation, user: str) -> None:
        conversation.members.add(user)

    async def for_user(self, user: str) -> list[Conversation]:
        found = [c for c in self._kept.values() if user in c.members]
        return sorted(found, key=lambda c: c.updated_at, reverse=True)

    async def add_messages(self, conversation: Conversation, *messages: HistoryMessage) -> None:
        title = edits.new_title(conversation, messages)
        edits.append(conversation, messages, max_messages=self._max, now=time.time(), title=title)
        if len(conversation.replies_by_client_id) > self._max:  # the newest ids are kept
            ids = conversation.replies_by_client_id
            for client_id in list(ids)[: len(ids) - self._max]:
                del ids[client_id]
        self._kept.written(conversation)

    async def update_message(
        self,
        conversation: Conversation,
        message_id: str,
        content: str,
        status: Status,
        *,
        reasoning: str = "",
    ) -> None:
        if edits.set_text(conversation, message_id, content, status, reasoning) is not None:
            self._kept.written(conversation)

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
        return edits.mark_claimed(conversation, Claim("started", previous), message_id, client_id)

    async def end_reply(self, conversation: Conversation, message_id: str) -> None:
        edits.end_reply(conversation, message_id)

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
            self._kept.forget(conversation.id)
        elif self._kept.holds(conversation):
            self._kept.use(conversation.id)

    async def clear(self, conversation: Conversation) -> None:
        edits.clear_history(conversation)
        conversation.updated_at = time.time()
        self._kept.written(conversation)

    async def replace_tail(
        self, conversation: Conversation, keep: int, *messages: HistoryMessage
    ) -> None:
        edits.keep_first(conversation, keep)
        await self.add_messages(conversation, *messages)

    async def rename(self, conversation: Conversation, title: str) -> None:
        edits.rename(conversation, title, time.time())
        self._kept.written(conversation)

    async def delete(self, conversation: Conversation) -> None:
        self._kept.forget(conversation.id)
        edits.empty(conversation)
