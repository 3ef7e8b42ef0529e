"""Conversations: who owns them, who is in them, their history, and their running reply.

The :class:`ConversationStore` protocol is the seam for shared state; this module holds
the in-memory implementation (one instance). History messages carry a ``status``
(contract section 6): a user message is ``complete``; an assistant message is
``running`` while it streams, then ``complete`` (stop), ``incomplete`` (length, cut at
shutdown, or stopped after its viewers left), ``cancelled`` (cancel, interrupt, reset) or
``failed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .auth import random_token
from .protocol import iso

SessionType = Literal["person", "group"]
Status = Literal["complete", "incomplete", "cancelled", "failed", "running"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`ConversationStore.claim_reply` decided, atomically.

    ``started``: the new reply is the conversation's running one; ``previous`` is the
    reply it replaced (an interrupt, or a stale one whose instance died: ``stale``).
    ``duplicate``: the client id was seen; ``previous`` is that message's reply.
    ``busy``: another reply runs and the message did not ask to interrupt it.
    """

    outcome: Literal["started", "duplicate", "busy"]
    previous: str | None = None
    stale: bool = False


def new_id(prefix: str) -> str:
    """``prefix-`` and 16 URL-safe characters: 96 random bits (ids made per socket and turn)."""
    return f"{prefix}-{random_token(16)}"


@dataclass(slots=True)
class HistoryMessage:
    id: str
    role: Literal["user", "assistant"]
    content: str
    status: Status
    created_at: float
    user: str = ""  # the author of a user message
    client_id: str = ""  # the client's own id of a user message

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "created_at": iso(self.created_at),
        }


@dataclass(slots=True)
class Conversation:
    id: str
    owner: str
    session_type: SessionType
    assistant: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    title: str = ""
    members: set[str] = field(default_factory=set)
    messages: list[HistoryMessage] = field(default_factory=list)
    running: str | None = None  # message id of the reply in progress
    replies_by_client_id: dict[str, str] = field(default_factory=dict)

    def may_view(self, user: str, *, admin: bool = False) -> bool:
        if admin or user == self.owner:
            return True
        return self.session_type == "group" and user in self.members

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "assistant": self.assistant,
            "session_type": self.session_type,
            "title": self.title,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


class ConversationStore(Protocol):
    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def create(
        self, conversation_id: str, owner: str, session_type: SessionType, assistant: str
    ) -> Conversation: ...

    async def join(self, conversation: Conversation, user: str) -> None: ...

    async def for_user(self, user: str) -> list[Conversation]: ...

    async def add_messages(self, conversation: Conversation, *messages: HistoryMessage) -> None:
        """Append to the history (one write for a turn's user message and reply placeholder)."""
        ...

    async def update_message(
        self, conversation: Conversation, message_id: str, content: str, status: Status
    ) -> None: ...

    async def claim_reply(
        self,
        conversation: Conversation,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Claim:
        """Make ``message_id`` the running reply unless one runs (or the id was seen)."""
        ...

    async def transfer(self, conversation: Conversation, user: str) -> None:
        """An empty anonymous conversation becomes a signed-in user's (re-authentication)."""
        ...

    async def end_reply(self, conversation: Conversation, message_id: str) -> None: ...

    async def clear(self, conversation: Conversation) -> None: ...

    async def forget_if_empty(self, conversation: Conversation) -> None:
        """Drop a conversation that never had a message (a socket opened and closed)."""
        ...


class MemoryConversationStore:
    """Everything in this process; history capped at ``max_messages`` per conversation."""

    def __init__(self, max_messages: int) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._max = max_messages

    async def get(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    async def create(
        self, conversation_id: str, owner: str, session_type: SessionType, assistant: str
    ) -> Conversation:
        conv = self._conversations.get(conversation_id)
        if conv is None:
            conv = Conversation(conversation_id, owner, session_type, assistant, members={owner})
            self._conversations[conversation_id] = conv
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
        conversation.updated_at = time.time()
        for message in messages:
            if not conversation.title and message.role == "user":
                conversation.title = message.content[:80]

    async def update_message(
        self, conversation: Conversation, message_id: str, content: str, status: Status
    ) -> None:
        for message in reversed(conversation.messages):
            if message.id == message_id:
                message.content = content
                message.status = status
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

    async def transfer(self, conversation: Conversation, user: str) -> None:
        conversation.owner = user
        conversation.members = {user}

    async def end_reply(self, conversation: Conversation, message_id: str) -> None:
        if conversation.running == message_id:
            conversation.running = None

    async def forget_if_empty(self, conversation: Conversation) -> None:
        if not conversation.messages and conversation.running is None:
            self._conversations.pop(conversation.id, None)

    async def clear(self, conversation: Conversation) -> None:
        conversation.messages.clear()
        conversation.replies_by_client_id.clear()
        conversation.updated_at = time.time()
