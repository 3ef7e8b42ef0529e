"""The Redis conversation scripts' packing and answers, on plain values (no Redis)."""

from __future__ import annotations

import json

from gateway.conversations import Conversation, HistoryMessage, ImageRef
from gateway.stores.conversations_redis_codec import (
    RedisConversationCodec,
    decode_message,
    encode_message,
)
from gateway.stores.redis_client import KeySpace

CODEC = RedisConversationCodec(KeySpace("t:"), max_messages=2, ttl_s=0.4, live_id="a~1")


def _conv() -> Conversation:
    return Conversation("c1", "alice", "person", "default")


def _msg(i: int, role: str = "user") -> HistoryMessage:
    return HistoryMessage(f"m-{i}", role, f"text {i}", "complete", float(i))  # type: ignore[arg-type]


def test_a_message_survives_encoding_and_reasoning_only_when_set() -> None:
    """encode_message then decode_message gives the message back; no empty reasoning field."""
    image = ImageRef("i-1", "image/png", 10)
    message = HistoryMessage("m-1", "user", "héllo", "complete", 1.5, "alice", "c-1", "", (image,))
    raw = encode_message(message)
    assert "reasoning" not in json.loads(raw) and "héllo" in raw
    assert decode_message(raw) == message


def test_an_old_message_without_newer_fields_decodes_with_defaults() -> None:
    """A stored message lacking user, client_id, reasoning and images reads with defaults."""
    old = '{"id": "m", "role": "assistant", "content": "x", "status": "complete", "created_at": 2}'
    assert decode_message(old) == HistoryMessage("m", "assistant", "x", "complete", 2.0)


def test_the_read_answer_becomes_a_snapshot_and_a_dead_owner_runs_nothing() -> None:
    """The snapshot keeps the history's order, skips missing messages, and has no running
    reply when the alive flag is 0; no owner means no conversation."""
    meta = ["owner", "alice", "session_type", "group", "assistant", "a", "created_at", "1"]
    meta += ["updated_at", "2", "running", "r-1"]
    msgs = ["m-1", encode_message(_msg(1)), "m-0", encode_message(_msg(0))]
    found = [meta, ["alice", "bob"], ["m-0", "m-1", "m-gone"], msgs, ["c-1", "r-1"], 1]
    conv = CODEC.snapshot("c1", found)
    assert conv is not None and [m.id for m in conv.messages] == ["m-0", "m-1"]
    assert (conv.members, conv.running, conv.replies_by_client_id) == (
        {"alice", "bob"},
        "r-1",
        {"c-1": "r-1"},
    )
    dead = CODEC.snapshot("c1", [*found[:5], 0])
    assert dead is not None and dead.running is None
    assert CODEC.snapshot("c1", [[], [], [], [], [], 0]) is None


def test_the_claim_names_the_live_id_and_its_answer_marks_the_snapshot() -> None:
    """claim_request packs the conversation's keys, the live id and the TTL (at least 1 s);
    a started answer makes the reply the running one."""
    conv = _conv()
    keys, args = CODEC.claim_request(conv, "r-1", "c-1", "a", True)
    assert keys == ["t:conv:{c1}", "t:conv:{c1}:clients"]
    assert args == ["r-1", "c-1", "a~1", 1, "t:instance:{", 1]
    claim = CODEC.claimed(conv, ["started", "r-0", "1"], "r-1", "c-1")
    assert (claim.outcome, claim.previous, claim.stale, conv.running) == (
        "started",
        "r-0",
        True,
        "r-1",
    )


def test_add_packs_each_message_and_the_snapshot_keeps_the_newest() -> None:
    """add_request carries the cap, the title and id-JSON pairs; added trims the snapshot."""
    conv = _conv()
    messages = (_msg(0), _msg(1, "assistant"), _msg(2))
    keys, args, now, title = CODEC.add_request(conv, messages)
    assert keys == ["t:conv:{c1}:order", "t:conv:{c1}:msgs", "t:conv:{c1}", "t:conv:{c1}:members"]
    assert args[:6] == [2, now, "text 0", 1, "t:user:{", "c1"] and title == "text 0"
    assert args[6::2] == ["m-0", "m-1", "m-2"]
    CODEC.added(conv, messages, now, title)
    assert [m.id for m in conv.messages] == ["m-1", "m-2"] and conv.title == "text 0"


def test_settle_encodes_the_final_text_or_sends_none() -> None:
    """settle_request sends the message's new JSON when the snapshot holds it, else ''."""
    conv = _conv()
    conv.messages, conv.running = [_msg(1, "assistant")], "m-1"
    keys, args = CODEC.settle_request(conv, "m-1", ("done", "complete", ""))
    assert keys == ["t:conv:{c1}:msgs", "t:conv:{c1}"]
    assert args[0] == "m-1" and json.loads(args[1])["content"] == "done"
    assert CODEC.settle_request(conv, "m-9", ("x", "complete", ""))[1] == ["m-9", ""]
    assert CODEC.settle_request(conv, "m-1", None)[1] == ["m-1", ""]
    CODEC.settled(conv, "m-1")
    assert conv.running is None


def test_an_update_of_a_message_not_held_sends_nothing() -> None:
    """update_request is None for a message the snapshot lacks (no round trip)."""
    conv = _conv()
    conv.messages = [_msg(1, "assistant")]
    assert CODEC.update_request(conv, "m-9", ("x", "complete", "")) is None
    request = CODEC.update_request(conv, "m-1", ("y", "failed", "r"))
    assert request is not None and request[0] == ["t:conv:{c1}:msgs"]
    assert conv.messages[0].status == "failed"
