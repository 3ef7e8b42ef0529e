"""Managing conversations (contract section 14): rename, delete, regenerate, edit."""

from __future__ import annotations

import aiohttp

from tests.conftest import make_token

FAST = "sim:tokens=5 sim:delay_ms=0"
SLOW = "sim:tokens=200 sim:delay_ms=20"


def bearer(user: str, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user, **kw)}"}


async def close_frame(sock) -> tuple[int, str]:
    """The code and reason of the server's close frame (what a browser's close event shows;
    aiohttp's own close_code turns 1006 when its echo finds the socket already gone)."""
    while True:
        msg = await sock.ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return msg.data, msg.extra
        assert msg.type is aiohttp.WSMsgType.TEXT, msg


async def history(gw, conv: str, user: str = "alice") -> list[dict]:
    resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer(user))
    assert resp.status == 200
    return (await resp.json())["messages"]


async def test_list_rows_carry_title_times_and_message_count(gateway) -> None:
    """A row's title is the first message's first 80 characters; message_count counts history."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    text = "x" * 90 + " " + FAST
    await sock.ask(text)
    rows = await (await gw.client.get("/api/v1/conversations", headers=bearer("alice"))).json()
    assert rows[0]["title"] == text[:80]
    assert rows[0]["message_count"] == 2
    assert rows[0]["created_at"] and rows[0]["updated_at"]


async def test_rename_changes_the_title_in_the_list(gateway) -> None:
    """PATCH with a title renames; the list then shows it."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask(f"hello {FAST}")
    conv = sock.connected["conversation_id"]
    resp = await gw.client.patch(
        f"/api/v1/conversations/{conv}", json={"title": "Trip plans"}, headers=bearer("alice")
    )
    assert resp.status == 200
    assert (await resp.json())["title"] == "Trip plans"
    rows = await (await gw.client.get("/api/v1/conversations", headers=bearer("alice"))).json()
    assert [r["title"] for r in rows] == ["Trip plans"]


async def test_rename_refuses_bad_titles_and_other_users(gateway) -> None:
    """Empty, too long, lone-surrogate or extra-field bodies are refused; so is another user."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask(f"hello {FAST}")
    path = f"/api/v1/conversations/{sock.connected['conversation_id']}"
    cases = [
        ({"title": " "}, bearer("alice"), 422),
        ({"title": "t" * 201}, bearer("alice"), 422),
        ({"title": "a", "x": 1}, bearer("alice"), 422),
        ({"title": 5}, bearer("alice"), 422),
        ({"title": "ok"}, bearer("bob"), 403),
    ]
    for body, headers, status in cases:
        resp = await gw.client.patch(path, json=body, headers=headers)
        assert resp.status == status, body
        assert (await resp.json())["error"]["message"]
    resp = await gw.client.patch(
        path,
        data='{"title": "\\ud800"}',
        headers={**bearer("alice"), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    resp = await gw.client.patch(
        path, json={"title": "t" * 200}, headers=bearer("root", admin=True)
    )
    assert resp.status == 200


async def test_delete_stops_the_reply_closes_viewers_and_forgets_everything(gateway) -> None:
    """DELETE mid-reply: 204, viewers closed with 1000 'conversation deleted', history and
    the reply's resume data gone, the list empty."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-1", text=f"long {SLOW}")
    start = await sock.recv_type("start")
    await sock.recv_type("delta")
    conv = sock.connected["conversation_id"]
    other = await gw.chat(token=make_token("bob"))
    resp = await gw.client.delete(f"/api/v1/conversations/{conv}", headers=bearer("bob"))
    assert resp.status == 403
    resp = await gw.client.delete(f"/api/v1/conversations/{conv}", headers=bearer("alice"))
    assert resp.status == 204
    assert await close_frame(sock) == (1000, "conversation deleted")
    resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer("alice"))
    assert resp.status == 404
    resp = await gw.client.get(
        f"/api/v1/generations/{start['message_id']}", headers=bearer("alice")
    )
    assert resp.status == 404
    assert (
        await (await gw.client.get("/api/v1/conversations", headers=bearer("alice"))).json() == []
    )
    resp = await gw.client.delete(f"/api/v1/conversations/{conv}", headers=bearer("alice"))
    assert resp.status == 404
    await other.send(type="ping")
    assert (await other.recv_type("pong"))["type"] == "pong"


async def test_cookie_delete_from_the_page_needs_no_content_type(gateway) -> None:
    """The anonymous cookie's DELETE passes the same-site check with the page's Origin alone,
    and is refused from another site."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.ask(f"hi {FAST}")
    path = f"/api/v1/conversations/{sock.connected['conversation_id']}"
    resp = await gw.client.delete(path, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    host = f"http://{gw.client.host}:{gw.client.port}"
    resp = await gw.client.delete(path, headers={"Origin": host})
    assert resp.status == 204


async def test_regenerate_replaces_the_last_reply_and_keeps_it_as_replaced(gateway) -> None:
    """regenerate: a new reply to the same turn; history keeps the old one as replaced."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    first = await sock.ask(f"tell me {FAST}")
    await sock.send(type="regenerate")
    second = await sock.reply()
    assert second.message_id != first.message_id
    assert second.start["reply_to"] == "c-1"
    messages = await history(gw, sock.connected["conversation_id"])
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "replaced"),
        ("assistant", "complete"),
    ]
    assert [m["id"] for m in messages[1:]] == [first.message_id, second.message_id]
    assert messages[2]["content"] == second.text


async def test_regenerate_follows_the_message_rules(gateway) -> None:
    """Nothing to answer: bad_request; while a reply runs: busy; past the rate: rate_limited."""
    gw = await gateway("[limits]\nmessages_per_minute = 2\n")
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="regenerate")
    assert (await sock.recv_type("error"))["code"] == "bad_request"
    await sock.send(type="message", id="c-1", text=f"long {SLOW}")
    await sock.recv_type("start")
    await sock.send(type="regenerate")
    assert (await sock.recv_type("error"))["code"] == "busy"
    await sock.send(type="cancel")
    await sock.recv_type("done")
    await sock.send(type="regenerate")
    await sock.reply()
    await sock.send(type="regenerate")
    assert (await sock.recv_type("error"))["code"] == "rate_limited"


async def test_edit_truncates_after_the_message_and_answers_the_new_text(gateway) -> None:
    """edit by client id or history id: later turns go, the text changes, a reply starts."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask(f"first {FAST}", "c-1")
    await sock.ask(f"second {FAST}", "c-2")
    conv = sock.connected["conversation_id"]
    await sock.send(type="edit", message_id="c-1", text=f"first, better {FAST}")
    echo = await sock.recv_type("user_message")
    assert (echo["id"], echo["text"]) == ("c-1", f"first, better {FAST}")
    reply = await sock.reply()
    messages = await history(gw, conv)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", f"first, better {FAST}"),
        ("assistant", reply.text),
    ]
    await sock.send(type="edit", message_id=messages[0]["id"], text=f"third {FAST}")
    await sock.reply()
    assert (await history(gw, conv))[0]["content"] == f"third {FAST}"


async def test_edit_refuses_unknown_ids_bad_frames_and_busy(gateway) -> None:
    """An unknown id, an empty text, an unknown field, or a running reply: an error, no change."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask(f"first {FAST}", "c-1")
    conv = sock.connected["conversation_id"]
    before = await history(gw, conv)
    for frame in (
        {"message_id": "nope", "text": "x"},
        {"message_id": "c-1", "text": " "},
        {"message_id": "c-1", "text": "x", "extra": 1},
        {"text": "x"},
    ):
        await sock.send(type="edit", **frame)
        assert (await sock.recv_type("error"))["code"] == "bad_request", frame
    await sock.send(type="message", id="c-2", text=f"long {SLOW}")
    await sock.recv_type("start")
    await sock.send(type="edit", message_id="c-1", text="x")
    assert (await sock.recv_type("error"))["code"] == "busy"
    await sock.send(type="cancel")
    await sock.recv_type("done")
    assert (await history(gw, conv))[:2] == before


async def test_in_a_group_only_the_owner_or_the_sender_may_redo_a_turn(gateway) -> None:
    """A member may not regenerate or edit another's turn; the sender and the owner may."""
    gw = await gateway()
    owner = await gw.chat(token=make_token("alice"), session_type="group", conversation_id="room-1")
    member = await gw.chat(token=make_token("bob"), session_type="group", conversation_id="room-1")
    await owner.ask(f"alice asks {FAST}", "a-1")
    await member.reply()
    await member.send(type="regenerate")
    assert (await member.recv_type("error"))["code"] == "forbidden"
    await member.send(type="edit", message_id="a-1", text="hijack")
    assert (await member.recv_type("error"))["code"] == "forbidden"
    await member.ask(f"bob asks {FAST}", "b-1")
    await owner.reply()
    await member.send(type="regenerate")
    await member.reply()
    await owner.reply()
    await owner.send(type="edit", message_id="b-1", text=f"alice fixes {FAST}")
    await owner.reply()
