"""Durable before delivered: whatever a client received survives a SIGKILL of the producer."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal

import aiohttp
import pytest

from tests.chatclient import ChatSocket
from tests.conftest import eventually, make_token
from tests.deploy.conftest import Cluster


@pytest.fixture
def cluster_upstream_env(sim) -> dict[str, str]:
    """A full-range simulator: the offline demo's caps (2 000 steps, 20 000 characters) would
    cut the bursts short and keep the big replies within the socket buffers."""
    return {"DASHSCOPE_API_KEY": "sk-test", "GATEWAY_UPSTREAM__BASE_URL": sim.url}


ROUNDS = 20
BURST = "sim:tokens=3000 sim:delay_ms=0 burst"  # steps as fast as the simulator writes
BIG = "sim:tokens=800 sim:delay_ms=0 sim:chars=4000000 big"  # far beyond the socket buffers


async def drain(sock: ChatSocket, message_id: str, text: str, seq: int) -> tuple[str, int, bool]:
    """Read what the dead instance left in the socket: (text, last seq, ended)."""
    while True:
        msg = await sock.ws.receive(timeout=10)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return text, seq, False
        frame = json.loads(msg.data)
        if frame.get("message_id") != message_id:
            continue
        if frame["type"] == "delta":
            assert frame["seq"] > seq
            text, seq = text + frame["text"], frame["seq"]
        elif frame["type"] in ("done", "error"):
            return text, seq, True


@pytest.mark.timeout(600)
async def test_sigkill_at_random_points_the_client_text_always_equals_history(
    cluster: Cluster,
) -> None:
    """20 replies, the producing process SIGKILLed at a random point of each (mid-burst, or
    while paused for a reader that stopped reading); the client resumes on the survivor with
    its own last_seq: its whole text equals the stored reply's every time."""
    seed = int(os.environ.get("GATEWAY_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    producer, survivor = "gateway1", "gateway2"
    cut_short = 0
    for round_ in range(ROUNDS):
        paused = round_ % 2 == 1
        token = make_token(f"user{round_}")
        sock = await cluster.connect_direct(producer, token)
        conv = sock.connected["conversation_id"]
        await sock.send(type="message", id="c-1", text=BIG if paused else BURST)
        start = await sock.recv_type("start")
        message_id = start["message_id"]
        text, seq, target = "", 0, rng.randint(1, 8 if paused else 2500)
        while seq < target:
            frame = await sock.recv_type("delta")
            text, seq = text + frame["text"], frame["seq"]
        if paused:  # the reader stops; the producer fills the buffers and pauses
            await asyncio.sleep(rng.uniform(0.2, 1.0))
        dead = cluster.instances[producer]
        dead.proc.send_signal(signal.SIGKILL)
        await dead.proc.wait()
        text, seq, ended = await drain(sock, message_id, text, seq)
        cut_short += not ended
        again = await cluster.connect_direct(survivor, token, conversation_id=conv)
        await again.send(type="resume", message_id=message_id, last_seq=seq)
        rest = await again.reply(after_seq=seq, timeout=30)
        whole = text + rest.text
        context = f"seed {seed} round {round_} ({'paused' if paused else 'burst'}, seq {seq})"

        url = f"{cluster.instances[survivor].url}/api/v1/conversations/{conv}/messages"

        async def stored(url: str = url, token: str = token) -> dict | None:
            body = await cluster.get_json(url, token)
            last = body["messages"][-1]
            return last if last["status"] != "running" else None

        message = await eventually(stored, timeout=10)
        assert message["id"] == message_id, context
        assert message["content"] == whole, context
        await again.ws.close()
        await cluster.start(producer, f"{producer}-{round_}")  # a new incarnation
        producer, survivor = survivor, producer
    assert cut_short >= ROUNDS // 2, f"most kills land mid-reply (seed {seed})"


async def test_an_instance_restarted_under_its_own_id_does_not_keep_dead_replies_alive(
    cluster: Cluster,
) -> None:
    """SIGKILL, then the same instance id again (a restart policy): the client resumes on the
    other instance, gets the rest and an error, the history equals its text, and the
    conversation takes a new message."""
    token = make_token("alice")
    sock = await cluster.connect_direct("gateway1", token)
    conv = sock.connected["conversation_id"]
    await sock.send(type="message", id="c-1", text="sim:tokens=400 sim:delay_ms=25 long")
    start = await sock.recv_type("start")
    text, seq = "", 0
    while seq < 8:
        frame = await sock.recv_type("delta")
        text, seq = text + frame["text"], frame["seq"]
    dead = cluster.instances["gateway1"]
    dead.proc.send_signal(signal.SIGKILL)
    await dead.proc.wait()
    text, seq, _ = await drain(sock, start["message_id"], text, seq)
    await cluster.start("gateway1", "gateway1")
    again = await cluster.connect_direct("gateway2", token, conversation_id=conv)
    await again.send(type="resume", message_id=start["message_id"], last_seq=seq)
    rest = await again.reply(after_seq=seq, timeout=20)
    assert rest.end["type"] == "error" and rest.end["code"] == "upstream_error"
    body = await cluster.get_json(
        f"{cluster.instances['gateway2'].url}/api/v1/conversations/{conv}/messages", token
    )
    assert body["messages"][-1]["content"] == text + rest.text
    reply = await again.ask("still there? sim:tokens=5", msg_id="c-2")
    assert reply.end["type"] == "done"
