"""Memory mode's conversations: anonymous ones expire, and the store keeps a bound."""

from __future__ import annotations

import asyncio

from gateway import keys
from tests.conftest import eventually, make_token

BOUNDS = "messages_per_minute = 1000\nmax_connections_per_user = 100\n"


async def _listed(gw, **headers: str) -> list[str]:
    async with gw.client.get("/api/v1/conversations", headers=headers) as resp:
        assert resp.status == 200
        return [c["id"] for c in await resp.json()]


async def _chat_once(gw, text: str = "hi sim:delay_ms=0", **kw) -> str:
    """One turn on a new conversation, then the socket leaves; its conversation id."""
    sock = await gw.chat(**kw)
    await sock.ask(text)
    await sock.ws.close()
    return str(sock.connected["conversation_id"])


async def test_an_idle_anonymous_conversation_expires_after_the_ttl(gateway) -> None:
    """An anonymous visitor's idle conversation is forgotten after
    anonymous_history_ttl_s; a signed-in user's is kept, and so is one with a live viewer."""
    gw = await gateway(f"[limits]\nanonymous_history_ttl_s = 0.4\n{BOUNDS}")
    token = make_token("alice")
    kept = await _chat_once(gw, token=token)
    gone = await _chat_once(gw)
    live = await gw.chat()
    await live.ask("still here sim:delay_ms=0")
    live_id = live.connected["conversation_id"]
    assert set(await _listed(gw)) == {gone, live_id}

    async def only_the_live_one_is_left() -> bool:
        return await _listed(gw) == [live_id]

    await eventually(only_the_live_one_is_left, timeout=10)
    await asyncio.sleep(0.6)  # past the TTL again: the viewed one stays while viewed
    assert await _listed(gw) == [live_id]
    assert await _listed(gw, Authorization=f"Bearer {token}") == [kept]
    await live.ws.close()

    async def none_is_left() -> bool:
        return await _listed(gw) == []

    await eventually(none_is_left, timeout=10)
    assert await _listed(gw, Authorization=f"Bearer {token}") == [kept]


async def test_past_the_count_bound_the_oldest_idle_conversations_go(gateway) -> None:
    """memory_max_conversations = 4: a fifth conversation makes the least recently used
    idle one go; one with a live viewer stays however old."""
    gw = await gateway(f"[limits]\nmemory_max_conversations = 4\n{BOUNDS}")
    oldest = await gw.chat()
    await oldest.ask("viewed sim:delay_ms=0")
    ids = [await _chat_once(gw, f"n{i} sim:delay_ms=0") for i in range(5)]
    store = gw.app[keys.BACKENDS].conversations
    assert len(store) <= 4
    listed = set(await _listed(gw))
    assert oldest.connected["conversation_id"] in listed
    assert ids[-1] in listed and ids[0] not in listed and ids[1] not in listed


async def test_past_the_byte_budget_large_histories_are_forgotten(gateway) -> None:
    """memory_max_history_bytes bounds history: after four 200 000-character replies (with
    astral characters: 4 bytes each in Python) the store holds under its 2 MB budget."""
    gw = await gateway(f"[limits]\nmemory_max_history_bytes = 2000000\n{BOUNDS}")
    text = "big {} sim:chars=200000 sim:tokens=20 sim:delay_ms=0"
    ids = [await _chat_once(gw, text.format(i)) for i in range(4)]
    store = gw.app[keys.BACKENDS].conversations
    assert store.history_bytes <= 2_000_000
    assert 1 <= len(store) < 4
    assert ids[-1] in await _listed(gw)


async def test_a_bound_passed_while_all_is_viewed_is_met_once_viewers_leave() -> None:
    """Viewed conversations are kept past the count bound; the sweep forgets the oldest
    once their viewers have left (signed-in owners: the TTL does not apply)."""
    from gateway.stores.conversations_memory import MemoryConversationStore
    from tests.conftest import wait_until

    viewed = {f"conv-{i}" for i in range(5)}
    store = MemoryConversationStore(
        200, anonymous_ttl_s=0.2, max_conversations=3, viewed=lambda: viewed
    )
    for i in range(5):
        await store.create(f"conv-{i}", f"user-{i}", "person", "default")
    assert len(store) == 5
    viewed.clear()
    await wait_until(lambda: len(store) <= 3, timeout=5)
    assert await store.get("conv-0") is None and await store.get("conv-4") is not None


async def test_replace_tail_rename_and_delete_in_memory() -> None:
    """replace_tail keeps the head; rename sets the title; delete forgets it and its bytes."""
    from gateway.conversations import HistoryMessage
    from gateway.stores.conversations_memory import MemoryConversationStore

    store = MemoryConversationStore(10)
    conv = await store.create("c1", "alice", "person", "default")
    said = [HistoryMessage(f"u-{i}", "user", f"t{i}", "complete", 0.0) for i in range(3)]
    await store.add_messages(conv, said[0], said[1])
    await store.replace_tail(conv, 1, said[2])
    assert [m.id for m in conv.messages] == ["u-0", "u-2"]
    await store.rename(conv, "Named")
    rows = await store.for_user("alice")
    assert [(r.summary()["title"], r.summary()["message_count"]) for r in rows] == [("Named", 2)]
    await store.delete(conv)
    assert await store.get("c1") is None and await store.for_user("alice") == []
    assert store.history_bytes == 0 and len(store) == 0
