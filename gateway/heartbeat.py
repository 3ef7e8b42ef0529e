"""The two sweeps over this instance's sockets: the keep-alive and the send watchdog.

Each is one task per app looking at every connection in turn, instead of a timer per socket
or a timeout context per frame (what that saves: docs/performance.md). The sweeps decide;
the connection acts (:meth:`~gateway.connection.Connection.ping`,
:meth:`~gateway.connection.Connection.drop`,
:meth:`~gateway.connection.Connection.missed_send_deadline`).
"""

from __future__ import annotations

import asyncio
import time

from .registry import Registry
from .send_policy import SendPolicy


async def watch_sends(registry: Registry, policy: SendPolicy) -> None:
    """Forever: tell any socket whose send is past the policy's deadline that it missed it."""
    loop = asyncio.get_running_loop()
    timeout_s, interval = policy.send_timeout_s, policy.watchdog_interval_s
    connections = registry.connections
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        for conn in connections:
            since = conn.sending_since
            if since and now - since > timeout_s and not conn.slow:
                conn.missed_send_deadline()


async def keep_alive(registry: Registry, heartbeat_s: float) -> None:
    """Forever, the contract's heartbeat in one sweep every ``heartbeat_s / 2``: a socket
    silent for ``heartbeat_s`` gets a ping; one that has answered nothing ``heartbeat_s``
    after its ping is dropped.

    Any frame counts as an answer. A silent socket is pinged between one and one and a half
    ``heartbeat_s`` after it was last heard, so an idle chat sees a frame at least that
    often (nginx's default read timeout never cuts one at the default heartbeat).
    """
    interval = heartbeat_s / 2
    connections = registry.connections
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        for conn in list(connections):
            pinged = conn.pinged_at
            if pinged:
                if conn.heard_at >= pinged:
                    conn.answered()
                    pinged = 0.0
                elif now - pinged >= heartbeat_s:
                    conn.drop()
                    continue
            if not pinged and now - conn.heard_at >= heartbeat_s:
                conn.ping(now)
