"""Turns over a real socket against the simulator: replies, busy, cancel, interrupt, reset,
idempotent ids, resume, orphan grace, rooms."""

from __future__ import annotations

import asyncio

from gateway import keys
from gateway.llm.simulator import parse_options, reply_text
from tests.conftest import make_token, wait_until


def expected(prompt: str) -> str:
    return reply_text(parse_options(prompt, None).prompt, parse_options(prompt, None))


async def history(gw, conv_id: str) -> list[dict]:
    backends = gw.app[keys.BACKENDS]
    conv = await backends.conversations.get(conv_id)
    return [m.public() for m in conv.messages]


async def test_a_reply_streams_the_simulators_exact_text_into_history(gateway) -> None:
    """start, deltas, done: the deltas concatenate to the simulator's reply and the history."""
    gw = await gateway()
    sock = await gw.chat()
    prompt = "Hello 世界 sim:tokens=40 sim:delay_ms=1"
    await sock.send(type="message", id="c-1", text=prompt)
    echoed = await sock.recv_type("user_message")
    assert echoed["id"] == "c-1" and echoed["text"] == prompt
    reply = await sock.reply()
    assert reply.start["reply_to"] == "c-1"
    assert reply.end["finish_reason"] == "stop"
    assert reply.text == expected(prompt)
    messages = await history(gw, sock.connected["conversation_id"])
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[1]["content"] == reply.text


async def test_history_goes_upstream_with_the_system_prompt(gateway) -> None:
    """The second turn sends the system prompt, the first turn and its reply upstream."""
    gw = await gateway('[assistants.default]\nsystem_prompt = "Be brief."\nmodel = "qwen-max"\n')
    sock = await gw.chat()
    first = await sock.ask("one sim:tokens=3 sim:delay_ms=0", "c-1")
    await sock.ask("two sim:tokens=3 sim:delay_ms=0", "c-2")
    body = gw.sim.state.requests[-1].body
    assert body["model"] == "qwen-max"
    assert body["input"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one sim:tokens=3 sim:delay_ms=0"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "two sim:tokens=3 sim:delay_ms=0"},
    ]


async def test_second_message_while_running_is_busy_and_leaves_no_trace(gateway) -> None:
    """A message during a reply gets error busy (reply_to set) and is not stored."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="long sim:tokens=200 sim:delay_ms=10")
    await sock.recv_type("start")
    await sock.send(type="message", id="c-2", text="me too")
    err = await sock.recv_type("error")
    assert (err["code"], err["reply_to"], err["retryable"]) == ("busy", "c-2", True)
    await sock.send(type="cancel")
    done = await sock.recv_type("done")
    assert done["finish_reason"] == "cancelled"
    texts = [m["content"] for m in await history(gw, sock.connected["conversation_id"])]
    assert "me too" not in texts


async def test_cancel_stops_upstream_at_once_and_keeps_partial_text(gateway) -> None:
    """cancel: done(cancelled), the simulator sees the stream closed, history keeps the part."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="long sim:tokens=500 sim:delay_ms=10")
    start = await sock.recv_type("start")
    first = await sock.recv_type("delta")
    await sock.send(type="cancel", message_id=start["message_id"])
    rest = []
    while (frame := await sock.recv())["type"] != "done":
        rest.append(frame)
    assert frame["finish_reason"] == "cancelled"
    record = await gw.sim.state.wait_closed(within=1.0)
    assert record.outcome == "disconnected"
    text = first["text"] + "".join(f["text"] for f in rest if f["type"] == "delta")
    assert frame["content_length"] == len(text)
    stored = (await history(gw, sock.connected["conversation_id"]))[-1]
    assert (stored["status"], stored["content"]) == ("cancelled", text)


async def test_interrupt_ends_the_running_reply_before_the_new_start(gateway) -> None:
    """A message with interrupt: the old reply's done(interrupted) comes before the new start."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="long sim:tokens=500 sim:delay_ms=10")
    old = await sock.recv_type("start")
    await sock.send(
        type="message", id="c-2", text="new sim:tokens=5 sim:delay_ms=0", interrupt=True
    )
    frames = []
    while True:
        frame = await sock.recv()
        frames.append(frame)
        if frame["type"] == "done" and frame["message_id"] != old["message_id"]:
            break
    kinds = [(f["type"], f.get("message_id") == old["message_id"]) for f in frames]
    old_done = kinds.index(("done", True))
    new_start = kinds.index(("start", False))
    assert old_done < new_start
    assert frames[old_done]["finish_reason"] == "interrupted"


async def test_reset_clears_history_and_tells_viewers(gateway) -> None:
    """reset: history is empty and every viewer of the conversation gets history_cleared."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.ask("hi sim:tokens=3 sim:delay_ms=0")
    await sock.send(type="reset")
    cleared = await sock.recv_type("history_cleared")
    assert cleared["conversation_id"] == sock.connected["conversation_id"]
    assert await history(gw, cleared["conversation_id"]) == []


async def test_duplicate_message_id_replays_the_reply_with_one_upstream_call(gateway) -> None:
    """Re-sending a message id after reconnecting gets the same reply; one upstream request."""
    gw = await gateway()
    sock = await gw.chat()
    first = await sock.ask("once sim:tokens=20 sim:delay_ms=0", "c-7")
    conv = sock.connected["conversation_id"]
    await sock.ws.close()
    again = await gw.chat(conversation_id=conv)
    await again.send(type="message", id="c-7", text="once sim:tokens=20 sim:delay_ms=0")
    replay = await again.reply()
    assert replay.start["resumed"] is True and replay.text == first.text
    assert len(gw.sim.state.requests) == 1


async def test_resume_after_abrupt_close_from_several_points(gateway) -> None:
    """Resume with last_seq 0, mid-way, and after the end yields exactly the missing text."""
    gw = await gateway()
    sock = await gw.chat()
    prompt = "resumable sim:tokens=60 sim:delay_ms=5"
    await sock.send(type="message", id="c-1", text=prompt)
    start = await sock.recv_type("start")
    got = [await sock.recv_type("delta") for _ in range(3)]
    sock.abort()
    conv = sock.connected["conversation_id"]
    full = expected(prompt)
    for last_seq in (0, got[-1]["seq"]):
        other = await gw.chat(conversation_id=conv)
        await other.send(type="resume", message_id=start["message_id"], last_seq=last_seq)
        reply = await other.reply(after_seq=last_seq)
        assert reply.start["resumed"] is True
        held = "".join(d["text"] for d in got if d["seq"] <= last_seq)
        assert held + reply.text == full
        assert reply.end["content_length"] == len(full)
    after_end = await gw.chat(conversation_id=conv)
    await after_end.send(type="resume", message_id=start["message_id"], last_seq=reply.end["seq"])
    tail = await after_end.reply(after_seq=reply.end["seq"])
    assert tail.deltas == [] and tail.end["type"] == "done"


async def test_resume_of_unknown_or_foreign_reply_is_unavailable(gateway) -> None:
    """Another user's reply id, or an unknown one: error resume_unavailable."""
    gw = await gateway()
    alice = await gw.chat(token=make_token("alice"))
    reply = await alice.ask("hi sim:tokens=3 sim:delay_ms=0")
    bob = await gw.chat(token=make_token("bob"))
    for message_id in (reply.message_id, "m-unknown"):
        await bob.send(type="resume", message_id=message_id, last_seq=0)
        err = await bob.recv_type("error")
        assert err["code"] == "resume_unavailable"


async def test_orphaned_reply_runs_for_the_grace_then_upstream_closes(gateway) -> None:
    """With no viewer the reply keeps running for orphan_grace_s, then the upstream is closed."""
    gw = await gateway("[limits]\norphan_grace_s = 0.5\n")
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="long sim:tokens=1000 sim:delay_ms=10")
    await sock.recv_type("delta")
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await sock.ws.close()
    record = await gw.sim.state.wait_closed(within=5)
    waited = loop.time() - closed_at
    assert record.outcome == "disconnected"
    assert 0.4 <= waited < 3, waited
    stored = (await history(gw, sock.connected["conversation_id"]))[-1]
    assert stored["status"] == "incomplete"


async def test_reconnect_within_the_grace_keeps_the_reply_running(gateway) -> None:
    """A viewer that comes back within the grace resumes and gets the whole reply."""
    gw = await gateway("[limits]\norphan_grace_s = 2\n")
    sock = await gw.chat()
    prompt = "keep going sim:tokens=80 sim:delay_ms=10"
    await sock.send(type="message", id="c-1", text=prompt)
    start = await sock.recv_type("start")
    await sock.ws.close()
    back = await gw.chat(conversation_id=sock.connected["conversation_id"])
    await back.send(type="resume", message_id=start["message_id"], last_seq=0)
    reply = await back.reply()
    assert reply.end["finish_reason"] == "stop" and reply.text == expected(prompt)


async def test_two_tabs_and_a_group_room_see_identical_streams(gateway) -> None:
    """Two tabs of one person conversation, and three users in a group, see the same reply."""
    gw = await gateway()
    tab1 = await gw.chat(token=make_token("alice"))
    tab2 = await gw.chat(
        token=make_token("alice"), conversation_id=tab1.connected["conversation_id"]
    )
    await tab1.send(type="message", id="c-1", text="tabs sim:tokens=50 sim:delay_ms=2")
    a, b = await asyncio.gather(tab1.reply(), tab2.reply())
    assert a.text == b.text and a.message_id == b.message_id

    members = [
        await gw.chat(token=make_token(u), session_type="group", conversation_id="room-1")
        for u in ("ann", "ben", "cat")
    ]
    await members[1].send(type="message", id="g-1", text="room sim:tokens=50 sim:delay_ms=2")
    seen = [await m.recv_type("user_message") for m in members]
    assert {s["user"] for s in seen} == {"ben"}  # the sender gets its own user_message too
    replies = await asyncio.gather(*(m.reply() for m in members))
    assert len({r.text for r in replies}) == 1


async def test_bad_frames_get_errors_and_the_socket_stays_open(gateway) -> None:
    """Invalid JSON, unknown type, missing field, binary: error frames, then still usable."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.ws.send_str("{oops")
    assert (await sock.recv_type("error"))["code"] == "bad_json"
    await sock.send(type="teleport")
    assert (await sock.recv_type("error"))["code"] == "unknown_type"
    await sock.send(type="message", id="c-1")
    err = await sock.recv_type("error")
    assert (err["code"], err["reply_to"]) == ("bad_request", "c-1")
    await sock.ws.send_bytes(b"\x00\x01")
    assert (await sock.recv_type("error"))["code"] == "unsupported_data"
    reply = await sock.ask("still here sim:tokens=3 sim:delay_ms=0", "c-2")
    assert reply.end["type"] == "done"


async def test_upstream_failure_after_start_is_an_error_frame_and_failed_history(gateway) -> None:
    """A mid-stream upstream error ends the reply with error(message_id); history says failed."""
    gw = await gateway()
    sock = await gw.chat()
    reply = await sock.ask("boom sim:tokens=20 sim:delay_ms=0 sim:fault=error sim:fault_at=5")
    assert reply.end["type"] == "error" and reply.end["code"] == "upstream_error"
    stored = (await history(gw, sock.connected["conversation_id"]))[-1]
    assert (stored["status"], stored["content"]) == ("failed", reply.text)


async def test_ping_and_disconnect(gateway) -> None:
    """ping gets pong; disconnect closes with 1000."""
    gw = await gateway()
    sock = await gw.chat()
    await sock.send(type="ping")
    assert "ts" in await sock.recv_type("pong")
    await sock.send(type="disconnect")
    code, _ = await sock.closed()
    assert code == 1000


async def test_sockets_that_never_chat_leave_no_conversation_behind(gateway) -> None:
    """Opening and closing sockets without a message stores nothing (no leak on reconnects)."""
    gw = await gateway()
    backends = gw.app[keys.BACKENDS]
    for _ in range(5):
        sock = await gw.chat()
        conv_id = sock.connected["conversation_id"]
        await sock.ws.close()
    kept = await gw.chat()
    await kept.ask("stay sim:tokens=2 sim:delay_ms=0")
    await kept.ws.close()
    await wait_until(lambda: len(gw.app[keys.REGISTRY]) == 0)
    listed = await (await gw.client.get("/api/v1/conversations")).json()  # the cookie's user
    assert [c["id"] for c in listed] == [kept.connected["conversation_id"]]
    assert await backends.conversations.get(conv_id) is None


async def test_consecutive_replies_reuse_one_pooled_upstream_connection(gateway) -> None:
    """A finished reply returns its upstream connection to the pool: no new TCP (or TLS)
    handshake before the next reply's first token."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    for i in range(3):
        await sock.ask(f"turn {i} sim:tokens=5 sim:delay_ms=0", msg_id=f"c-{i}")
    peers = {record.peer for record in gw.sim.state.requests}
    assert len(gw.sim.state.requests) == 3 and len(peers) == 1, peers
