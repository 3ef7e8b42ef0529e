"""The connections of this instance: capacity, per-user counts, stats, shutdown."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from .connection import Connection
from .errors import TryAgainLater
from .metrics import Metrics


class Registry:
    def __init__(self, max_connections: int, max_per_user: int, metrics: Metrics) -> None:
        self._metrics = metrics
        metrics.live_frames = self._live_frames
        self._connections: set[Connection] = set()
        self._per_user: Counter[str] = Counter()
        self._max = max_connections
        self._max_per_user = max_per_user
        self.on_change: Callable[[], None] | None = None  # a connection came or went

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Any:
        return iter(list(self._connections))

    def check_capacity(self, user: str) -> None:
        if len(self._connections) >= self._max:
            raise TryAgainLater("the gateway is at its connection limit")
        if self._per_user[user] >= self._max_per_user:
            raise TryAgainLater("too many connections for this user")

    def add(self, conn: Connection) -> None:
        self._connections.add(conn)
        self._per_user[conn.user] += 1
        self._metrics.connections.labels(conn.assistant).inc()
        if self.on_change is not None:
            self.on_change()

    def remove(self, conn: Connection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self._metrics.connections.labels(conn.assistant).dec()
            self._metrics.frames_sent += conn.frames_sent
            self._metrics.frames_merged += conn.frames_merged
            if conn.slow:
                self._metrics.slow_consumer_closes.inc()
            self._per_user[conn.user] -= 1
            if self._per_user[conn.user] <= 0:
                del self._per_user[conn.user]
            if self.on_change is not None:
                self.on_change()

    def rename(self, conn: Connection, user: str) -> None:
        """The connection re-authenticated as another user."""
        self._per_user[conn.user] -= 1
        if self._per_user[conn.user] <= 0:
            del self._per_user[conn.user]
        conn.user = user
        self._per_user[user] += 1

    def _live_frames(self) -> tuple[int, int]:
        conns = self._connections
        return sum(c.frames_sent for c in conns), sum(c.frames_merged for c in conns)

    async def watch_sends(self, timeout_s: float) -> None:
        """Forever: mark and cancel the writer of any socket whose send is past its deadline."""
        loop = asyncio.get_running_loop()
        interval = min(1.0, max(0.05, timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in self._connections:
                since = conn.sending_since
                if since and now - since > timeout_s and not conn.slow:
                    conn.slow = True
                    if conn.writer is not None:
                        conn.writer.cancel()

    def snapshot(self) -> list[dict[str, Any]]:
        return [conn.info() for conn in self._connections]

    async def close_all(self, code: int, reason: str) -> None:
        conns = list(self._connections)
        if conns:
            await asyncio.gather(
                *(c.close_with(code=code, reason=reason) for c in conns), return_exceptions=True
            )
