"""The usage seam: per-day aggregates of what replies used (contract section 12).

Implementations: :class:`~gateway.stores.usage_memory.MemoryUsageStore` (one instance) and
:class:`~gateway.stores.usage_redis.RedisUsageStore` (every instance, atomic). Both keep
``limits.usage_retention_days`` whole UTC days and forget older ones.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from ..usage import GroupBy, SpentToday, UsageRecord, UsageRow


class UsageStore(Protocol):
    """Where each reply's :class:`UsageRecord` is added to its day's aggregates."""

    async def record(self, record: UsageRecord) -> None:
        """Add one reply's usage to its day (the user's, the assistant's and, when the record
        has one, the address's totals too)."""
        ...

    async def rows(
        self, start: dt.date, end: dt.date, group_by: GroupBy, user: str | None = None
    ) -> list[UsageRow]:
        """Usage from ``start`` to ``end`` (UTC days, inclusive), grouped; only ``user``'s
        when given. Rows as :func:`gateway.usage.aggregate` orders them."""
        ...

    async def tokens_today(
        self, *, today: dt.date, user: str, assistant: str, address: str | None = None
    ) -> SpentToday:
        """Tokens (input + output + reasoning) spent on ``today`` by the user, by the
        assistant (all users), and by the address (0 when None)."""
        ...
