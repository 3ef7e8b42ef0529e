"""The sliding-window counter seam: at most ``limit`` events per key in any ``window_s``.

Used for the anonymous limits per client address (contract section 12): messages per
minute, new anonymous ids per hour (:class:`gateway.quotas.AddressLimits`). A window is
exact (a log of the events' times), not a fixed clock window that lets twice the limit
through across its edge. Implementations: ``window_counters_memory`` (one instance) and
``window_counters_redis`` (shared by every instance).
"""

from __future__ import annotations

from typing import Protocol


class WindowCounter(Protocol):
    """Counts events per key over a sliding window (the per-address limits), exactly:
    ``hit`` admits an event only while fewer than ``limit`` fall within the window."""

    async def hit(self, key: str, limit: int, window_s: float) -> bool:
        """Count one event under ``key`` and return True, unless ``limit`` events are
        already counted within the last ``window_s`` seconds: then count nothing, False."""
        ...
