"""Reasoning across two instances on one Redis: mirrors carry each step's kind."""

from __future__ import annotations

from tests.conftest import eventually, make_token
from tests.stores.conftest import started
from tests.test_reasoning import thinking
from tests.test_turns import expected

THINKING = "sim:reasoning=12 sim:tokens=12 sim:delay_ms=20"


async def test_a_room_across_instances_sees_the_same_reasoning_and_answer(instances) -> None:
    """A member on the other instance gets the same reasoning frames and deltas, same seqs."""
    a, b = await instances()
    room = "conv-room-think"
    alice = await a.chat(token=make_token("alice"), session_type="group", conversation_id=room)
    bob = await b.chat(token=make_token("bob"), session_type="group", conversation_id=room)
    prompt = f"think together {THINKING}"
    await bob.send(type="message", id="b-1", text=prompt)
    seen = []
    for sock in (alice, bob):
        await sock.recv_type("user_message")
        seen.append(await sock.reply())  # checks one numbering over both kinds
    for reply in seen:
        assert reply.reasoning == thinking(12)
        assert reply.text == expected(prompt)
        assert all(f["seq"] <= 12 for f in reply.reasoning_frames)
        assert all(f["seq"] > 12 for f in reply.deltas)
    assert seen[0].end["seq"] == seen[1].end["seq"]
    assert seen[0].end["reasoning_length"] == seen[1].end["reasoning_length"] == len(thinking(12))


async def test_resume_on_b_inside_the_reasoning_of_a_reply_made_on_a(instances) -> None:
    """Cut off on a inside the reasoning, a client resumes on b with exactly the rest of
    both kinds, and b's history holds the reasoning."""
    a, b = await instances()
    token = make_token("alice")
    prompt = f"resume the thought {THINKING}"
    sock, conv, start = await started(a, token, prompt)
    held = [await sock.recv_type("reasoning") for _ in range(3)]
    sock.abort()
    last = held[-1]["seq"]
    assert last < 12
    other = await b.chat(token=token, conversation_id=conv)
    await other.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await other.reply(after_seq=last)
    assert "".join(f["text"] for f in held) + rest.reasoning == thinking(12)
    assert rest.text == expected(prompt)
    assert rest.end["reasoning_length"] == len(thinking(12))
    auth = {"Authorization": f"Bearer {token}"}

    async def settled() -> dict:
        resp = await b.client.get(f"/api/v1/conversations/{conv}/messages", headers=auth)
        last_message: dict = (await resp.json())["messages"][-1]
        return last_message if last_message["status"] == "complete" else {}

    stored = await eventually(settled)
    assert stored["reasoning"] == thinking(12)
    assert stored["content"] == expected(prompt)
