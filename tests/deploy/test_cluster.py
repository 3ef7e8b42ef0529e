"""Two gateway processes behind real nginx and real Redis act as one; they survive a crash."""

from __future__ import annotations

import json
import signal

from tests.chatclient import ChatSocket, check_reply
from tests.conftest import eventually, make_token
from tests.deploy.conftest import Cluster, wait_http

SLOW = "sim:tokens=80 sim:delay_ms=40"
BOTH = ["gateway1", "gateway2"]


async def read_deltas(sock: ChatSocket, count: int) -> tuple[dict, str, int]:
    start = await sock.recv_type("start")
    text, seq = "", 0
    while seq < count:
        frame = await sock.recv_type("delta")
        text, seq = text + frame["text"], frame["seq"]
    return start, text, seq


async def test_through_nginx_a_reply_resumes_on_the_other_instance(cluster: Cluster) -> None:
    """Cut off mid-reply from one instance, a client resumes on the other: the exact text."""
    token = make_token("alice")
    first = await cluster.connect_to("gateway1", token)
    conv = first.connected["conversation_id"]
    await first.send(type="message", id="c-1", text=f"tell me {SLOW}")
    start, held, last = await read_deltas(first, 10)
    first.abort()
    second = await cluster.connect_to("gateway2", token, conversation_id=conv)
    await second.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await second.reply(after_seq=last)
    assert rest.end["type"] == "done" and rest.end["finish_reason"] == "stop"
    assert rest.end["content_length"] == len(held + rest.text)
    histories = [
        await cluster.get_json(f"{inst.url}/api/v1/conversations/{conv}/messages", token)
        for inst in cluster.instances.values()
    ]
    assert histories[0] == histories[1], "the history is the same from both instances"
    assert histories[0]["messages"][-1]["content"] == held + rest.text


async def test_through_nginx_rooms_broadcast_and_stats_span_both_instances(
    cluster: Cluster,
) -> None:
    """A room with members on both sees one stream; a broadcast reaches both; stats count both."""
    room = "conv-deploy-room"
    alice = await cluster.connect_to(
        "gateway1", make_token("alice"), session_type="group", conversation_id=room
    )
    bob = await cluster.connect_to(
        "gateway2", make_token("bob"), session_type="group", conversation_id=room
    )

    async def both_listed() -> bool:  # another instance's sockets: as of its last beat
        return sorted(c["instance"] for c in await cluster.connections()) == BOTH

    await eventually(both_listed, timeout=5)
    await alice.send(type="message", id="a-1", text="hello room sim:tokens=30 sim:delay_ms=10")
    replies = []
    for sock in (alice, bob):
        assert (await sock.recv_type("user_message"))["user"] == "alice"
        replies.append(await sock.reply())
    assert replies[0].message_id == replies[1].message_id
    assert [d["text"] for d in replies[0].deltas] and replies[0].text == replies[1].text
    async with cluster.http.post(
        f"{cluster.nginx_url}/api/v1/broadcast",
        json={"message": "hello all"},
        headers=cluster.admin,
    ) as resp:
        assert resp.status == 202
    for sock in (alice, bob):
        assert (await sock.recv_type("broadcast"))["message"] == "hello all"


async def test_sigkill_mid_reply_clients_resume_elsewhere_and_get_a_terminal_frame(
    cluster: Cluster,
) -> None:
    """Killing the producing instance: its client resumes on the other, gets the stored text
    and then an error frame instead of hanging; the dead instance leaves the stats."""
    token, bob = make_token("alice"), make_token("bob")
    left = await cluster.connect_to("gateway1", bob)  # a reply whose viewer left: no one resumes
    left_conv = left.connected["conversation_id"]
    await left.send(type="message", id="b-1", text="sim:tokens=400 sim:delay_ms=25 long")
    left_start, _, _ = await read_deltas(left, 2)
    left.abort()
    sock = await cluster.connect_to("gateway1", token)
    conv = sock.connected["conversation_id"]
    await sock.send(type="message", id="c-1", text="sim:tokens=400 sim:delay_ms=25 long")
    start, held, last = await read_deltas(sock, 8)
    cluster.instances["gateway1"].proc.send_signal(signal.SIGKILL)
    await cluster.instances["gateway1"].proc.wait()
    await sock.closed()
    again = await cluster.connect(token, conversation_id=conv)  # nginx skips the dead one
    assert await cluster.instance_of(again) == "gateway2"
    await again.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await again.reply(after_seq=last, timeout=20)
    assert rest.end["type"] == "error" and rest.end["code"] == "upstream_error"
    text = held + rest.text
    history = await cluster.get_json(
        f"{cluster.instances['gateway2'].url}/api/v1/conversations/{conv}/messages", token
    )
    stored = history["messages"][-1]
    assert stored["status"] == "failed"
    # Durable before delivered: the history holds exactly what the client got.
    assert stored["content"] == text

    async def only_the_survivor() -> bool:  # gone after three missed beats at most
        return {c["instance"] for c in await cluster.connections()} == {"gateway2"}

    await eventually(only_the_survivor, timeout=5)
    await again.send(type="message", id="c-2", text="are you there? sim:tokens=5")
    check_reply(await again.reply())  # the conversation is not stuck on the dead reply

    # Bob's reply had no viewer to resume it: his next message is not refused as busy, and
    # the dead reply is stored as failed.
    back = await cluster.connect(bob, conversation_id=left_conv)
    assert "running_message_id" not in back.connected
    check_reply(await back.ask("hello again? sim:tokens=5", msg_id="b-2"))

    async def left_failed() -> bool:
        body = await cluster.get_json(
            f"{cluster.nginx_url}/api/v1/conversations/{left_conv}/messages", bob
        )
        statuses = {m["id"]: m["status"] for m in body["messages"]}
        return statuses.get(left_start["message_id"]) == "failed"

    await eventually(left_failed, timeout=5)


async def test_redis_restart_mid_reply_the_stream_completes_and_readiness_recovers(
    cluster: Cluster,
) -> None:
    """Redis dies mid-reply: the stream waits (nothing reaches a viewer before Redis has
    it), /readyz says 503; once Redis is back it completes and the reply reaches history."""
    token = make_token("alice")
    sock = await cluster.connect_to("gateway1", token)
    conv = sock.connected["conversation_id"]
    gateway1 = cluster.instances["gateway1"]
    await sock.send(type="message", id="c-1", text="sim:tokens=120 sim:delay_ms=25 story")
    _, held, _ = await read_deltas(sock, 5)
    await cluster.redis.stop()
    await wait_http(gateway1.url + "/readyz", status=503)
    tail = ""
    while True:  # what was released before Redis went
        try:
            frame = await sock.recv(timeout=0.5)
        except TimeoutError:
            break
        assert frame["type"] == "delta"
        tail += frame["text"]
    assert len(held + tail) < 120 * 2, "the stream waits for Redis"
    await cluster.redis.start()
    while True:
        frame = await sock.recv(timeout=20)
        if frame["type"] == "delta":
            tail += frame["text"]
        elif frame["type"] == "done":
            break
    assert frame["finish_reason"] == "stop" and frame["seq"] == 120
    assert frame["content_length"] == len(held + tail)
    await wait_http(gateway1.url + "/readyz", status=200)

    client = cluster.redis_client()

    async def stored() -> bool:  # in Redis itself: the reply task retries until it answers
        saved = [json.loads(m) for m in (await client.hgetall(f"gw:conv:{{{conv}}}:msgs")).values()]
        return any(m["status"] == "complete" and m["content"] == held + tail for m in saved)

    try:
        await eventually(stored, timeout=15)
    finally:
        await client.aclose()
    assert gateway1.proc.returncode is None
    await sock.send(type="message", id="c-2", text="still there? sim:tokens=5")
    check_reply(await sock.reply())


async def test_sigterm_mid_reply_the_reply_finishes_into_redis_and_resumes_elsewhere(
    cluster: Cluster,
) -> None:
    """A rolling restart: 1001 to the client, which resumes on the other instance and gets
    the whole reply (finished by the stopping instance within its grace), then `done`."""
    token = make_token("alice")
    sock = await cluster.connect_to("gateway1", token)
    conv = sock.connected["conversation_id"]
    await sock.send(type="message", id="c-1", text="sim:tokens=60 sim:delay_ms=25 story")
    start, held, last = await read_deltas(sock, 10)
    gateway1 = cluster.instances["gateway1"]
    gateway1.proc.send_signal(signal.SIGTERM)
    code, _ = await sock.closed()
    assert code == 1001
    again = await cluster.connect(token, conversation_id=conv)
    await again.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await again.reply(after_seq=last, timeout=20)
    assert rest.end["type"] == "done" and rest.end["finish_reason"] == "stop"
    assert rest.end["seq"] == 60 and rest.end["content_length"] == len(held + rest.text)
    assert await gateway1.proc.wait() == 0
