"""The event bus and presence seams (conversations and replies have theirs in their modules)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Event = dict[str, Any]
EventHandler = Callable[[Event], Awaitable[None]]


class Bus(Protocol):
    """Events for the other instances: a room's frames, a new reply, a stop, a broadcast.

    Delivery is at most once and in publish order per publisher; an instance never
    receives its own events (it has already applied them locally).
    """

    def on(self, kind: str, handler: EventHandler) -> None: ...

    async def publish(self, kind: str, **fields: Any) -> None: ...

    @property
    def ready(self) -> bool: ...


class Presence(Protocol):
    """Which connections every live instance holds, and what other instances run per user."""

    async def connections(self) -> list[dict[str, Any]]: ...

    def replies_elsewhere(self, user: str) -> int: ...
