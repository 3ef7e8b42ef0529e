"""Quotas and the anonymous limits per client address (contract section 12).

:func:`check_quota` is the pure decision at the start of a turn: given what the user, the
assistant and (for an anonymous visitor) the client address have spent today, refuse with
:class:`~gateway.errors.QuotaExceeded` or allow. A quota is checked only there: a reply that
crosses it while running finishes, so instances sharing a quota overshoot it by at most the
replies already running. :class:`AddressLimits` counts anonymous messages and new anonymous
ids per address over a :class:`~gateway.stores.window_counters.WindowCounter`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .config import Config
from .errors import QuotaExceeded
from .stores.window_counters import WindowCounter
from .usage import SpentToday, seconds_to_next_day, utc_day


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """Daily token quotas that apply to one assistant's turns; 0: none."""

    per_user: int = 0  # limits.tokens_per_user_per_day
    per_assistant: int = 0  # assistants.<name>.tokens_per_day
    per_address: int = 0  # limits.anonymous_tokens_per_ip_per_day (anonymous only)

    @classmethod
    def for_assistant(cls, config: Config, assistant: str) -> QuotaLimits:
        limits = config.limits
        return cls(
            limits.tokens_per_user_per_day,
            config.assistants[assistant].tokens_per_day,
            limits.anonymous_tokens_per_ip_per_day,
        )

    @property
    def any(self) -> bool:
        """Whether a turn needs today's spend at all (no store read when no quota is set)."""
        return bool(self.per_user or self.per_assistant or self.per_address)


def check_quota(
    spent: SpentToday, limits: QuotaLimits, *, anonymous: bool, now: float
) -> QuotaExceeded | None:
    """The refusal for a turn starting at ``now`` (POSIX time), or None to go ahead.

    The user's quota is named first, then the address's, then the assistant's, so the
    message speaks of the narrowest quota that is spent."""
    if limits.per_user and spent.user >= limits.per_user:
        quota, message = "user", f"your daily quota of {limits.per_user} tokens is used up"
    elif anonymous and limits.per_address and spent.address >= limits.per_address:
        quota = "address"
        message = f"the daily quota of {limits.per_address} tokens for your network is used up"
    elif limits.per_assistant and spent.assistant >= limits.per_assistant:
        quota = "assistant"
        message = f"this assistant's daily quota of {limits.per_assistant} tokens is used up"
    else:
        return None
    return QuotaExceeded(
        f"{message}; it renews at 00:00 UTC",
        quota=quota,
        retry_after_s=seconds_to_next_day(now),
    )


def remaining_today(spent: SpentToday, limits: QuotaLimits, *, anonymous: bool) -> int | None:
    """Tokens left today under the narrowest quota that applies (for the page), or None
    when no quota applies."""
    left = [
        limit - used
        for limit, used, applies in (
            (limits.per_user, spent.user, True),
            (limits.per_address, spent.address, anonymous),
            (limits.per_assistant, spent.assistant, True),
        )
        if limit and applies
    ]
    return max(0, min(left)) if left else None


def quota_status(
    spent: SpentToday, limits: QuotaLimits, *, anonymous: bool, now: float
) -> dict[str, Any] | None:
    """The caller's daily budget for ``GET /api/v1/quota``: the quota that leaves the least
    (on a tie, in :func:`check_quota`'s order: user, address, assistant), what it allows,
    what is used, what is left and when it renews; None when no quota applies."""
    best: tuple[int, str, int, int] | None = None
    for kind, limit, used, applies in (
        ("user", limits.per_user, spent.user, True),
        ("address", limits.per_address, spent.address, anonymous),
        ("assistant", limits.per_assistant, spent.assistant, True),
    ):
        if limit and applies and (best is None or limit - used < best[0]):
            best = (limit - used, kind, limit, used)
    if best is None:
        return None
    left, kind, limit, used = best
    midnight = dt.datetime.combine(utc_day(now) + dt.timedelta(days=1), dt.time(), dt.UTC)
    return {
        "kind": kind,
        "limit": limit,
        "used": used,
        "remaining": max(0, left),
        "resets_at": midnight.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resets_in_s": seconds_to_next_day(now),
    }


def message_window_key(address: str) -> str:
    """The window counter's key for an anonymous address's messages per minute."""
    return f"msg:{address}"


class AddressLimits:
    """The anonymous limits per client address, over a shared window counter.

    ``limits.anonymous_messages_per_minute_per_ip`` messages in any 60 s, and
    ``limits.max_anonymous_ids_per_ip_per_hour`` new anonymous ids in any hour; 0: no limit.
    Only anonymous visitors are counted: the caller asks only for them."""

    def __init__(self, counter: WindowCounter, messages_per_minute: int, ids_per_hour: int) -> None:
        self._counter = counter
        self._messages = messages_per_minute
        self._ids = ids_per_hour

    @classmethod
    def from_config(cls, config: Config, counter: WindowCounter) -> AddressLimits:
        limits = config.limits
        return cls(
            counter,
            limits.anonymous_messages_per_minute_per_ip,
            limits.max_anonymous_ids_per_ip_per_hour,
        )

    async def allow_message(self, address: str) -> bool:
        """Count an anonymous message from ``address``; False: refuse it (``rate_limited``)."""
        if not self._messages:
            return True
        return await self._counter.hit(message_window_key(address), self._messages, 60.0)

    async def allow_new_id(self, address: str) -> bool:
        """Count a new anonymous id for ``address``; False: refuse to mint one."""
        if not self._ids:
            return True
        return await self._counter.hit(f"ids:{address}", self._ids, 3600.0)
