"""The heartbeat: pings to silent sockets, a peer that answers none dropped, pings answered."""

from __future__ import annotations

import asyncio
import time

from aiohttp import WSMsgType

from gateway import keys
from tests.conftest import make_token, wait_until

HEARTBEAT = "[server]\nheartbeat_s = 0.2\n"


async def _connected(gw, **kw):
    ws = await gw.client.ws_connect("/api/v1/assistants/default/ws", autoping=False, **kw)
    first = await ws.receive(timeout=5)
    assert first.type is WSMsgType.TEXT and '"connected"' in first.data
    return ws


async def test_a_silent_peer_is_pinged_and_dropped_when_it_answers_none(gateway) -> None:
    """A socket that never answers is pinged after heartbeat_s and dropped about heartbeat_s
    after the ping; it is gone from the registry."""
    gw = await gateway(HEARTBEAT)
    ws = await _connected(gw)
    started = time.monotonic()
    ping = await ws.receive(timeout=5)
    assert ping.type is WSMsgType.PING
    assert 0.15 <= time.monotonic() - started < 1.0
    pinged = time.monotonic()
    end = await ws.receive(timeout=5)  # no pong sent: the server closes the transport
    assert end.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR)
    assert 0.15 <= time.monotonic() - pinged < 1.0
    await wait_until(lambda: len(gw.app[keys.REGISTRY]) == 0, timeout=5)


async def test_a_peer_that_answers_pings_stays_connected(gateway) -> None:
    """Answering each ping keeps the socket open across many heartbeats."""
    gw = await gateway(HEARTBEAT)
    ws = await _connected(gw)
    pings = 0
    while pings < 5:  # a second of heartbeats, at least 5 × heartbeat_s
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.PING, msg
        pings += 1
        await ws.pong(msg.data)
    await ws.send_json({"type": "ping"})
    msg = await ws.receive(timeout=5)
    while msg.type is WSMsgType.PING:
        await ws.pong(msg.data)
        msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT and '"pong"' in msg.data
    await ws.close()


async def test_a_chatting_peer_is_not_pinged(gateway) -> None:
    """Frames from the client count as being heard: a client that talks gets no ping."""
    gw = await gateway("[server]\nheartbeat_s = 0.6\n")
    ws = await _connected(gw)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        await ws.send_json({"type": "ping"})
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.TEXT and '"pong"' in msg.data
        await asyncio.sleep(0.1)  # the client's pace: it talks every 0.1 s
    await ws.close()


async def test_client_pings_are_answered_before_and_after_sign_in(gateway) -> None:
    """A protocol ping gets a pong while the socket waits for its auth frame, and after."""
    gw = await gateway("[auth]\nrequired = true\n")
    ws = await gw.client.ws_connect("/api/v1/assistants/default/ws", autoping=False)
    await ws.ping(b"before")
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"before")
    await ws.send_json({"type": "auth", "token": make_token("alice")})
    first = await ws.receive(timeout=5)
    assert first.type is WSMsgType.TEXT and '"connected"' in first.data
    await ws.ping(b"after")
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"after")
    await ws.close()
