"""The rate-limit seam: ``limits.messages_per_minute`` per user."""

from __future__ import annotations

from typing import Protocol

from .lifecycle import Lifecycle


class RateLimiter(Lifecycle, Protocol):
    """Whether a user may send one more message now (taking one token if so); a limit of
    0 messages per minute allows everything. It never raises: trouble in shared state
    falls back to a local answer."""

    async def allow(self, user: str) -> bool: ...
