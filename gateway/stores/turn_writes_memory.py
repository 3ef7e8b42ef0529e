"""A turn's writes one seam call at a time (one instance, or any seams at all)."""

from __future__ import annotations

from ..conversations import Conversation, HistoryMessage, Status
from ..quotas import check_quota, message_window_key
from ..replies import ReplyLog
from ..usage import UsageRecord
from .conversations import ConversationStore
from .events import Bus
from .ratelimits import RateLimiter
from .replies import ReplyStore
from .turn_writes import Admission, TurnAsk
from .usage import UsageStore
from .window_counters import WindowCounter


class SteppedTurnWrites:
    """:class:`~gateway.stores.turn_writes.TurnWrites` as the seams' own calls, one after
    another: what memory mode runs, and the reference the Redis scripts keep to."""

    def __init__(
        self,
        conversations: ConversationStore,
        replies: ReplyStore,
        bus: Bus,
        rate_limiter: RateLimiter,
        windows: WindowCounter,
        usage: UsageStore,
    ) -> None:
        self.conversations = conversations
        self.replies = replies
        self.bus = bus
        self.rate_limiter = rate_limiter
        self.windows = windows
        self.usage = usage

    async def admit_and_claim(
        self,
        conversation: Conversation,
        ask: TurnAsk,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Admission:
        if not await self.rate_limiter.allow(ask.user):
            return Admission("rate_limited")
        if (
            ask.address is not None
            and ask.address_per_minute
            and not await self.windows.hit(
                message_window_key(ask.address), ask.address_per_minute, 60.0
            )
        ):
            return Admission("address_limited")
        spent = None
        if ask.quotas.any:
            spent = await self.usage.tokens_today(
                today=ask.today, user=ask.user, assistant=ask.assistant, address=ask.address
            )
            anonymous = ask.address is not None
            if check_quota(spent, ask.quotas, anonymous=anonymous, now=0.0) is not None:
                return Admission("over_quota", spent)
        claim = await self.conversations.claim_reply(
            conversation, message_id, client_id, instance, interrupt=interrupt
        )
        return Admission("claimed", spent, claim)

    async def start_reply(
        self,
        conversation: Conversation,
        messages: tuple[HistoryMessage, ...],
        reply: ReplyLog,
        frame: str,
    ) -> None:
        await self.conversations.add_messages(conversation, *messages)
        await self.replies.add(reply)
        await self.bus.publish(
            "turn", conversation_id=conversation.id, frame=frame, message_id=reply.message_id
        )

    async def settle_and_record(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
        record: UsageRecord,
    ) -> None:
        """(Memory stores never raise, so a retry never follows a record that counted.)"""
        await self.conversations.settle_reply(conversation, message_id, text)
        await self.usage.record(record)
