"""A conversation is never left busy: a lone surrogate is refused before anything is claimed,
and a turn that fails after its claim frees it, in memory and with Redis."""

from __future__ import annotations

import pytest

from gateway import keys
from tests.conftest import make_token

ECHO = "hello sim:tokens=3 sim:delay_ms=0"


@pytest.fixture(params=["memory", "redis"])
async def gw(request, gateway, redis_server):
    """One gateway, with everything in memory or on a real Redis."""
    if request.param == "memory":
        return await gateway()
    return await gateway(f'[redis]\nurl = "{redis_server.url}"\nheartbeat_s = 0.2\n')


async def test_a_lone_surrogate_is_refused_and_every_viewer_keeps_chatting(gw) -> None:
    """The issue's frame: bad_request naming the field to the sender; the room is not busy
    and both members' sockets still deliver the next reply."""
    alice = await gw.chat(token=make_token("alice"), session_type="group", conversation_id="r1")
    bob = await gw.chat(token=make_token("bob"), session_type="group", conversation_id="r1")
    await alice.ws.send_str('{"type":"message","id":"x","text":"hi \\ud800"}')
    error = await alice.recv_type("error")
    assert error["code"] == "bad_request" and "'text'" in error["message"]
    assert error["reply_to"] == "x"
    await alice.ws.send_str('{"type":"message","id":"y\\ud800","text":"hi"}')
    error = await alice.recv_type("error")
    assert error["code"] == "bad_request" and "'id'" in error["message"]
    assert "reply_to" not in error
    await alice.send(type="message", id="c-2", text=ECHO)
    mine, theirs = await alice.reply(), await bob.reply()
    assert mine.end["type"] == theirs.end["type"] == "done"
    assert mine.text == theirs.text and mine.text


async def test_a_turn_that_fails_after_its_claim_frees_the_conversation(gw) -> None:
    """A turn that raises after claiming (here: its assistant was removed from the config
    while its conversation lived on) ends that socket with 1011, and the next message on the
    conversation starts a reply instead of answering busy for good."""
    token = make_token("alice")
    sock = await gw.chat(token=token)
    cid = sock.connected["conversation_id"]
    await sock.send(type="message", id="c-1", text=ECHO)
    await sock.reply()
    await _set_assistant(gw, cid, "retired")
    await sock.send(type="message", id="c-2", text=ECHO)
    closed = await sock.ws.receive(timeout=10)
    assert closed.data == 1011
    await _set_assistant(gw, cid, "default")
    again = await gw.chat(token=token, conversation_id=cid)
    await again.send(type="message", id="c-3", text=ECHO)
    reply = await again.reply()
    assert reply.end["finish_reason"] == "stop"


async def _set_assistant(gw, cid: str, assistant: str) -> None:
    """Change the stored conversation's assistant, where the store keeps it."""
    store = gw.app[keys.BACKENDS].conversations
    redis = getattr(store, "_redis", None)
    if redis is None:
        (await store.get(cid)).assistant = assistant
    else:
        await redis.hset(store._k.conv(cid), "assistant", assistant)
