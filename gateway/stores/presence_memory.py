"""One instance: every connection is here."""

from __future__ import annotations

from typing import Any

from ..registry import Registry


class LocalPresence:
    """The registry's connections are all there are; nothing runs in the background."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def connections(self) -> list[dict[str, Any]]:
        return self._registry.snapshot()

    def replies_elsewhere(self, user: str) -> int:
        return 0  # there is no elsewhere

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
