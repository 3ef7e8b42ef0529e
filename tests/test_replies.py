"""The reply log: numbering, merging reads, backpressure, states."""

from __future__ import annotations

import asyncio

from gateway.replies import ReplyLog, ReplyState


def _log() -> ReplyLog:
    return ReplyLog("m-1", "conv-1", "alice", "c-1", "qwen-plus")


def test_steps_are_numbered_from_one_and_reads_merge_whole_steps() -> None:
    """A reader behind by several steps gets them merged, never cut inside a step."""
    log = _log()
    for piece in ["He", "llo", ", 世界", "🚀"]:
        log.append(piece)
    assert log.head == 4
    assert log.read(0, 1000) == ("Hello, 世界🚀", 4)
    assert log.read(1, 3) == ("llo", 2)  # cap reached after one whole step
    assert log.read(2, 1) == (", 世界", 3)  # a step longer than the cap is still whole
    assert log.read(4, 10) == ("", 4)
    assert log.content_length == len("Hello, 世界🚀")


def test_bytes_behind_counts_utf8_bytes() -> None:
    """Lag is measured in UTF-8 bytes of the steps after the cursor."""
    log = _log()
    log.append("ab")
    log.append("你好")
    assert log.bytes_behind(0) == 2 + 6
    assert log.bytes_behind(1) == 6
    assert log.bytes_behind(2) == 0


async def test_producer_pauses_while_every_viewer_is_behind_the_bound() -> None:
    """wait_for_room blocks until one viewer advances, and never blocks with no viewer."""
    log = _log()
    log.append("x" * 100)
    await asyncio.wait_for(log.wait_for_room(10), 1)  # no viewers: no pause
    viewer = object()
    log.attach(viewer, lambda: None, 0)
    waiter = asyncio.create_task(log.wait_for_room(10))
    await asyncio.sleep(0)
    assert not waiter.done()
    log.advance(viewer, 1)
    await asyncio.wait_for(waiter, 1)


async def test_finish_wakes_viewers_and_is_final() -> None:
    """The first finish wins; viewers are woken."""
    log = _log()
    woken = asyncio.Event()
    log.attach(object(), woken.set, 0)
    woken.clear()
    log.finish(ReplyState.CANCELLED, "cancelled")
    log.finish(ReplyState.COMPLETED, "stop")
    assert woken.is_set()
    assert (log.state, log.finish_reason) == (ReplyState.CANCELLED, "cancelled")
    await asyncio.wait_for(log.wait_ended(), 1)


def test_orphan_and_adopt_callbacks_fire_on_last_detach_and_first_attach() -> None:
    """The last viewer leaving a running reply orphans it; a new viewer adopts it."""
    log = _log()
    events: list[str] = []
    log.on_orphaned = lambda _: events.append("orphaned")
    log.on_adopted = lambda _: events.append("adopted")
    a, b = object(), object()
    log.attach(a, lambda: None)
    log.attach(b, lambda: None)
    log.detach(a)
    log.detach(b)
    log.attach(a, lambda: None)
    assert events == ["adopted", "orphaned", "adopted"]
