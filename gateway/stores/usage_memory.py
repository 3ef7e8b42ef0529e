"""Usage aggregates in this process's memory (one instance; lost on restart)."""

from __future__ import annotations

import datetime as dt

from ..usage import GroupBy, SpentToday, UsageEntry, UsageRecord, UsageRow, aggregate


class MemoryUsageStore:
    """:class:`~gateway.stores.usage.UsageStore` in dicts; days older than
    ``retention_days`` before the newest day recorded are dropped as new days come."""

    def __init__(self, retention_days: int) -> None:
        self._retention = dt.timedelta(days=retention_days)
        self._days: dict[dt.date, dict[tuple[str, str, str], UsageEntry]] = {}
        self._spent: dict[dt.date, dict[str, int]] = {}

    async def record(self, record: UsageRecord) -> None:
        day = record.day
        if day not in self._days:
            self._days[day] = {}
            self._spent[day] = {}
            self._forget_before(max(self._days) - self._retention)
        entries = self._days.get(day)
        if entries is None:  # older than the retention itself
            return
        key = (record.user, record.assistant, record.model)
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = UsageEntry(day, *key)
        entry.add(record)
        spent, total = self._spent[day], record.total
        for name in _spent_fields(record):
            spent[name] = spent.get(name, 0) + total

    def _forget_before(self, oldest: dt.date) -> None:
        for day in [d for d in self._days if d <= oldest]:
            del self._days[day]
            del self._spent[day]

    async def rows(
        self, start: dt.date, end: dt.date, group_by: GroupBy, user: str | None = None
    ) -> list[UsageRow]:
        entries = [
            entry
            for day, by_key in self._days.items()
            if start <= day <= end
            for entry in by_key.values()
            if user is None or entry.user == user
        ]
        return aggregate(entries, group_by)

    async def tokens_today(
        self, *, today: dt.date, user: str, assistant: str, address: str | None = None
    ) -> SpentToday:
        spent = self._spent.get(today, {})
        return SpentToday(
            user=spent.get(f"user:{user}", 0),
            assistant=spent.get(f"assistant:{assistant}", 0),
            address=spent.get(f"address:{address}", 0) if address is not None else 0,
        )


def _spent_fields(record: UsageRecord) -> list[str]:
    """The day's total counters a record adds to (shared with the Redis store)."""
    names = [f"user:{record.user}", f"assistant:{record.assistant}"]
    if record.address is not None:
        names.append(f"address:{record.address}")
    return names
