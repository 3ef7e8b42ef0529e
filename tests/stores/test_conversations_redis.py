"""The Redis conversation store on a real Redis: the Lua scripts' decisions, caps and TTLs."""

from __future__ import annotations

import pytest

from gateway.conversations import HistoryMessage
from gateway.stores.conversations_redis import RedisConversationStore
from gateway.stores.redis_client import KeySpace


@pytest.fixture
async def store(redis_server):
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server.url, decode_responses=True)
    await client.set("t:instance:{alive-one}", "1")
    try:
        yield RedisConversationStore(client, KeySpace("t:"), max_messages=3, ttl_s=60), client
    finally:
        await client.aclose()


def message(i: int) -> HistoryMessage:
    return HistoryMessage(f"u-{i}", "user", f"text {i}", "complete", float(i), user="alice")


async def test_claim_decides_busy_duplicate_interrupt_and_stale(store) -> None:
    """One running reply; a seen client id is a duplicate; interrupt and a dead owner replace."""
    s, client = store
    conv = await s.create("c1", "alice", "person", "default")
    first = await s.claim_reply(conv, "m-1", "c-1", "alive-one", interrupt=False)
    assert (first.outcome, first.previous) == ("started", None)
    assert (await s.claim_reply(conv, "m-2", "c-2", "alive-one", interrupt=False)).outcome == "busy"
    dup = await s.claim_reply(conv, "m-3", "c-1", "alive-one", interrupt=True)
    assert (dup.outcome, dup.previous) == ("duplicate", "m-1")
    interrupted = await s.claim_reply(conv, "m-4", "c-4", "dead-one", interrupt=True)
    assert (interrupted.outcome, interrupted.previous, interrupted.stale) == (
        "started",
        "m-1",
        False,
    )
    stale = await s.claim_reply(conv, "m-5", "c-5", "alive-one", interrupt=False)
    assert (stale.outcome, stale.previous, stale.stale) == ("started", "m-4", True)
    fresh = await s.get("c1")
    assert fresh is not None and fresh.running == "m-5"
    await s.end_reply(fresh, "m-4")  # not the running one: nothing changes
    assert (await s.get("c1")).running == "m-5"
    await s.end_reply(fresh, "m-5")
    assert (await s.get("c1")).running is None
    assert await client.ttl("t:conv:{c1}:clients") > 0


async def test_history_is_capped_and_a_trimmed_message_stays_gone(store) -> None:
    """Only the newest max_messages are kept; updating a trimmed one does not bring it back."""
    s, _ = store
    conv = await s.create("c2", "alice", "person", "default")
    for i in range(5):
        await s.add_messages(conv, message(i))
    fresh = await s.get("c2")
    assert [m.id for m in fresh.messages] == ["u-2", "u-3", "u-4"]
    assert fresh.title == "text 0"
    stale_snapshot = await s.get("c2")
    stale_snapshot.messages.insert(0, message(0))
    await s.update_message(stale_snapshot, "u-0", "edited", "complete")
    assert [m.id for m in (await s.get("c2")).messages] == ["u-2", "u-3", "u-4"]


async def test_conversations_are_listed_newest_first_and_empty_ones_forgotten(store) -> None:
    """for_user orders by last write; forget_if_empty drops only a conversation with nothing."""
    s, _ = store
    older = await s.create("old", "alice", "person", "default")
    newer = await s.create("new", "alice", "person", "default")
    await s.add_messages(newer, message(1))
    await s.add_messages(older, message(2))
    assert [c.id for c in await s.for_user("alice")] == ["old", "new"]
    empty = await s.create("empty", "alice", "person", "default")
    await s.forget_if_empty(empty)
    await s.forget_if_empty(older)
    assert await s.get("empty") is None and await s.get("old") is not None
    assert [c.id for c in await s.for_user("alice")] == ["old", "new"]


async def test_every_key_of_a_conversation_expires(store) -> None:
    """History keys carry redis.history_ttl_s, so abandoned conversations do not pile up."""
    s, client = store
    conv = await s.create("c3", "alice", "group", "default")
    await s.join(conv, "bob")
    await s.add_messages(conv, message(1))
    for key in await client.keys("t:*c3*") + ["t:user:{alice}:convs", "t:user:{bob}:convs"]:
        assert 0 < await client.ttl(key) <= 60, key


async def test_no_id_reaches_another_conversations_keys(store) -> None:
    """Ids shaped like another conversation's keys (``<id>:msgs``, ``lobby:members``, braces)
    get keys of their own: the victim's history, members and claim are untouched."""
    s, client = store
    victim = await s.create("lobby", "alice", "group", "default")
    await s.add_messages(victim, message(1))
    for cid in ("lobby:msgs", "lobby:members", "lobby}:msgs", "{lobby}", "lobby:order"):
        conv = await s.create(cid, "mallory", "group", "default")
        await s.join(conv, "eve")
        await s.add_messages(conv, message(9))
        claim = await s.claim_reply(conv, f"m-{cid}", "c-9", "alive-one", interrupt=False)
        assert claim.outcome == "started"
    fresh = await s.get("lobby")
    assert fresh is not None and fresh.owner == "alice" and fresh.members == {"alice"}
    assert [m.content for m in fresh.messages] == ["text 1"] and fresh.running is None
    assert (await s.claim_reply(fresh, "m-2", "c-2", "alive-one", interrupt=False)).outcome == (
        "started"
    )
    assert len(await client.keys("t:conv:*")) == 6 * 5  # five keys for each conversation


async def test_replace_tail_rename_and_delete_leave_no_key_behind(store) -> None:
    """replace_tail keeps the head and stores the new tail; rename sets the title; delete
    removes every key of the conversation and its row in each member's list."""
    s, client = store
    conv = await s.create("c1", "alice", "person", "default")
    await s.join(conv, "bob")
    await s.add_messages(conv, message(1), message(2))
    await s.replace_tail(conv, 1, message(5))
    fresh = await s.get("c1")
    assert fresh is not None and [m.id for m in fresh.messages] == ["u-1", "u-5"]
    await s.replace_tail(conv, 0, message(6))
    fresh = await s.get("c1")
    assert fresh is not None and [m.id for m in fresh.messages] == ["u-6"]
    await s.rename(conv, "Named")
    rows = await s.for_user("alice")
    assert [(r.title, r.message_count) for r in rows] == [("Named", 1)]
    await s.delete(conv)
    assert await s.get("c1") is None
    assert await s.for_user("alice") == [] and await s.for_user("bob") == []
    assert [k async for k in client.scan_iter("t:*c1*")] == []


async def test_settle_stores_the_final_text_and_frees_the_conversation_in_one_call(store) -> None:
    """settle_reply writes the text (unless trimmed) and ends only its own running reply."""
    s, _ = store
    conv = await s.create("c9", "alice", "person", "default")
    placeholder = HistoryMessage("m-1", "assistant", "", "running", 1.0)
    await s.add_messages(conv, message(1), placeholder)
    await s.claim_reply(conv, "m-1", "c-1", "alive-one", interrupt=False)
    await s.settle_reply(conv, "m-2", ("not ours", "complete", ""))  # another reply: no change
    fresh = await s.get("c9")
    assert fresh is not None and fresh.running == "m-1"
    assert fresh.messages[-1].content == ""
    await s.settle_reply(fresh, "m-1", ("the answer", "complete", "thought"))
    settled = await s.get("c9")
    assert settled is not None and settled.running is None
    last = settled.messages[-1]
    assert (last.content, last.status, last.reasoning) == ("the answer", "complete", "thought")
    await s.claim_reply(settled, "m-3", "c-3", "alive-one", interrupt=False)
    await s.settle_reply(settled, "m-3", None)  # text given up: the conversation is freed
    assert (await s.get("c9")).running is None


async def test_a_read_sees_a_running_reply_only_while_its_instance_lives(store) -> None:
    """get() and create() drop the running reply of an instance whose alive key is gone."""
    s, client = store
    conv = await s.create("c10", "alice", "person", "default")
    await s.claim_reply(conv, "m-1", "c-1", "alive-one", interrupt=False)
    assert (await s.get("c10")).running == "m-1"
    assert (await s.create("c10", "alice", "person", "default")).running == "m-1"
    await client.delete("t:instance:{alive-one}")
    assert (await s.get("c10")).running is None
    assert (await s.create("c10", "alice", "person", "default")).running is None
