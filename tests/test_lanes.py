"""A socket's lanes: which frame goes next, driven with plain values and a real reply log."""

from __future__ import annotations

import asyncio
import json

from gateway.lanes import Lanes
from gateway.pace import DeltaPace
from gateway.replies import ReplyLog, ReplyState


def _log(message_id: str = "m-1") -> ReplyLog:
    return ReplyLog(message_id, "conv-1", "alice", "c-1", "qwen-plus")


def _frames(lanes: Lanes, wake=lambda: None) -> list[dict]:
    """Every frame the lanes give now, decoded, until they have nothing to send."""
    out = []
    while (item := lanes.next_frame(wake)) is not None:
        out.append(json.loads(item[0]))
    return out


def test_urgent_frames_go_first_and_a_cursor_yields_start_merged_delta_then_done() -> None:
    """A pong queued after a reply goes before it; the reply's steps come as one merged
    delta, and done once its end is visible; the drained lanes are dropped."""
    lanes = Lanes(max_merge_chars=1000)
    reply = _log()
    woken: list[str] = []
    assert lanes.push_ordered('{"type":"user_message"}')
    assert lanes.follow(reply, 0, False, lambda: woken.append("step"))
    for piece in ["He", "llo", "!"]:
        reply.append(piece)
    assert lanes.push('{"type":"pong"}')
    types = [f["type"] for f in _frames(lanes)]
    assert types == ["pong", "user_message", "start", "delta"]
    assert lanes.urgent is None and lanes.ordered is not None  # the cursor waits for more
    reply.finish(ReplyState.COMPLETED, "stop")
    assert [f["type"] for f in _frames(lanes)] == ["done"]
    assert lanes.urgent is None and lanes.ordered is None
    assert reply.viewer_count == 0 and woken  # detached at the end; steps woke the writer


def test_a_reply_is_followed_once_and_nothing_is_queued_once_closed() -> None:
    """Following a reply already followed is refused; close lets go of the reply and every
    later push, ordered push or follow is refused."""
    lanes = Lanes(max_merge_chars=1000)
    reply = _log()
    assert lanes.follow(reply, 0, False, lambda: None)
    assert not lanes.follow(reply, 0, False, lambda: None)
    assert lanes.follows("m-1") and reply.viewer_count == 1
    lanes.close()
    assert reply.viewer_count == 0 and lanes.ordered is None
    assert not lanes.push("x") and not lanes.push_ordered("y")
    assert not lanes.follow(_log("m-2"), 0, False, lambda: None)
    assert lanes.next_frame(lambda: None) is None


async def test_a_paced_delta_is_held_and_its_timer_wakes_the_writer() -> None:
    """Under a pace, the delta after a caught-up one is held (None) while steps merge into
    it, and the pace's timer calls the wake when it may go."""
    lanes = Lanes(max_merge_chars=1000, pace=DeltaPace(0.05))
    reply = _log()
    woke = asyncio.Event()
    lanes.follow(reply, 0, False, woke.set)
    reply.append("a")
    assert [f["type"] for f in _frames(lanes, woke.set)] == ["start", "delta"]
    reply.append("b")
    assert lanes.next_frame(woke.set) is None  # held, and the pace's timer armed
    woke.clear()
    reply.append("c")
    assert not woke.is_set()  # a step merging into the held delta does not wake
    await asyncio.wait_for(woke.wait(), timeout=5)
    frame, merged = lanes.next_frame(woke.set) or ("", -1)
    assert json.loads(frame)["text"] == "bc" and merged == 1
