"""Ids shaped like another conversation's Redis keys, against two instances on a real Redis:
refused where they enter, and the conversation they aim at keeps working."""

from __future__ import annotations

from tests.conftest import make_token
from tests.handlers.test_conversations import bearer


async def test_a_key_shaped_id_reaches_neither_the_store_nor_its_victim(instances) -> None:
    """``lobby:members`` on the handshake closes with 1008, ``lobby:msgs`` in a REST path is
    400; room ``lobby`` keeps its history and members, and takes messages on both instances."""
    a, b = await instances()
    alice = await a.chat(token=make_token("alice"), session_type="group", conversation_id="lobby")
    first = await alice.ask("hello sim:tokens=3 sim:delay_ms=0", "c-1")
    for victim_key in ("lobby:members", "lobby:msgs", "{lobby}"):
        mallory = await b.connect(
            token=make_token("mallory"), session_type="group", conversation_id=victim_key
        )
        code, reason = await mallory.closed()
        assert code == 1008 and reason.startswith("conversation_id must be")
        resp = await b.client.post(
            f"/api/v1/conversations/{victim_key}/reset", headers=bearer("root", admin=True)
        )
        assert resp.status in (400, 404)  # 404: aiohttp's route takes no braces at all
    bob = await b.chat(token=make_token("bob"), session_type="group", conversation_id="lobby")
    second = await bob.ask("again sim:tokens=3 sim:delay_ms=0", "c-2")
    assert second.end["finish_reason"] == "stop"
    resp = await b.client.get("/api/v1/conversations/lobby/messages", headers=bearer("alice"))
    history = (await resp.json())["messages"]
    assert [m["content"] for m in history if m["role"] == "assistant"] == [
        first.text,
        second.text,
    ]
