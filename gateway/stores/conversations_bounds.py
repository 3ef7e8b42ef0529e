"""Memory mode's conversations by id, bounded by count, bytes and an idle TTL."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Container, Iterable

from ..conversations import Conversation, HistoryMessage
from ..eviction import expired, to_evict


class BoundedConversations:
    """The conversations of :class:`~.conversations_memory.MemoryConversationStore`, and
    the bounds on them (0 turns a bound off).

    A conversation owned by an anonymous visitor is forgotten once idle for
    ``anonymous_ttl_s``, and past ``max_conversations`` conversations or ``max_bytes`` of
    history the least recently used idle ones are forgotten, down to 15/16 of the bound (so
    the next pass is some way off). Idle: no reply running and no viewer on this instance
    (``viewed`` gives the ids of the conversations sockets are open on). Used: :meth:`put`,
    :meth:`use` or :meth:`written`. Every conversation forgotten, here or by
    :meth:`forget`, is passed to ``on_forget``. The sweep is a timer armed by the first
    bounded :meth:`put`; :meth:`close` stops it.
    """

    def __init__(
        self,
        *,
        anonymous_ttl_s: float,
        max_conversations: int,
        max_bytes: int,
        viewed: Callable[[], Container[str]],
        on_forget: Callable[[str], None],
    ) -> None:
        self._conversations: dict[str, Conversation] = {}
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

    @property
    def history_bytes(self) -> int:
        """About the bytes the histories hold (what ``max_bytes`` bounds)."""
        return self._bytes

    def get(self, conversation_id: str) -> Conversation | None:
        """The conversation kept under ``conversation_id`` (not a use)."""
        return self._conversations.get(conversation_id)

    def holds(self, conversation: Conversation) -> bool:
        """Whether ``conversation`` is the one kept (not forgotten meanwhile)."""
        return self._conversations.get(conversation.id) is conversation

    def values(self) -> Iterable[Conversation]:
        return self._conversations.values()

    def put(self, conversation: Conversation) -> None:
        """Keep a new conversation; others may go to meet a bound, never this one."""
        conversation_id = conversation.id
        self._conversations[conversation_id] = conversation
        self._sizes[conversation_id] = CONVERSATION_BYTES
        self._bytes += CONVERSATION_BYTES
        self.use(conversation_id)
        self._bound(keep=conversation_id)
        if self._sweep is None and (self._ttl or self._max_conversations or self._max_bytes):
            self._arm_sweep()

    def use(self, conversation_id: str) -> None:
        """``conversation_id`` was used now: the last to go."""
        self._used.pop(conversation_id, None)
        self._used[conversation_id] = time.monotonic()

    def written(self, conversation: Conversation) -> None:
        """Count the history's bytes again (a write); forget others if past the budget."""
        if not self.holds(conversation):
            return  # forgotten meanwhile: counts for nothing here
        size = CONVERSATION_BYTES + sum(message_bytes(m) for m in conversation.messages)
        self._bytes += size - self._sizes.get(conversation.id, 0)
        self._sizes[conversation.id] = size
        self.use(conversation.id)
        self._bound()

    def forget(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)
        self._used.pop(conversation_id, None)
        self._bytes -= self._sizes.pop(conversation_id, 0)
        self._on_forget(conversation_id)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

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
            self.forget(conversation_id)
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
                self.forget(conversation_id)
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
