"""What each conversation write does to the :class:`~gateway.conversations.Conversation` in hand.

Both conversation stores edit a conversation the same way, through these functions: the
memory store keeps the objects it hands out, so an edit here *is* its write; the Redis
store makes the same edit to its snapshot once a script has written Redis (the scripts in
:mod:`.conversations_lua` keep to the same rules: history capped at the newest
``max_messages``, a message gone stays gone, only the running reply's end frees it). Pure:
plain values in, the conversation changed in place; the caller reads the clock.
"""

from __future__ import annotations

from ..conversations import Claim, Conversation, HistoryMessage, Status

TITLE_CHARS = 80  # of the first user message, naming an untitled conversation


def new_title(conversation: Conversation, messages: tuple[HistoryMessage, ...]) -> str:
    """The title ``messages`` give ``conversation``: the first user message's first
    :data:`TITLE_CHARS` characters if it has no title yet; otherwise (or with no user
    message) ``''``, which leaves the title as it is."""
    if conversation.title:
        return ""
    first_user = next((m for m in messages if m.role == "user"), None)
    return first_user.content[:TITLE_CHARS] if first_user else ""


def append(
    conversation: Conversation,
    messages: tuple[HistoryMessage, ...],
    *,
    max_messages: int,
    now: float,
    title: str,
) -> None:
    """Put ``messages`` at the history's end and keep its newest ``max_messages``; the
    conversation was written ``now`` and, if untitled, takes ``title`` (:func:`new_title`)."""
    conversation.messages.extend(messages)
    del conversation.messages[: max(0, len(conversation.messages) - max_messages)]
    conversation.updated_at = now
    conversation.title = conversation.title or title


def set_text(
    conversation: Conversation, message_id: str, content: str, status: Status, reasoning: str
) -> HistoryMessage | None:
    """Give message ``message_id`` its content, status and reasoning; the message, or None
    when the history no longer holds it (trimmed or cleared: it stays gone)."""
    for message in reversed(conversation.messages):
        if message.id == message_id:
            message.content, message.status = content, status
            message.reasoning = reasoning
            return message
    return None


def keep_first(conversation: Conversation, keep: int) -> None:
    """Drop the history after its first ``keep`` messages (an ``edit`` rewrites the rest)."""
    del conversation.messages[keep:]


def mark_claimed(
    conversation: Conversation, claim: Claim, message_id: str, client_id: str
) -> Claim:
    """``claim`` as decided (by the store): a ``started`` one makes ``message_id`` the
    running reply and the reply of ``client_id``; any other changes nothing."""
    if claim.outcome == "started":
        conversation.running = message_id
        conversation.replies_by_client_id[client_id] = message_id
    return claim


def end_reply(conversation: Conversation, message_id: str) -> None:
    """``message_id`` runs no more; a reply that replaced it meanwhile keeps running."""
    if conversation.running == message_id:
        conversation.running = None


def clear_history(conversation: Conversation) -> None:
    """No history and no client ids seen (a ``reset``); a running reply is the caller's."""
    conversation.messages.clear()
    conversation.replies_by_client_id.clear()


def empty(conversation: Conversation) -> None:
    """What a deleted conversation's snapshot holds: no history, client ids or running reply."""
    clear_history(conversation)
    conversation.running = None


def rename(conversation: Conversation, title: str, now: float) -> None:
    """The title the owner gave, written ``now``."""
    conversation.title, conversation.updated_at = title, now
