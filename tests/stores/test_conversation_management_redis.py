"""Contract section 14 with two instances on one Redis: delete, regenerate and edit reach both."""

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


async def test_regenerate_and_edit_on_b_reach_a_viewer_on_a(instances) -> None:
    """A regenerate sent to b streams its reply to a's viewer too; an edit sent to b brings
    a's viewer the edited user_message, then the reply; history agrees on both."""
    a, b = await instances()
    token = make_token("alice")
    auth = {"Authorization": f"Bearer {token}"}
    sock_a = await a.chat(token=token)
    conv = sock_a.connected["conversation_id"]
    first = await sock_a.ask("hello sim:tokens=5 sim:delay_ms=0")
    sock_b = await b.chat(token=token, conversation_id=conv)

    async def settled() -> bool:  # the reply's end reaches Redis a moment after `done`
        resp = await b.client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
        return (await resp.json())["messages"][-1]["status"] == "complete"

    await eventually(settled)
    await sock_b.send(type="regenerate")
    again = await sock_b.reply()
    seen_on_a = await sock_a.reply()
    assert seen_on_a.message_id == again.message_id != first.message_id
    assert seen_on_a.text == again.text
    await eventually(settled)
    await sock_b.send(type="edit", message_id="c-1", text="hello again sim:tokens=5 sim:delay_ms=0")
    echo = await sock_a.recv_type("user_message")
    assert echo["text"] == "hello again sim:tokens=5 sim:delay_ms=0"
    await sock_a.reply()
    await sock_b.reply()
    await eventually(settled)
    for gw in (a, b):
        resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
        messages = (await resp.json())["messages"]
        assert [(m["role"], m["status"]) for m in messages] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert messages[0]["content"] == "hello again sim:tokens=5 sim:delay_ms=0"
