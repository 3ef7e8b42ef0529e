"""The turn-writes seam: a turn's bookkeeping across the other seams, in as few steps as the
shared state allows.

A turn that starts a reply passes the rate limit, the anonymous limit per client address and
the daily quotas, then claims the conversation (:meth:`TurnWrites.admit_and_claim`); once
started it stores the user's message and the reply's placeholder, writes the reply's header
and tells the other instances (:meth:`TurnWrites.start_reply`); at its end the reply is
settled and its usage recorded (:meth:`TurnWrites.settle_and_record`). Each is the same
steps, in the same order, as the seams one call at a time (``turn_writes_memory``); in
Redis each is one script (``turn_writes_redis``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

from ..conversations import Claim, Conversation, HistoryMessage, Status
from ..quotas import QuotaLimits
from ..replies import ReplyLog
from ..usage import SpentToday, UsageRecord


@dataclass(frozen=True, slots=True)
class Admission:
    """What :meth:`TurnWrites.admit_and_claim` decided.

    ``rate_limited``: the user's ``limits.messages_per_minute`` is spent (nothing else was
    counted). ``address_limited``: the anonymous limit per address refused it (the rate
    limit counted it). ``over_quota``: a daily quota is spent (``spent`` says what; the
    limits counted it). ``claimed``: ``claim`` is the store's claim, whatever its outcome.
    """

    outcome: Literal["rate_limited", "address_limited", "over_quota", "claimed"]
    spent: SpentToday | None = None
    claim: Claim | None = None


@dataclass(frozen=True, slots=True)
class TurnAsk:
    """Who asks for a turn and what limits apply: the user, an anonymous sender's client
    address (None: not anonymous), ``limits.anonymous_messages_per_minute_per_ip`` (0:
    none), the assistant's :class:`QuotaLimits` and today's UTC day."""

    user: str
    address: str | None
    address_per_minute: int
    assistant: str
    quotas: QuotaLimits
    today: dt.date


class TurnWrites(Protocol):
    """A turn's writes across the seams, each as one step where the store can.

    Contract: :meth:`admit_and_claim` does what the rate limiter, the address's window
    counter, the usage store's ``tokens_today`` with :func:`gateway.quotas.check_quota`, and
    the conversation store's ``claim_reply`` do one after another, stopping at the first
    refusal (what was counted before it stays counted). :meth:`start_reply` does
    ``add_messages``, the reply store's ``add`` and the bus's ``turn`` event, in that order:
    nothing is told before history and the header are stored. :meth:`settle_and_record`
    does ``settle_reply`` and the usage store's ``record``, and may be retried after
    trouble: the record counts once however often it is. Trouble in shared state raises
    :class:`~gateway.errors.StoreUnavailable`.
    """

    async def admit_and_claim(
        self,
        conversation: Conversation,
        ask: TurnAsk,
        message_id: str,
        client_id: str,
        instance: str,
        *,
        interrupt: bool,
    ) -> Admission: ...

    async def start_reply(
        self,
        conversation: Conversation,
        messages: tuple[HistoryMessage, ...],
        reply: ReplyLog,
        frame: str,
    ) -> None:
        """Store ``messages``, add ``reply``'s log (its header where shared), then tell the
        other instances of the turn (its user message ``frame``, the reply's id)."""
        ...

    async def settle_and_record(
        self,
        conversation: Conversation,
        message_id: str,
        text: tuple[str, Status, str] | None,
        record: UsageRecord,
    ) -> None:
        """A reply's last writes: its final ``text`` (content, status, reasoning) when given
        and the claim freed, then its usage added to its day (once, even when retried)."""
        ...
