"""Deleting a conversation with two instances on one Redis reaches both (contract section 14)."""

from __future__ import annotations

import aiohttp

from gateway import keys
from tests.conftest import eventually, make_token
from tests.stores.conftest import started

SLOW = "sim:tokens=400 sim:delay_ms=20"


async def close_frame(sock) -> tuple[int, str]:
    """The code and reason of the server's close frame."""
    while True:
        msg = await sock.ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return msg.data, msg.extra
        assert msg.type is aiohttp.WSMsgType.TEXT, msg


async def test_delete_on_b_stops_as_reply_and_closes_as_viewers(instances) -> None:
    """A reply produced on a, viewed on a and b; DELETE on b: both viewers closed with 1000
    'conversation deleted', the reply stopped, history and resume data gone on both."""
    a, b = await instances()
    token = make_token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    sock_a, conv, start = await started(a, token, f"long {SLOW}")
    await sock_a.recv_type("delta")
    sock_b = await b.chat(token=token, conversation_id=conv)
    await sock_b.send(type="resume", message_id=start["message_id"], last_seq=0)
    await sock_b.recv_type("delta")
    resp = await b.client.delete(f"/api/v1/conversations/{conv}", headers=auth)
    assert resp.status == 204
    assert await close_frame(sock_b) == (1000, "conversation deleted")
    assert await close_frame(sock_a) == (1000, "conversation deleted")
    for gw in (a, b):
        path = f"/api/v1/conversations/{conv}/messages"
        assert (await gw.client.get(path, headers=auth)).status == 404
        path = f"/api/v1/generations/{start['message_id']}"
        assert (await gw.client.get(path, headers=auth)).status == 404
        assert await (await gw.client.get("/api/v1/conversations", headers=auth)).json() == []
    supervisor = a.app[keys.TURNS].supervisor

    async def stopped() -> bool:
        return not supervisor.runs(start["message_id"])

    await eventually(stopped)
