"""Two instances on one Redis act as one: history, replies, rooms, stop, broadcast, stats."""

from __future__ import annotations

import asyncio

from tests.chatclient import check_reply
from tests.conftest import eventually, make_token
from tests.stores.conftest import started

SLOW = "sim:tokens=40 sim:delay_ms=25"


async def end_of(sock, message_id: str) -> dict:
    """Read until the reply's terminal frame (``done`` or ``error``)."""
    while True:
        frame = await sock.recv()
        if frame["type"] in ("done", "error") and frame.get("message_id") == message_id:
            return frame


async def test_history_written_on_one_instance_reads_the_same_on_the_other(instances) -> None:
    """A conversation's messages, and the caller's conversation list, are the same from both."""
    a, b = await instances()
    token = make_token("alice")
    sock = await a.chat(token=token)
    reply = await sock.ask("hello from a")
    conv = sock.connected["conversation_id"]
    auth = {"Authorization": f"Bearer {token}"}

    async def settled() -> bool:  # the reply's end reaches Redis a moment after `done`
        resp = await b.client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
        return (await resp.json())["messages"][-1]["status"] == "complete"

    await eventually(settled)
    bodies = []
    for gw in (a, b):
        resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
        assert resp.status == 200
        bodies.append(await resp.json())
        listed = await (await gw.client.get("/api/v1/conversations", headers=auth)).json()
        assert [c["id"] for c in listed] == [conv]
    assert bodies[0] == bodies[1]
    roles = [(m["role"], m["status"]) for m in bodies[0]["messages"]]
    assert roles == [("user", "complete"), ("assistant", "complete")]
    assert bodies[0]["messages"][1]["content"] == reply.text


async def test_a_reply_produced_on_a_resumes_exactly_on_b(instances) -> None:
    """A client cut off from a mid-reply resumes on b from its last seq: nothing lost or repeated."""
    a, b = await instances()
    token = make_token("alice")
    sock, conv, start = await started(a, token, f"long story {SLOW}")
    held = ""
    last = 0
    while last < 10:
        frame = await sock.recv_type("delta")
        held += frame["text"]
        last = frame["seq"]
    sock.abort()
    other = await b.chat(token=token, conversation_id=conv)
    assert other.connected["running_message_id"] == start["message_id"]
    await other.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await other.reply(after_seq=last)
    assert rest.start["resumed"] is True
    assert rest.end["type"] == "done" and rest.end["finish_reason"] == "stop"
    assert rest.end["content_length"] == len(held + rest.text)
    history = await (
        await b.client.get(
            f"/api/v1/conversations/{conv}/messages",
            headers={"Authorization": f"Bearer {token}"},
        )
    ).json()
    assert history["messages"][-1]["content"] == held + rest.text


async def test_a_group_room_across_instances_sees_one_identical_stream(instances) -> None:
    """Members on a and b see the same user_message and the same reply text, each in order."""
    a, b = await instances()
    room = "conv-room-1"
    alice = await a.chat(token=make_token("alice"), session_type="group", conversation_id=room)
    bob = await b.chat(token=make_token("bob"), session_type="group", conversation_id=room)
    await bob.send(type="message", id="b-1", text=f"hi room {SLOW}")
    seen = []
    for sock in (alice, bob):
        user_message = await sock.recv_type("user_message")
        assert user_message["user"] == "bob" and user_message["text"].startswith("hi room")
        seen.append(await sock.reply())
    assert seen[0].message_id == seen[1].message_id
    assert seen[0].text == seen[1].text and seen[0].text
    assert seen[0].end["content_length"] == seen[1].end["content_length"]


async def test_one_reply_at_a_time_and_idempotent_ids_hold_across_instances(instances) -> None:
    """While a runs a reply, b refuses a second (busy); a re-sent id on b follows the first."""
    a, b = await instances()
    token = make_token("alice")
    first, conv, start = await started(a, token, f"slow {SLOW}")
    second = await b.chat(token=token, conversation_id=conv)
    await second.send(type="message", id="c-2", text="another")
    error = await second.recv_type("error")
    assert error["code"] == "busy" and error["reply_to"] == "c-2"
    await second.send(type="message", id="c-1", text=f"slow {SLOW}")  # a flaky re-send
    again = await second.reply()
    assert again.message_id == start["message_id"] and again.start["resumed"] is True
    done = await end_of(first, start["message_id"])
    assert done["type"] == "done" and done["content_length"] == len(again.text)
    assert len(a.sim.state.requests) == 1, "a re-sent id starts no second upstream call"


async def test_cancel_on_b_stops_the_reply_running_on_a(instances) -> None:
    """A cancel sent to b ends a's reply (finish_reason cancelled) and closes its upstream call."""
    a, b = await instances()
    token = make_token("alice")
    producer, conv, start = await started(a, token, "sim:tokens=400 sim:delay_ms=20 long")
    await producer.recv_type("delta")
    viewer = await b.chat(token=token, conversation_id=conv)
    await viewer.send(type="cancel")
    frame = await end_of(producer, start["message_id"])
    assert frame["type"] == "done" and frame["finish_reason"] == "cancelled"
    assert frame["seq"] < 400
    record = await a.sim.state.wait_closed(0)
    assert record.outcome == "disconnected", "the upstream request was closed"


async def test_an_admin_broadcast_reaches_clients_on_both_instances(instances) -> None:
    """POST /broadcast on a is delivered to a socket on a and a socket on b."""
    a, b = await instances()
    on_a = await a.chat(token=make_token("alice"))
    on_b = await b.chat(token=make_token("bob"))
    resp = await a.client.post(
        "/api/v1/broadcast",
        json={"message": "maintenance at noon"},
        headers={"Authorization": f"Bearer {make_token('root', admin=True)}"},
    )
    assert resp.status == 202
    for sock in (on_a, on_b):
        frame = await sock.recv_type("broadcast")
        assert frame["message"] == "maintenance at noon"


async def test_connection_stats_count_every_live_instance_and_forget_a_dead_one(instances) -> None:
    """GET /connections on a lists b's sockets; once b stops beating, they are gone."""
    a, b = await instances()
    await a.chat(token=make_token("alice"))
    await b.chat(token=make_token("bob"))
    await b.chat(token=make_token("bob"))
    admin = {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    from gateway import keys

    presence_b = b.app[keys.BACKENDS].presence
    await presence_b.beat()
    body = await (await a.client.get("/api/v1/connections", headers=admin)).json()
    assert body["total_connections"] == 3
    assert sorted(c["instance"] for c in body["connections"]) == ["a", "b", "b"]
    await b.client.close()  # b shuts down cleanly and leaves at once
    body = await (await a.client.get("/api/v1/connections", headers=admin)).json()
    assert [c["instance"] for c in body["connections"]] == ["a"]


async def test_the_rate_limit_is_shared_by_the_instances(instances) -> None:
    """messages_per_minute = 2 counts a user's messages on a and b together."""
    a, b = await instances("[limits]\nmessages_per_minute = 2\n")
    token = make_token("alice")
    on_a = await a.chat(token=token)
    on_b = await b.chat(token=token)
    await on_a.ask("one sim:tokens=2 sim:delay_ms=0")
    await on_b.ask("two sim:tokens=2 sim:delay_ms=0")
    await on_a.send(type="message", id="c-3", text="three")
    error = await on_a.recv_type("error")
    assert error["code"] == "rate_limited" and error["retryable"] is True


async def test_a_generation_watched_on_b_follows_the_reply_on_a(instances) -> None:
    """GET /generations/{id} on b reports a's running reply, then its completion."""
    a, b = await instances()
    token = make_token("alice")
    sock = await a.chat(token=token)
    await sock.send(type="message", id="c-1", text=f"watch me {SLOW}")
    start = await sock.recv_type("start")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/generations/{start['message_id']}"
    running = await (await b.client.get(url, headers=auth)).json()
    assert running["status"] == "running" and running["conversation_id"]
    async with b.client.ws_connect(url + "/ws", headers=auth) as ws:
        statuses = [msg.json() async for msg in ws]
    assert statuses[-1]["status"] == "completed" and statuses[-1]["finish_reason"] == "stop"
    assert statuses[-1]["seq"] == 40


async def test_history_survives_a_gateway_restart(instances, redis_server) -> None:
    """An instance that restarts on the same Redis serves the conversation written before."""
    (a,) = await instances(names=("a",))
    token = make_token("alice")
    sock = await a.chat(token=token)
    reply = await sock.ask("remember this")
    conv = sock.connected["conversation_id"]
    await a.client.close()
    (again,) = await instances(names=("a2",))
    resp = await again.client.get(
        f"/api/v1/conversations/{conv}/messages", headers={"Authorization": f"Bearer {token}"}
    )
    assert (await resp.json())["messages"][-1]["content"] == reply.text
    follow_up = await again.chat(token=token, conversation_id=conv)
    second = await follow_up.ask("and then?", msg_id="c-2")
    check_reply(second)
    sent = again.sim.state.requests[-1].body["input"]["messages"]
    assert any(m["content"] == reply.text for m in sent), "the history went upstream"


async def test_thirty_rooms_spanning_instances_stream_exactly_at_once(instances) -> None:
    """Thirty concurrent replies produced on a, each followed by a member on b: b's texts equal
    a's, step for step (b's one stream reader serves every mirror)."""
    a, b = await instances()
    pairs = []
    for i in range(30):
        room = f"conv-many-{i}"
        pairs.append(
            (
                await a.chat(token=make_token(f"u{i}"), session_type="group", conversation_id=room),
                await b.chat(token=make_token(f"v{i}"), session_type="group", conversation_id=room),
            )
        )
    for i, (on_a, _) in enumerate(pairs):
        await on_a.send(type="message", id=f"c-{i}", text=f"room {i} sim:tokens=50 sim:delay_ms=5")

    async def both(on_a, on_b):
        return await on_a.reply(timeout=30), await on_b.reply(timeout=30)

    results = await asyncio.gather(*(both(x, y) for x, y in pairs))
    for i, (mine, theirs) in enumerate(results):
        assert mine.text == theirs.text and f"room {i}" in mine.text
        assert mine.end["seq"] == theirs.end["seq"] == 50


async def test_a_generated_anonymous_secret_is_shared_through_redis(instances) -> None:
    """No auth.anonymous_secret: the first instance keeps one in Redis (SET NX), so a
    credential issued by a is the same identity on b; the cookie's value is not the id."""
    a, b = await instances()
    resp = await a.client.post("/api/v1/anonymous")
    body = await resp.json()
    b.client.session.cookie_jar.clear()
    ws = await b.client.ws_connect("/api/v1/assistants/default/ws", params={"auth": "frame"})
    await ws.send_json({"type": "auth", "token": body["token"]})
    connected = await ws.receive_json(timeout=5)
    assert connected["type"] == "connected" and connected["user"] == body["user"]
    assert body["user"] not in body["token"]
    await ws.close()


async def test_signing_in_inside_a_room_on_b_keeps_its_owner_on_a(instances) -> None:
    """An anonymous member of alice's empty room signs in as bob on b: the room is still
    alice's on both instances, and bob is only a member."""
    a, b = await instances()
    alice = await a.chat(token=make_token("alice"), session_type="group", conversation_id="r4")
    b.client.session.cookie_jar.clear()
    intruder = await b.chat(session_type="group", conversation_id="r4")
    await intruder.send(type="auth", token=make_token("bob"))
    assert (await intruder.recv_type("connected"))["user"] == "bob"
    for gw in (a, b):
        for sub in ("alice", "bob"):
            auth = {"Authorization": f"Bearer {make_token(sub)}"}
            resp = await gw.client.get("/api/v1/conversations", headers=auth)
            assert [c["id"] for c in await resp.json()] == ["r4"], (gw, sub)
    await alice.ask("mine sim:tokens=3 sim:delay_ms=0")
    resp = await a.client.post(
        "/api/v1/conversations/r4/reset",
        headers={"Authorization": f"Bearer {make_token('bob')}"},
    )
    assert resp.status == 403
    resp = await b.client.post(
        "/api/v1/conversations/r4/reset",
        headers={"Authorization": f"Bearer {make_token('alice')}"},
    )
    assert resp.status == 200


async def test_done_on_either_instance_means_the_next_message_starts_at_once(instances) -> None:
    """A room member told `done` on either instance sends the next message immediately: the
    reply was settled (history stored, conversation freed) before `done` was shown anywhere,
    so no viewer gets `busy` and the history already holds the whole reply."""
    a, b = await instances()
    alice = await a.chat(token=make_token("alice"), session_type="group", conversation_id="r9")
    bob = await b.chat(token=make_token("bob"), session_type="group", conversation_id="r9")
    for turn in range(3):
        sender, other = (alice, bob) if turn % 2 == 0 else (bob, alice)
        await sender.send(
            type="message", id=f"c-{turn}", text=f"turn {turn} sim:tokens=5 sim:delay_ms=0"
        )
        mine = await sender.reply()
        theirs = await other.reply()
        assert mine.end["type"] == theirs.end["type"] == "done"
        messages = (
            await (
                await b.client.get(
                    "/api/v1/conversations/r9/messages",
                    headers={"Authorization": f"Bearer {make_token('bob')}"},
                )
            ).json()
        )["messages"]
        assert messages[-1]["status"] == "complete" and messages[-1]["content"] == mine.text
