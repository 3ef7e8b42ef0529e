"""One instance: no one to tell."""

from __future__ import annotations

from typing import Any

from .events import EventHandler


class LocalBus:
    """Nothing crosses instances: events are applied locally by their publisher only, so
    publishing does nothing, no handler is ever called, and the bus is always ready."""

    def on(self, kind: str, handler: EventHandler) -> None:
        pass

    async def publish(self, kind: str, **fields: Any) -> None:
        pass

    @property
    def ready(self) -> bool:
        return True

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
