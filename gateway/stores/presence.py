"""The presence seam: which connections every live instance holds."""

from __future__ import annotations

from typing import Any, Protocol

from .lifecycle import Lifecycle


class Presence(Lifecycle, Protocol):
    """Which connections every live instance holds: ``connections()`` lists them all, this
    instance's as they are now, the others' as of their last heartbeat; and how many replies
    other instances run for a user (for ``limits.max_replies_per_user`` across instances)."""

    async def connections(self) -> list[dict[str, Any]]: ...

    def replies_elsewhere(self, user: str) -> int: ...
