"""The conversations seam: history, membership and the running reply, kept for every instance."""

from __future__ import annotations

from typing import Protocol

from ..conversations import Claim, Conversation, HistoryMessage, SessionType, Status
from .lifecycle import Lifecycle


class ConversationStore(Lifecycle, Protocol):
    """Where conversations live, for every instance that shares them.

    ``get`` answers None for an unknown id; ``create`` returns the existing conversation
    if the id is taken. Writes go to the store and to the :class:`Conversation` in hand.
    :meth:`claim_reply` is atomic across instances: one reply runs per conversation, and a
    client id starts at most one. Trouble in shared state raises
    :class:`~gateway.errors.StoreUnavailable`.
    """

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
        self,
        conversation: Conversation,
        message_id: str,
        content: str,
        status: Status,
        *,
        reasoning: str = "",
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

    async def end_reply(self, conversation: Conversation, message_id: str) -> None: ...

    async def settle_reply(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
    ) -> None:
        """:meth:`update_message` with ``text`` (content, status, reasoning) when given, then
        :meth:`end_reply`: a reply's last write, in one round trip where the store has them."""
        ...

    async def clear(self, conversation: Conversation) -> None: ...

    async def replace_tail(
        self, conversation: Conversation, keep: int, *messages: HistoryMessage
    ) -> None:
        """Keep the history's first ``keep`` messages and put ``messages`` after them (an
        ``edit``: the edited user message and the new reply's placeholder)."""
        ...

    async def rename(self, conversation: Conversation, title: str) -> None: ...

    async def delete(self, conversation: Conversation) -> None:
        """Forget the conversation, its history, members and client ids, for every instance.
        What else a conversation holds (images) is deleted here too."""
        ...

    async def forget_if_empty(self, conversation: Conversation) -> None:
        """Drop a conversation that never had a message (a socket opened and closed)."""
        ...
