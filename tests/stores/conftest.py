"""Two gateway instances in this process, sharing one real Redis and one simulator."""

from __future__ import annotations

import pytest

from gateway import keys


@pytest.fixture
async def instances(gateway, redis_server):
    """``await instances(toml)`` starts instances ``a`` and ``b`` on ``redis_server``."""

    async def make(toml: str = "", names: tuple[str, ...] = ("a", "b")):
        started = []
        for name in names:
            gw = await gateway(
                f"""
[server]
instance_id = "{name}"
[redis]
url = "{redis_server.url}"
heartbeat_s = 0.2
{toml}
"""
            )
            await gw.app[keys.BACKENDS].bus.wait_ready()  # type: ignore[attr-defined]
            await gw.app[keys.BACKENDS].presence.beat()  # type: ignore[attr-defined]
            started.append(gw)
        return started

    return make


async def started(gw, token: str, text: str, msg_id: str = "c-1"):
    """Connect to ``gw``, send a message, read its ``start``: (socket, conversation, start)."""
    sock = await gw.chat(token=token)
    await sock.send(type="message", id=msg_id, text=text)
    return sock, sock.connected["conversation_id"], await sock.recv_type("start")
