"""Settling a reply in the store: its final text and status into history, the conversation's
claim freed and its usage recorded, in one write, retried while the store is down.

The supervisor settles every reply it runs once its task ends, and frees the claims no
task will settle (a turn that failed before its reply started) the same way.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from .conversations import Conversation
from .errors import StoreUnavailable
from .replies import ReplyLog
from .stores.conversations import ConversationStore
from .stores.turn_writes import TurnWrites
from .turn_rules import history_status
from .usage import UsageRecord

log = structlog.get_logger("gateway.supervisor")  # the reply's lines, under one name

SETTLE_RETRY_MAX_S = 5.0


class Settlement:
    """Writes the end of a reply to the conversation store.

    Contract: :meth:`settle` returns once the conversation's claim on ``message_id`` is
    freed: with the reply's final text and history status when a reply is given, and with
    its usage when one is given (one write of the turn-writes seam; the usage counts once
    however often it is sent). While the store is down it retries, waiting 0.1 s and
    doubling up to :data:`SETTLE_RETRY_MAX_S`; the text is given up (logged) after
    ``resume_window_s`` (1 s at least) of outage, freeing the claim never. An unexpected
    error gives up the text and the usage (logged) and still frees the claim; if freeing
    alone fails that way, it is a bug no retry mends and :meth:`settle` returns.
    """

    def __init__(
        self,
        conversations: ConversationStore,
        turn_writes: TurnWrites,
        resume_window_s: float,
    ) -> None:
        self.conversations = conversations
        self.turn_writes = turn_writes
        self.resume_window_s = resume_window_s

    async def settle(
        self,
        conv: Conversation,
        message_id: str,
        reply: ReplyLog | None,
        usage: UsageRecord | None = None,
    ) -> None:
        """Store ``reply``'s final text (if given) and free the conversation, with ``usage``
        when given, retrying while the store is down (see the class's contract)."""
        delay = 0.1
        deadline = time.monotonic() + max(self.resume_window_s, 1.0)
        text = reply
        while True:
            try:
                final = None
                if text is not None:
                    status = history_status(
                        text.state, text.finish_reason, text.orphaned, text.cut_at_shutdown
                    )
                    final = (text.text, status, text.reasoning)
                if usage is not None:
                    await self.turn_writes.settle_and_record(conv, message_id, final, usage)
                else:
                    await self.conversations.settle_reply(conv, message_id, final)
                return
            except StoreUnavailable:
                if text is not None and time.monotonic() > deadline:
                    log.error("reply not stored: the store stayed down", message_id=message_id)
                    text = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETTLE_RETRY_MAX_S)
            except Exception:
                log.exception("reply not settled", message_id=message_id)
                if text is None and usage is None:
                    return  # freeing itself failed: a bug no retry mends
                text, usage = None, None  # still free the conversation
