"""Sliding-window counters in this process's memory."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class MemoryWindowCounter:
    """:class:`~gateway.stores.window_counters.WindowCounter` as a deque of times per key.

    Memory is bounded by ``limit`` times per key; keys whose events have all left their
    window are swept once the table has doubled since the last sweep."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: dict[str, tuple[float, deque[float]]] = {}
        self._sweep_at = 1024

    async def hit(self, key: str, limit: int, window_s: float) -> bool:
        return self.hit_now(key, limit, window_s)

    def hit_now(self, key: str, limit: int, window_s: float) -> bool:
        now = self._clock()
        entry = self._events.get(key)
        if entry is None:
            entry = self._events[key] = (window_s, deque())
        times = entry[1]
        while times and times[0] <= now - window_s:
            times.popleft()
        if len(times) >= limit:
            return False
        times.append(now)
        if len(self._events) >= self._sweep_at:
            self._sweep(now)
        return True

    def _sweep(self, now: float) -> None:
        self._events = {k: (w, t) for k, (w, t) in self._events.items() if t and t[-1] > now - w}
        self._sweep_at = max(1024, 2 * len(self._events))
