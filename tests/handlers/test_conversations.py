"""REST conversations: list, messages, reset; ownership and errors."""

from __future__ import annotations

from tests.conftest import make_token


def bearer(user: str, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user, **kw)}"}


async def test_list_and_messages_of_own_conversation(gateway) -> None:
    """The caller sees its conversations newest first and their messages with statuses."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    reply = await sock.ask("hello sim:tokens=5 sim:delay_ms=0")
    conv = sock.connected["conversation_id"]
    resp = await gw.client.get("/api/v1/conversations", headers=bearer("alice"))
    assert resp.status == 200
    listed = await resp.json()
    assert [c["id"] for c in listed] == [conv]
    resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer("alice"))
    messages = (await resp.json())["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[1]["content"] == reply.text
    assert set(messages[0]) == {"id", "role", "content", "status", "created_at"}


async def test_anonymous_cookie_reaches_the_same_conversations(gateway) -> None:
    """Without auth, the anonymous cookie set at the upgrade identifies the REST caller."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.ask("hi sim:tokens=3 sim:delay_ms=0")
    resp = await gw.client.get("/api/v1/conversations")
    assert resp.status == 200
    assert [c["id"] for c in await resp.json()] == [sock.connected["conversation_id"]]


async def test_refusals_have_json_error_bodies(gateway) -> None:
    """401 without a token, 403 for someone else's conversation, 404 for an unknown one."""
    gw = await gateway("[auth]\nrequired = true\n")
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    cases = [
        ("/api/v1/conversations", {}, 401, "unauthorized"),
        (f"/api/v1/conversations/{conv}/messages", bearer("bob"), 403, "forbidden"),
        ("/api/v1/conversations/nope/messages", bearer("alice"), 404, "not_found"),
    ]
    for path, headers, status, code in cases:
        resp = await gw.client.get(path, headers=headers)
        assert resp.status == status, path
        body = await resp.json()
        assert body["error"]["code"] == code and body["error"]["message"]


async def test_admin_reads_any_conversation(gateway) -> None:
    """An admin token may read another user's conversation."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    conv = sock.connected["conversation_id"]
    resp = await gw.client.get(
        f"/api/v1/conversations/{conv}/messages", headers=bearer("root", admin=True)
    )
    assert resp.status == 200


async def test_reset_over_rest_clears_and_notifies_live_viewers(gateway) -> None:
    """POST reset: history empty; the live socket gets history_cleared."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask("hi sim:tokens=3 sim:delay_ms=0")
    conv = sock.connected["conversation_id"]
    resp = await gw.client.post(f"/api/v1/conversations/{conv}/reset", headers=bearer("alice"))
    assert resp.status == 200
    assert (await sock.recv_type("history_cleared"))["conversation_id"] == conv
    resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=bearer("alice"))
    assert (await resp.json())["messages"] == []
    resp = await gw.client.post(f"/api/v1/conversations/{conv}/reset", headers=bearer("bob"))
    assert resp.status == 403
