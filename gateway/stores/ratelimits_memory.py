"""One instance: per-user token buckets for ``limits.messages_per_minute`` in memory."""

from __future__ import annotations

import time


class MemoryRateLimiter:
    """A bucket of ``per_minute`` tokens per user, refilled continuously; a message takes
    one. :meth:`allow_now` is the same answer without a coroutine (the Redis limiter's
    fallback). Full buckets are forgotten now and then, so memory follows active users."""

    def __init__(self, per_minute: int) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}

    async def allow(self, user: str) -> bool:
        return self.allow_now(user)

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def allow_now(self, user: str) -> bool:
        if self._capacity <= 0:
            return True  # 0 disables the limit
        now = time.monotonic()
        tokens, then = self._buckets.get(user, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - then) * self._rate)
        if tokens < 1.0:
            self._buckets[user] = (tokens, now)
            return False
        self._buckets[user] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget full buckets now and then
            self._buckets = {
                u: (t, w) for u, (t, w) in self._buckets.items() if t < self._capacity - 1
            }
        return True
