"""Admin endpoints and the public assistant list."""

from __future__ import annotations

from tests.conftest import make_token
from tests.handlers.test_conversations import bearer


async def test_assistants_are_listed_for_anyone(gateway) -> None:
    """GET /api/v1/assistants lists name, title and greeting."""
    gw = await gateway('[assistants.support]\ntitle = "Support"\ngreeting = "Hi!"\n')
    resp = await gw.client.get("/api/v1/assistants")
    body = await resp.json()
    assert {"name": "support", "title": "Support", "greeting": "Hi!"} in body
    assert any(a["name"] == "default" for a in body)


async def test_connections_for_admins_only_with_per_connection_stats(gateway) -> None:
    """Admins see every connection with its counters; others get 403."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.ask("hi sim:tokens=5 sim:delay_ms=0")
    assert (await gw.client.get("/api/v1/connections", headers=bearer("alice"))).status == 403
    resp = await gw.client.get("/api/v1/connections", headers=bearer("root", admin=True))
    body = await resp.json()
    assert body["total_connections"] == 1
    assert body["by_assistant"] == {"default": 1} and body["by_session_type"] == {"person": 1}
    conn = body["connections"][0]
    assert conn["user"] == "alice" and conn["frames_sent"] >= 5 and conn["bytes_behind"] == 0
    assert set(conn) >= {
        "connection_id",
        "conversation_id",
        "created_at",
        "last_active",
        "instance",
        "frames_merged",
    }


async def test_broadcast_reaches_matching_connections(gateway) -> None:
    """A broadcast filtered by user reaches that user's sockets only; 202."""
    gw = await gateway()
    alice = await gw.chat(token=make_token("alice"))
    bob = await gw.chat(token=make_token("bob"))
    resp = await gw.client.post(
        "/api/v1/broadcast",
        json={"message": "maintenance", "user": "bob"},
        headers=bearer("root", admin=True),
    )
    assert resp.status == 202
    frame = await bob.recv_type("broadcast")
    assert frame["message"] == "maintenance"
    await alice.send(type="ping")
    assert (await alice.recv())["type"] == "pong"  # nothing for alice before her pong


async def test_broadcast_validation_errors(gateway) -> None:
    """Wrong fields get 422 naming the problem, broken JSON 400; non-admins 403."""
    gw = await gateway()
    admin = bearer("root", admin=True)
    cases = [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "x", "colour": "red"}, "colour"),
        ([1], "object"),
    ]
    for body, fragment in cases:
        resp = await gw.client.post("/api/v1/broadcast", json=body, headers=admin)
        assert resp.status == 422
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_body" and fragment in error["message"]
    resp = await gw.client.post("/api/v1/broadcast", data=b"{", headers=admin)
    assert resp.status == 400
    resp = await gw.client.post("/api/v1/broadcast", json={"message": "x"}, headers=bearer("bob"))
    assert resp.status == 403


async def test_rest_writes_are_rate_limited_per_user(gateway) -> None:
    """Past limits.messages_per_minute, REST writes get 429 with a JSON error."""
    gw = await gateway("[limits]\nmessages_per_minute = 2\n")
    admin = bearer("root", admin=True)
    statuses = [
        (await gw.client.post("/api/v1/broadcast", json={"message": "x"}, headers=admin)).status
        for _ in range(3)
    ]
    assert statuses == [202, 202, 429]
    resp = await gw.client.post("/api/v1/broadcast", json={"message": "x"}, headers=admin)
    assert (await resp.json())["error"]["code"] == "rate_limited"


async def test_a_broadcast_of_whitespace_is_what_the_schema_allows(gateway) -> None:
    """The spec allows any non-empty message: one of a control whitespace is delivered (202),
    as schemathesis expects, not refused as blank."""
    gw = await gateway()
    headers = bearer("root", admin=True)
    resp = await gw.client.post("/api/v1/broadcast", json={"message": "\r"}, headers=headers)
    assert resp.status == 202
