"""Reply logs in Redis: durable before delivered, group commit, WAIT for replicas."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway.replies import ANSWER, ReplyLog, ReplyState
from gateway.stores import reply_mirrors
from gateway.stores.reply_mirrors import decode_steps
from tests.conftest import make_token
from tests.stores.conftest import started


async def stream_head(client: aioredis.Redis, message_id: str) -> int:
    """The seq of the newest entry in the reply's stream (0: none)."""
    newest = await client.xrevrange(f"gw:reply:{{{message_id}}}:steps", count=1)
    return int(newest[0][0].partition("-")[2]) if newest else 0


async def stream_text(client: aioredis.Redis, message_id: str) -> str:
    """The reply's text as its stream holds it, each entry starting where the last ended."""
    steps: list[tuple[str, object]] = []
    for entry_id, fields in await client.xrange(f"gw:reply:{{{message_id}}}:steps"):
        if "end" not in fields:
            first, decoded = decode_steps(entry_id, fields)
            assert first == len(steps) + 1
            steps.extend(decoded)
    return "".join(step for step, _ in steps)


async def test_a_local_viewer_gets_a_step_only_once_it_is_in_the_stream(
    instances, redis_server
) -> None:
    """Every delta's seq is already in the reply's Redis stream when the viewer reads it."""
    (a,) = await instances(names=("a",))
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        sock, _, start = await started(a, make_token("alice"), "sim:tokens=60 sim:delay_ms=5")
        while True:
            frame = await sock.recv_type("delta", "done")
            seq = frame["seq"]
            assert await stream_head(client, start["message_id"]) >= seq
            if frame["type"] == "done":
                assert seq == 60
                break
    finally:
        await client.aclose()


async def test_a_remote_viewer_follows_the_stream_as_it_is_written(instances) -> None:
    """A viewer on b gets the same text as the producer's viewer, step for step in order."""
    a, b = await instances()
    token = make_token("alice")
    sock, conv, start = await started(a, token, "sim:tokens=80 sim:delay_ms=10")
    far = await b.chat(token=token, conversation_id=conv)
    await far.send(type="resume", message_id=start["message_id"], last_seq=0)
    local = ""
    while (frame := await sock.recv_type("delta", "done"))["type"] == "delta":
        local += frame["text"]
    remote = await far.reply()
    assert remote.end["type"] == "done" and local == remote.text


async def test_without_replicas_to_acknowledge_writes_wait_then_go_on_with_a_warning(
    instances,
) -> None:
    """redis.wait_replicas = 1 on a Redis with no replica: each write waits its timeout, the
    reply still completes, and the shortfall is logged once."""
    (a,) = await instances("wait_replicas = 1\nwait_timeout_ms = 20\n", names=("a",))
    with capture_logs() as logs:
        sock = await a.chat(token=make_token("alice"))
        reply = await sock.ask("hello sim:tokens=10 sim:delay_ms=1")
    assert reply.end["type"] == "done" and reply.end["seq"] == 10
    warned = [e for e in logs if e["event"].startswith("replicas behind")]
    assert len(warned) == 1 and warned[0]["acked"] == 0


class Cursor:
    """A viewer's position, as the log reads it."""

    seq = 0


async def test_with_a_publisher_a_log_shows_viewers_only_what_was_released() -> None:
    """on_change set (Redis mode): reads stop at the watermark, the end is hidden until
    released, and a release wakes the viewers."""
    log = ReplyLog("m-1", "conv-1", "alice", "c-1", "model")
    changes: list[int] = []
    log.watch(on_change=lambda: changes.append(log.head))
    woken: list[int] = []
    log.attach(Cursor(), lambda: woken.append(log.watermark))
    woken.clear()
    log.append("Hello")
    log.append(", world")
    assert (log.head, log.read(0, 100), woken) == (2, ("", 0, ANSWER), [])
    log.release(1, False)
    assert log.read(0, 100) == ("Hello", 1, ANSWER) and woken == [1]
    log.finish(ReplyState.COMPLETED, "stop")
    assert log.ended and not log.end_visible and changes == [1, 2, 2]
    log.release(2, True)
    assert log.read(1, 100) == (", world", 2, ANSWER) and log.end_visible


async def test_after_redis_lost_acknowledged_entries_the_publisher_writes_them_again(
    instances, redis_server
) -> None:
    """Entries gone from the stream (as after a failover to a replica that lacked them), then
    a failed write: the publisher reads what the stream holds and sends the rest again."""
    (a,) = await instances(names=("a",))
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        sock, _, start = await started(a, make_token("alice"), "sim:tokens=80 sim:delay_ms=25")
        stream = f"gw:reply:{{{start['message_id']}}}:steps"
        text = ""
        while len(text) < 40:
            text += (await sock.recv_type("delta"))["text"]
        await client.aclose()
        # The entries vanish and Redis goes in one step (no write of the publisher between),
        # as when a failover promotes a replica that never had them.
        reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
        key = stream.encode()
        delete = b"*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n" % (len(key), key)
        writer.write(delete + b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")  # one write
        await reader.read()  # the server closes the connection as it exits
        writer.close()
        await redis_server.proc.wait()
        await redis_server.start()
        while (frame := await sock.recv_type("delta", "done"))["type"] == "delta":
            text += frame["text"]
        assert frame["seq"] == 80
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        assert await stream_text(client, start["message_id"]) == text
    finally:
        await client.aclose()


@pytest.mark.timeout(30)
async def test_a_write_redis_never_answers_times_out_and_the_reply_still_completes(
    instances, redis_server
) -> None:
    """Redis stops answering mid-reply: the publisher's write fails at the command timeout
    (logged as a timeout), and once Redis answers again the viewer gets the whole reply."""
    (a,) = await instances("command_timeout_s = 0.3\n", names=("a",))
    timed_out = asyncio.Event()

    def watch(_logger: object, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event["event"] == "reply publish waits for redis" and event["error"] == "TimeoutError":
            timed_out.set()
        return event

    with capture_logs(processors=[watch]):
        sock, _, start = await started(a, make_token("alice"), "sim:tokens=40 sim:delay_ms=20")
        text = (await sock.recv_type("delta"))["text"]
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            async with asyncio.timeout(5):  # the command timeout, and then some
                await timed_out.wait()
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        while (frame := await sock.recv_type("delta", "done"))["type"] == "delta":
            text += frame["text"]
    assert frame["seq"] == 40
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await stream_text(client, start["message_id"]) == text
    finally:
        await client.aclose()


async def test_a_new_mirror_wakes_the_blocked_reader_instead_of_waiting_out_its_block(
    instances, monkeypatch
) -> None:
    """b's reader blocks on an idle reply (a 4 s XREAD); a second reply followed on b streams
    at once, not after the block times out."""
    monkeypatch.setattr(reply_mirrors, "FOLLOW_BLOCK_MS", 4000)
    a, b = await instances()
    token = make_token("alice")
    idle_sock, conv1, idle = await started(a, token, "sim:first_delay_ms=20000 sim:tokens=1 x")
    watcher = await b.chat(token=token, conversation_id=conv1)
    await watcher.send(type="resume", message_id=idle["message_id"], last_seq=0)
    await watcher.recv_type("start")  # b's reader now blocks on the idle reply's stream
    _, conv2, start = await started(a, token, "sim:tokens=20 sim:delay_ms=10 quick", "c-2")
    far = await b.chat(token=token, conversation_id=conv2)
    began = time.monotonic()
    await far.send(type="resume", message_id=start["message_id"], last_seq=0)
    reply = await far.reply()
    assert reply.end["type"] == "done" and reply.end["seq"] == 20
    assert time.monotonic() - began < 2.0
    await idle_sock.send(type="cancel", message_id=idle["message_id"])
    assert (await idle_sock.recv_type("done"))["finish_reason"] == "cancelled"
