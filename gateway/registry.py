"""The connections of this instance: capacity, per-user counts, stats, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from .connection import Connection
from .errors import TryAgainLater
from .metrics import Metrics


class Registry:
    """This instance's registered connections, and nothing else: admission (``max_connections``
    counting sockets still signing in, ``max_per_user``), add/remove/rename, a snapshot for
    the admin API, and closing them all at shutdown. Keeps the per-assistant gauge and folds
    a leaving connection's frame counts into the metrics. The sweeps over these connections
    live in :mod:`gateway.heartbeat`."""

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
        self.waiting = 0  # sockets upgraded and waiting for their auth frame
        self.on_change: Callable[[], None] | None = None  # a connection came or went
        self.elsewhere: dict[str, int] = {}  # user -> connections on other instances (Redis)

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Any:
        return iter(list(self._connections))

    @property
    def connections(self) -> AbstractSet[Connection]:
        """The live set (not a copy): iterate it without awaiting, or copy it first."""
        return self._connections

    def check_capacity(self, user: str) -> None:
        if len(self._connections) + self.waiting >= self._max:
            raise TryAgainLater("the gateway is at its connection limit")
        if self._per_user.get(user, 0) + self.elsewhere.get(user, 0) >= self._max_per_user:
            raise TryAgainLater("too many connections for this user")

    @contextlib.contextmanager
    def awaiting_auth(self) -> Iterator[None]:
        """Count a socket waiting for its auth frame against ``max_connections`` while the
        block runs: a crowd of sockets that never authenticate cannot hold the gateway's
        sockets uncounted. Over the limit: :class:`TryAgainLater` at once."""
        if len(self._connections) + self.waiting >= self._max:
            raise TryAgainLater("the gateway is at its connection limit")
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

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

    def snapshot(self) -> list[dict[str, Any]]:
        return [conn.info() for conn in self._connections]

    async def close_all(self, code: int, reason: str) -> None:
        conns = list(self._connections)
        if conns:
            await asyncio.gather(
                *(c.close_with(code=code, reason=reason) for c in conns), return_exceptions=True
            )
