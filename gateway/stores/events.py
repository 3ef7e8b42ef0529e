"""The events seam: what one instance tells the others (a room's frames, a stop, a broadcast)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .lifecycle import Lifecycle

Event = dict[str, Any]
EventHandler = Callable[[Event], Awaitable[None]]


class Bus(Lifecycle, Protocol):
    """Events for the other instances: a room's frames, a new reply, a stop, a broadcast.

    Delivery is at most once and in publish order per publisher; an instance never
    receives its own events (it has already applied them locally). ``on`` sets the one
    handler of a kind; ``ready`` says whether events from the others are heard now.
    """

    def on(self, kind: str, handler: EventHandler) -> None: ...

    async def publish(self, kind: str, **fields: Any) -> None: ...

    @property
    def ready(self) -> bool: ...
