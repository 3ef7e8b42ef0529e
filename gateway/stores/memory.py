"""One instance: no one to tell, and every connection is here."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .interfaces import EventHandler


class LocalBus:
    """Nothing crosses instances: events are applied locally by their publisher only."""

    def on(self, kind: str, handler: EventHandler) -> None:
        pass

    async def publish(self, kind: str, **fields: Any) -> None:
        pass

    @property
    def ready(self) -> bool:
        return True


class LocalPresence:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def connections(self) -> list[dict[str, Any]]:
        return self._registry.snapshot()

    def replies_elsewhere(self, user: str) -> int:
        return 0
