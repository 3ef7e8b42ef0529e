"""The connections of this instance: capacity, per-user counts, stats, shutdown."""

from __future__ import annotations

import asyncio
import time
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
        # Plain dicts, not a Counter (whose ``__missing__`` and ``__delitem__`` are Python
        # code): add and remove run once per socket, at hundreds of handshakes a second.
        self._per_user: dict[str, int] = {}
        self._by_assistant = metrics.connections  # gateway_connections{assistant}
        self._max = max_connections
        self._max_per_user = max_per_user
        self.on_change: Callable[[], None] | None = None  # a connection came or went
        self.elsewhere: dict[str, int] = {}  # user -> connections on other instances (Redis)

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Any:
        return iter(list(self._connections))

    def check_capacity(self, user: str) -> None:
        if len(self._connections) >= self._max:
            raise TryAgainLater("the gateway is at its connection limit")
        if self._per_user.get(user, 0) + self.elsewhere.get(user, 0) >= self._max_per_user:
            raise TryAgainLater("too many connections for this user")

    def add(self, conn: Connection) -> None:
        self._connections.add(conn)
        per_user = self._per_user
        per_user[conn.user] = per_user.get(conn.user, 0) + 1
        by_assistant = self._by_assistant
        by_assistant[conn.assistant] = by_assistant.get(conn.assistant, 0) + 1
        if self.on_change is not None:
            self.on_change()

    def remove(self, conn: Connection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self._by_assistant[conn.assistant] -= 1
            metrics = self._metrics
            metrics.frames_sent += conn.frames_sent
            metrics.frames_merged += conn.frames_merged
            if conn.slow:
                metrics.slow_consumer_closes.inc()
            self._drop_user(conn.user)
            if self.on_change is not None:
                self.on_change()

    def rename(self, conn: Connection, user: str) -> None:
        """The connection re-authenticated as another user."""
        self._drop_user(conn.user)
        conn.user = user
        self._per_user[user] = self._per_user.get(user, 0) + 1

    def _drop_user(self, user: str) -> None:
        left = self._per_user.get(user, 0) - 1
        if left > 0:
            self._per_user[user] = left
        else:
            self._per_user.pop(user, None)

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

    async def keep_alive(self, heartbeat_s: float) -> None:
        """Forever, the contract's heartbeat in one sweep every ``heartbeat_s / 2`` instead
        of a timer per socket: a socket silent for ``heartbeat_s`` gets a ping; one that
        has answered nothing ``heartbeat_s`` after its ping is dropped.

        Any frame counts as an answer. A silent socket is pinged ``heartbeat_s`` to
        1.5 x ``heartbeat_s`` after it was last heard, so an idle chat sees a frame at least
        that often (nginx's 60 s read timeout never cuts one at the default 30 s).
        """
        interval = heartbeat_s / 2
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self._connections):
                pinged = conn.pinged_at
                if pinged:
                    if conn.heard_at >= pinged:
                        conn.pinged_at = pinged = 0.0  # answered
                    elif now - pinged >= heartbeat_s:
                        conn.drop()
                        continue
                if not pinged and now - conn.heard_at >= heartbeat_s:
                    conn.ping(now)

    def snapshot(self) -> list[dict[str, Any]]:
        return [conn.info() for conn in self._connections]

    async def close_all(self, code: int, reason: str) -> None:
        conns = list(self._connections)
        if conns:
            await asyncio.gather(
                *(c.close_with(code=code, reason=reason) for c in conns), return_exceptions=True
            )
