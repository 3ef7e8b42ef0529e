"""Reasoning end to end (contract section 11): frames, numbering, resume, slow readers,
show_reasoning, history, and nothing of it upstream again."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.llm.script import parse_options, reply_steps
from tests.conftest import make_token
from tests.test_turns import expected


def thinking(count: int) -> str:
    """The simulator's reasoning text for ``count`` reasoning steps."""
    return "".join(f"Thinking {i + 1}. " for i in range(count))


def answer_steps(prompt: str) -> list[str]:
    options = parse_options(prompt, None)
    return reply_steps(options.prompt, options)


async def test_reasoning_frames_then_deltas_share_one_numbering(gateway) -> None:
    """Reasoning frames come first, then deltas, one seq numbering; done counts both."""
    gw = await gateway()
    sock = await gw.chat()
    prompt = "why sim:reasoning=5 sim:tokens=10 sim:delay_ms=0"
    reply = await sock.ask(prompt)  # checks seq over both kinds and done's lengths
    assert reply.reasoning == thinking(5)
    assert reply.text == expected(prompt)
    kinds = [frame["type"] for frame in reply.pieces]
    assert kinds == sorted(kinds, key=lambda kind: kind != "reasoning")  # reasoning first
    assert max(r["seq"] for r in reply.reasoning_frames) == 5
    assert reply.end["seq"] == 5 + len(answer_steps(prompt))
    assert reply.end["reasoning_length"] == len(thinking(5))
    assert reply.end["content_length"] == len(expected(prompt))


async def _resume_from(gw, conv: str, message_id: str, last_seq: int) -> Any:
    other = await gw.chat(conversation_id=conv)
    await other.send(type="resume", message_id=message_id, last_seq=last_seq)
    return await other.reply(after_seq=last_seq)


async def test_resume_in_the_reasoning_and_in_the_answer_gets_every_character_once(
    gateway,
) -> None:
    """A reader cut off inside the reasoning, or inside the answer, resumes with exactly
    the rest of each."""
    gw = await gateway()
    prompt = "resume me sim:reasoning=20 sim:tokens=20 sim:delay_ms=5"
    full_answer, full_reasoning = expected(prompt), thinking(20)
    for where in ("reasoning", "delta"):
        sock = await gw.chat()
        await sock.send(type="message", id="c-1", text=prompt)
        start = await sock.recv_type("start")
        held: list[dict[str, Any]] = []
        while len([f for f in held if f["type"] == where]) < 3:
            held.append(await sock.recv_type("reasoning", "delta"))
        sock.abort()
        last = held[-1]["seq"]
        assert (last <= 20) == (where == "reasoning")
        rest = await _resume_from(gw, sock.connected["conversation_id"], start["message_id"], last)
        assert rest.start["resumed"] is True
        reasoning = "".join(f["text"] for f in held if f["type"] == "reasoning")
        answer = "".join(f["text"] for f in held if f["type"] == "delta")
        assert reasoning + rest.reasoning == full_reasoning
        assert answer + rest.text == full_answer
        assert rest.end["reasoning_length"] == len(full_reasoning)
        assert rest.end["content_length"] == len(full_answer)


async def test_a_slow_reader_of_a_reasoning_heavy_reply_gets_each_kind_whole(gateway) -> None:
    """A slow reader gets merged frames that never mix kinds, and every character once."""
    gw = await gateway()
    sock = await gw.chat()
    prompt = "think hard sim:reasoning=200 sim:tokens=100 sim:delay_ms=0"
    await sock.send(type="message", id="c-1", text=prompt)
    await sock.recv_type("start")
    frames, last = [], 0
    while True:
        await asyncio.sleep(0.05)  # the reader's pace, not synchronisation
        frame = await sock.recv()
        if frame["type"] == "done":
            break
        assert frame["type"] in ("reasoning", "delta") and frame["seq"] > last
        # A reasoning frame holds steps 1-200 only; a delta, steps after 200 only.
        if frame["type"] == "reasoning":
            assert frame["seq"] <= 200
        else:
            assert last >= 200
        last = frame["seq"]
        frames.append(frame)
    assert "".join(f["text"] for f in frames if f["type"] == "reasoning") == thinking(200)
    assert "".join(f["text"] for f in frames if f["type"] == "delta") == expected(prompt)
    assert len(frames) < 200 + len(answer_steps(prompt))  # merged
    assert frame["seq"] == 200 + len(answer_steps(prompt)) == last


async def test_show_reasoning_false_sends_none_and_numbers_the_answer_only(gateway) -> None:
    """With show_reasoning = false: no reasoning frame, seq over answer steps, none in history."""
    gw = await gateway("[assistants.default]\nshow_reasoning = false\n")
    sock = await gw.chat(token=make_token("alice"))
    prompt = "quiet sim:reasoning=5 sim:tokens=10 sim:delay_ms=0"
    reply = await sock.ask(prompt)
    assert reply.reasoning_frames == []
    assert reply.text == expected(prompt)
    assert reply.end["seq"] == len(answer_steps(prompt))
    assert reply.end["reasoning_length"] == 0
    messages = await _messages(gw, sock.connected["conversation_id"], "alice")
    assert "reasoning" not in messages[1]


async def _messages(gw, conv: str, user: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers=headers)
    assert resp.status == 200
    messages: list[dict[str, Any]] = (await resp.json())["messages"]
    return messages


async def test_history_keeps_reasoning_and_never_sends_it_upstream(gateway) -> None:
    """History shows the reply's reasoning; the next turn sends its content only."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    first = await sock.ask("one sim:reasoning=3 sim:tokens=4 sim:delay_ms=0", "c-1")
    conv = sock.connected["conversation_id"]
    messages = await _messages(gw, conv, "alice")
    assert messages[1]["content"] == first.text
    assert messages[1]["reasoning"] == thinking(3)
    assert "reasoning" not in messages[0]
    await sock.ask("two sim:tokens=3 sim:delay_ms=0", "c-2")
    sent = gw.sim.state.requests[-1].body["input"]["messages"]
    assert {"role": "assistant", "content": first.text} in sent
    assert "Thinking" not in str(sent)


async def test_a_running_reply_shows_its_reasoning_so_far_in_history(gateway) -> None:
    """While a reply thinks, history's running message shows the reasoning it has so far."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-1", text="slow sim:reasoning=50 sim:delay_ms=40")
    await sock.recv_type("start")
    held = "".join([(await sock.recv_type("reasoning"))["text"] for _ in range(3)])
    messages = await _messages(gw, sock.connected["conversation_id"], "alice")
    assert messages[1]["status"] == "running" and messages[1]["content"] == ""
    assert messages[1]["reasoning"].startswith(held)
    await sock.send(type="cancel")
