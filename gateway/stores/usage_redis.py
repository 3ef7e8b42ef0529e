"""Usage aggregates in Redis, shared by every instance.

Keys (``P`` is ``redis.key_prefix``; ``{day}`` is ``YYYY-MM-DD``, UTC)::

    P usage:{day}          hash  "<metric>:<json [user, assistant, model]>" -> count;
                                 metric r (replies), i, o, t (input, output, reasoning
                                 tokens), e (estimated replies)
    P usage:{day}:spent    hash  "user:<id>", "assistant:<name>", "address:<ip>" -> tokens

A reply is added in one script of HINCRBYs (:data:`_RECORD`), so two instances recording at
once both count (no read-modify-write) and a reader never sees half a reply. Both keys expire
at the end of the day ``limits.usage_retention_days`` after theirs (EXPIREAT, set again by
every write, so the clock is the day, not the last write). Redis trouble raises
:class:`~gateway.errors.StoreUnavailable`.
"""

from __future__ import annotations

import datetime as dt
import json

from ..usage import GroupBy, SpentToday, UsageEntry, UsageRecord, UsageRow, aggregate
from .redis_client import Redis, guarded
from .usage_memory import _spent_fields

# KEYS: day, spent. ARGV: expire at (epoch s), the number of day fields, then each day field
# and its count, then each spent field and its count.
_RECORD = """
local days = tonumber(ARGV[2])
for i = 3, 2 + 2 * days, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 3 + 2 * days, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[2], ARGV[1])
return 1
"""

_METRICS = {
    "r": "replies",
    "i": "input_tokens",
    "o": "output_tokens",
    "t": "reasoning_tokens",
    "e": "estimated_replies",
}


class RedisUsageStore:
    """:class:`~gateway.stores.usage.UsageStore` over per-day Redis hashes."""

    def __init__(self, redis: Redis, prefix: str, retention_days: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retention = dt.timedelta(days=retention_days)
        self._record = redis.register_script(_RECORD)

    def day_key(self, day: dt.date) -> str:
        return f"{self._prefix}usage:{day.isoformat()}"

    def spent_key(self, day: dt.date) -> str:
        return f"{self._prefix}usage:{day.isoformat()}:spent"

    async def record(self, record: UsageRecord) -> None:
        keys, args = self.record_request(record)
        with guarded():
            await self._record(keys=keys, args=args)

    def record_request(self, record: UsageRecord) -> tuple[list[str], list[str | int]]:
        """:data:`_RECORD`'s keys and arguments for one reply's usage."""
        day_key, spent_key = self.day_key(record.day), self.spent_key(record.day)
        who = json.dumps([record.user, record.assistant, record.model], ensure_ascii=False)
        counts = {
            "r": 1,
            "i": record.input_tokens,
            "o": record.output_tokens,
            "t": record.reasoning_tokens or 0,
            "e": int(record.estimated),
        }
        expire_at = dt.datetime.combine(
            record.day + self._retention + dt.timedelta(days=1), dt.time(), dt.UTC
        )
        day_fields = [(f"{metric}:{who}", n) for metric, n in counts.items() if n or metric == "r"]
        spent_fields = [(name, record.total) for name in _spent_fields(record)]
        args: list[str | int] = [int(expire_at.timestamp()), len(day_fields)]
        for name, n in (*day_fields, *spent_fields):
            args += (name, n)
        return [day_key, spent_key], args

    async def rows(
        self, start: dt.date, end: dt.date, group_by: GroupBy, user: str | None = None
    ) -> list[UsageRow]:
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        with guarded():
            async with self._redis.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.hgetall(self.day_key(day))
                hashes = await pipe.execute()
        entries: list[UsageEntry] = []
        for day, fields in zip(days, hashes, strict=True):
            by_key: dict[str, UsageEntry] = {}
            for field, value in fields.items():
                metric, _, who = field.partition(":")
                name = _METRICS.get(metric)
                if name is None:
                    continue
                entry = by_key.get(who)
                if entry is None:
                    u, a, m = json.loads(who)
                    entry = by_key[who] = UsageEntry(day, u, a, m)
                setattr(entry, name, int(value))
            entries.extend(e for e in by_key.values() if user is None or e.user == user)
        return aggregate(entries, group_by)

    async def tokens_today(
        self, *, today: dt.date, user: str, assistant: str, address: str | None = None
    ) -> SpentToday:
        names = [f"user:{user}", f"assistant:{assistant}"]
        if address is not None:
            names.append(f"address:{address}")
        with guarded():
            values = await self._redis.hmget(self.spent_key(today), names)
        counts = [int(v) if v is not None else 0 for v in values]
        return SpentToday(*counts)
