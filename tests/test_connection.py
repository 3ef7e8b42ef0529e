"""Backpressure per connection: merged frames for slow readers, 1013 for stalled ones."""

from __future__ import annotations

import asyncio

import pytest

from gateway import keys
from gateway.app import create_app
from tests.chatclient import ChatSocket
from tests.conftest import gateway_config, wait_until
from tests.test_turns import expected


async def test_slow_reader_gets_fewer_larger_frames_and_the_exact_text(gateway) -> None:
    """A reader taking one frame every 50 ms gets merged frames; the text is intact."""
    gw = await gateway()
    sock = await gw.chat()
    prompt = "fast sim:tokens=600 sim:delay_ms=0"
    await sock.send(type="message", id="c-1", text=prompt)
    await sock.recv_type("start")
    deltas, last = [], 0
    while True:
        await asyncio.sleep(0.05)  # the reader's pace, not synchronisation
        frame = await sock.recv()
        if frame["type"] == "done":
            break
        assert frame["type"] == "delta" and frame["seq"] > last
        last = frame["seq"]
        deltas.append(frame)
    assert "".join(d["text"] for d in deltas) == expected(prompt)
    assert frame["seq"] == 600 and len(deltas) < 600
    conn = next(iter(gw.app[keys.REGISTRY]))
    assert conn.frames_merged >= 600 - len(deltas) - 1


async def test_a_socket_queues_a_sixteenth_of_the_outbox_in_its_transport(gateway) -> None:
    """The transport pauses the writer at outbox_max_bytes / 16, not asyncio's 64 KB."""
    gw = await gateway("[limits]\noutbox_max_bytes = 1048576")
    await gw.chat()
    conn = next(iter(gw.app[keys.REGISTRY]))
    transport = conn.ws._req.transport
    assert transport.get_write_buffer_limits()[1] == 1048576 // 16


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.timeout(120)
async def test_stalled_reader_is_closed_1013_and_can_resume_the_whole_reply(
    sim_process, aiohttp_client
) -> None:
    """A reader that stops is closed with 1013 slow consumer; meanwhile the upstream read
    pauses, so server memory stays far below the 40 MB reply; afterwards, resume delivers
    exactly the rest."""
    gw_config = gateway_config(
        "[upstream]\nincremental_output = true\n"
        "[limits]\noutbox_max_bytes = 65536\nslow_consumer_timeout_s = 1.0\norphan_grace_s = 60\n",
        sim_process.url,
    )
    app = create_app(gw_config)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/api/v1/assistants/default/ws", max_msg_size=0)
    sock = ChatSocket(ws)
    sock.connected = await sock.recv_type("connected")
    prompt = "huge sim:tokens=4000 sim:chars=40000000 sim:delay_ms=0"
    before = rss_mb()
    await sock.send(type="message", id="c-1", text=prompt)
    start = await sock.recv_type("start")
    # Stop reading: the server must give up on the socket within the send deadline.
    conn = next(iter(app[keys.REGISTRY]))
    reply = app[keys.BACKENDS].replies.get(start["message_id"])
    await wait_until(lambda: conn.close_code == 1013, timeout=15)
    grown = rss_mb() - before
    read_then = reply.content_length
    assert conn.slow
    print(f"stalled: {read_then} of 40000000 characters read upstream, RSS +{grown:.1f} MB")
    assert read_then < 20_000_000  # the upstream read paused while nobody could read
    assert grown < 80, grown  # a fraction of the 40 MB reply (held as up to 160 MB of str)
    # Read what was delivered before the close, then the close itself.
    held, last = [], 0
    while True:
        msg = await ws.receive(timeout=30)
        if msg.type.name != "TEXT":
            break
        frame = msg.json()
        if frame["type"] == "delta":
            held.append(frame["text"])
            last = frame["seq"]
    assert ws.close_code == 1013
    # The reply was not dropped with its viewer: it runs on, orphaned, and is resumable.
    back_ws = await client.ws_connect(
        "/api/v1/assistants/default/ws",
        params={"conversation_id": sock.connected["conversation_id"]},
        max_msg_size=0,
    )
    back = ChatSocket(back_ws)
    await back.recv_type("connected")
    await back.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await back.reply(after_seq=last, timeout=60)
    assert "".join(held) + rest.text == expected(prompt)


async def test_fifty_abrupt_disconnects_leave_nothing_behind(gateway) -> None:
    """50 sockets dropped mid-reply: no connection, task or upstream request is left after."""
    gw = await gateway(
        "[limits]\norphan_grace_s = 0.2\nmax_connections_per_user = 100\n"
        "messages_per_minute = 1000\nmax_replies_per_user = 100\n"
    )
    socks = [await gw.chat() for _ in range(50)]
    for i, s in enumerate(socks):
        await s.send(type="message", id=f"c-{i}", text=f"n{i} sim:tokens=2000 sim:delay_ms=5")
    for s in socks:
        await s.recv_type("delta")
    baseline = len(asyncio.all_tasks())
    for s in socks:
        s.abort()
    for i in range(50):
        record = await gw.sim.state.wait_closed(index=i, within=10)
        assert record.outcome == "disconnected"
    backends = gw.app[keys.BACKENDS]
    for _ in range(200):
        if not backends.replies.running() and len(gw.app[keys.REGISTRY]) == 0:
            break
        await asyncio.sleep(0.05)
    assert backends.replies.running() == []
    assert len(gw.app[keys.REGISTRY]) == 0
    assert len(asyncio.all_tasks()) < baseline - 50  # every writer and producer task is gone
    connector = gw.app[keys.CLIENT_SESSION].connector
    assert sum(len(v) for v in connector._acquired_per_host.values()) == 0


async def test_two_hundred_concurrent_chats_complete_correctly(gateway) -> None:
    """200 chats at once on one process: every reply is exact and well-formed."""
    gw = await gateway(
        "[limits]\nmax_connections_per_user = 300\nmessages_per_minute = 1000\n"
        "max_replies_per_user = 300\n"
    )
    socks = [await gw.chat() for _ in range(200)]

    async def one(i: int, s) -> None:
        prompt = f"chat {i} sim:tokens=30 sim:delay_ms=5"
        reply = await s.ask(prompt, f"c-{i}")
        assert reply.text == expected(prompt)

    await asyncio.gather(*(one(i, s) for i, s in enumerate(socks)))


@pytest.mark.timeout(90)
async def test_a_slow_consumer_reads_its_1013_close_long_after_it_was_queued(
    sim_process, aiohttp_client
) -> None:
    """A stalled reader that drains later than 5 s after its 1013 close was queued (but
    within slow_consumer_timeout_s) still reads the close frame, not an abnormal 1006."""
    gw_config = gateway_config(
        "[upstream]\nincremental_output = true\n"
        "[limits]\noutbox_max_bytes = 65536\nslow_consumer_timeout_s = 7.0\n",
        sim_process.url,
    )
    app = create_app(gw_config)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/api/v1/assistants/default/ws", max_msg_size=0)
    sock = ChatSocket(ws)
    await sock.recv_type("connected")
    await sock.send(type="message", id="c-1", text="big sim:tokens=400 sim:chars=8000000")
    await sock.recv_type("start")
    conn = next(iter(app[keys.REGISTRY]))
    await wait_until(lambda: conn.close_code == 1013, timeout=30)
    await asyncio.sleep(6.0)  # the client's own delay before it reads again: the scenario
    while (await ws.receive(timeout=30)).type.name == "TEXT":
        pass
    assert ws.close_code == 1013


def test_a_connection_prints_without_its_user_or_address() -> None:
    """A connection's repr (what logs and tracebacks show) names the socket, never the
    caller's private id or client address."""
    from aiohttp import web

    from gateway.config import LimitsConfig
    from gateway.connection import Connection
    from gateway.send_policy import SendPolicy

    conn = Connection(
        web.WebSocketResponse(),
        "ws-1",
        "anon-private-id-7f3a",
        "default",
        "chat",
        "conv-1",
        "inst-1",
        SendPolicy.from_limits(LimitsConfig()),
        address="203.0.113.9",
    )
    shown = repr(conn)
    assert "ws-1" in shown and "conv-1" in shown
    assert "private-id" not in shown and "203.0.113.9" not in shown


async def test_a_paced_socket_gets_a_fast_reply_in_fewer_frames_with_the_exact_text(
    gateway,
) -> None:
    """With frame_interval_ms, a reader that keeps up gets merged deltas: the text is exact,
    seq strictly increases and ends at done's."""
    gw = await gateway()
    prompt = "paced sim:tokens=400 sim:delay_ms=1"
    plain = await gw.chat()
    unpaced = await plain.ask(prompt)
    sock = await gw.chat(frame_interval_ms="25")
    reply = await sock.ask(prompt, msg_id="c-2")  # checks seq order and done's figures
    assert reply.text == unpaced.text == expected(prompt)
    assert reply.end["seq"] == unpaced.end["seq"] == 400
    # About one frame per 25 ms of a reply of some 0.5 s, against one per step or so.
    assert len(reply.deltas) < min(100, len(unpaced.deltas))
    paced = next(c for c in gw.app[keys.REGISTRY] if c.pace is not None)
    assert paced.frames_merged == 400 - len(reply.deltas)


async def test_a_paced_socket_holds_deltas_but_neither_pongs_nor_the_end(gateway) -> None:
    """Under a 1 s pace a ping sent while a delta is held is answered at once, and the
    reply's end lets the last delta and done go without waiting out the interval."""
    gw = await gateway()
    sock = await gw.chat(frame_interval_ms="1000")
    prompt = "held sim:tokens=100 sim:delay_ms=3"
    await sock.send(type="message", id="c-1", text=prompt)
    await sock.recv_type("start")
    first = await sock.recv()
    assert first["type"] == "delta"  # a socket's first delta is never held
    await sock.send(type="ping")
    assert (await sock.recv())["type"] == "pong"  # before the held delta
    rest = [await sock.recv()]
    while rest[-1]["type"] == "delta":
        rest.append(await sock.recv())
    assert rest[-1]["type"] == "done" and rest[-1]["seq"] == 100
    assert first["text"] + "".join(f["text"] for f in rest[:-1]) == expected(prompt)
    assert len(rest) <= 3  # the held delta at the end (or once more, on a slow machine)
