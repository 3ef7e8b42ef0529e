"""The reply log: numbering, merging reads, backpressure, states."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from gateway.replies import ReplyLog, ReplyState, StepKind

ANSWER, REASONING = StepKind.ANSWER, StepKind.REASONING


def _log() -> ReplyLog:
    return ReplyLog("m-1", "conv-1", "alice", "c-1", "qwen-plus")


@dataclass(eq=False)
class _Viewer:
    """A viewer's position, as a connection's cursor holds it."""

    seq: int = 0


def test_steps_are_numbered_from_one_and_reads_merge_whole_steps() -> None:
    """A reader behind by several steps gets them merged, never cut inside a step."""
    log = _log()
    for piece in ["He", "llo", ", 世界", "🚀"]:
        log.append(piece)
    assert log.head == 4
    assert log.read(0, 1000) == ("Hello, 世界🚀", 4, ANSWER)
    assert log.read(1, 3) == ("llo", 2, ANSWER)  # cap reached after one whole step
    assert log.read(2, 1) == (", 世界", 3, ANSWER)  # a step longer than the cap is still whole
    assert log.read(4, 10)[:2] == ("", 4)
    assert log.content_length == len("Hello, 世界🚀")


def _reference_read(
    steps: list[str], after: int, max_chars: int, kinds: list[StepKind] | None = None
) -> tuple[str, int, StepKind]:
    """Merging as specified, on a plain list: whole steps of the first one's kind while
    fewer than max_chars."""
    kinds = kinds or [ANSWER] * len(steps)
    if after >= len(steps):
        return "", after, kinds[-1]
    end, size = after, 0
    while end < len(steps) and (size < max_chars or end == after) and kinds[end] == kinds[after]:
        size += len(steps[end])
        end += 1
    return "".join(steps[after:end]), end, kinds[after]


def test_packed_steps_read_back_exactly_from_every_cursor() -> None:
    """Steps packed into UTF-8 chunks read, merge and number exactly as the steps appended."""
    rng = random.Random(7)
    alphabet = ["a", "é", "你", "🚀", "\n", '"']
    steps = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3000))) for _ in range(120)]
    log = _log()
    for step in steps:
        log.append(step)
    assert log.head == len(steps)
    assert log.text == "".join(steps)
    assert log.content_length == len(log.text)
    assert log.text_between(0, len(steps)) == "".join(steps)
    assert log.text_between(37, 41) == "".join(steps[37:41])
    assert log.sizes(37, 41) == [len(step) for step in steps[37:41]]
    assert log.sizes(0, len(steps)) == [len(step) for step in steps]
    for after in range(len(steps) + 1):
        for max_chars in (1, 500, 4000, 10**6):
            assert log.read(after, max_chars) == _reference_read(steps, after, max_chars)
        expected = sum(len(s.encode()) for s in steps[after:])
        assert log.bytes_behind(after) == expected


def test_reasoning_and_answer_share_one_numbering_and_never_merge() -> None:
    """Steps of both kinds are numbered together; a read stops where the kind changes."""
    log = _log()
    for text, kind in [("Let", REASONING), (" me", REASONING), ("Hi", ANSWER), ("!", ANSWER)]:
        log.append(text, kind)
    assert log.head == 4
    assert log.read(0, 1000) == ("Let me", 2, REASONING)
    assert log.read(2, 1000) == ("Hi!", 4, ANSWER)
    assert log.read(1, 1000) == (" me", 2, REASONING)
    assert (log.text, log.reasoning) == ("Hi!", "Let me")
    assert (log.content_length, log.reasoning_length) == (3, 6)
    assert [log.kind(seq) for seq in range(1, 5)] == [REASONING, REASONING, ANSWER, ANSWER]
    assert (log.text_between(1, 3), log.sizes(1, 3)) == (" meHi", [3, 2])
    assert not log.only_answers


def test_an_answer_only_reply_stores_no_kinds() -> None:
    """A reply without reasoning keeps no kind boundaries and reports no reasoning."""
    log = _log()
    for piece in ["a", "b", "c"]:
        log.append(piece)
    assert log.only_answers
    assert (log.reasoning, log.reasoning_length, log.content_length) == ("", 0, 3)


def test_mixed_packed_steps_read_back_exactly_and_by_kind() -> None:
    """Alternating runs of both kinds, packed or not, read and merge within a kind only."""
    rng = random.Random(11)
    alphabet = ["a", "é", "你", "🚀", "\n"]
    steps, kinds = [], []
    kind = REASONING
    for _ in range(150):
        if rng.random() < 0.1:
            kind = ANSWER if kind is REASONING else REASONING
        steps.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 2000))))
        kinds.append(kind)
    log = _log()
    for step, kind in zip(steps, kinds, strict=True):
        log.append(step, kind)
    answer = "".join(s for s, k in zip(steps, kinds, strict=True) if k is ANSWER)
    reasoning = "".join(s for s, k in zip(steps, kinds, strict=True) if k is REASONING)
    assert (log.text, log.reasoning) == (answer, reasoning)
    assert (log.content_length, log.reasoning_length) == (len(answer), len(reasoning))
    assert log.text_between(0, len(steps)) == "".join(steps)
    assert log.sizes(0, len(steps)) == [len(step) for step in steps]
    assert [log.kind(seq) for seq in range(1, len(steps) + 1)] == kinds
    for after in range(len(steps) + 1):
        for max_chars in (1, 500, 4000, 10**6):
            expected = _reference_read(steps, after, max_chars, kinds)
            assert log.read(after, max_chars) == expected


def test_a_lone_surrogate_is_replaced_so_every_frame_encodes() -> None:
    """Text UTF-8 cannot carry (a lone surrogate from a JSON escape) is held as U+FFFD."""
    log = _log()
    log.append("a\ud83d")
    log.append("\ud83d\ude80")  # a pair split into two code points is joined
    assert log.text == "a\ufffd🚀"
    assert log.bytes_behind(0) == len("a\ufffd🚀".encode())


def test_bytes_behind_counts_utf8_bytes() -> None:
    """Lag is measured in UTF-8 bytes of the steps after the cursor."""
    log = _log()
    log.append("ab")
    log.append("你好")
    assert log.bytes_behind(0) == 2 + 6
    assert log.bytes_behind(1) == 6
    assert log.bytes_behind(2) == 0


async def test_producer_pauses_while_every_viewer_is_behind_the_bound() -> None:
    """wait_for_backpressure blocks until one viewer advances, never with no viewer."""
    log = _log()
    log.append("x" * 100)
    await asyncio.wait_for(log.wait_for_backpressure(10), 1)  # no viewers: no pause
    viewer = _Viewer()
    log.attach(viewer, lambda: None)
    waiter = asyncio.create_task(log.wait_for_backpressure(10))
    await asyncio.sleep(0)
    assert not waiter.done()
    viewer.seq = 1
    log.record_frame(0)
    await asyncio.wait_for(waiter, 1)
    assert (log.frames_sent, log.frames_merged) == (1, 0)


async def test_backpressure_is_none_while_one_viewer_is_within_the_bound() -> None:
    """backpressure() is None (no coroutine) unless every viewer is more than bound behind."""
    log = _log()
    log.append("x" * 100)
    assert log.backpressure(10) is None  # no viewers
    slow, quick = _Viewer(0), _Viewer(1)
    log.attach(slow, lambda: None)
    assert log.backpressure(100) is None  # the whole reply is within the bound
    wait = log.backpressure(10)
    assert wait is not None
    log.attach(quick, lambda: None)  # one viewer at the head is enough
    assert log.backpressure(10) is None
    await asyncio.wait_for(wait, 1)  # the earlier wait ends too
    log.append("y" * 5)
    assert log.backpressure(10) is None  # 5 bytes behind: within the bound


async def test_finish_wakes_viewers_and_is_final() -> None:
    """The first finish wins; viewers are woken."""
    log = _log()
    woken = asyncio.Event()
    log.attach(_Viewer(), woken.set)
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
    log.watch(
        on_orphaned=lambda _: events.append("orphaned"),
        on_adopted=lambda _: events.append("adopted"),
    )
    a, b = _Viewer(), _Viewer()
    log.attach(a, lambda: None)
    log.attach(b, lambda: None)
    log.detach(a)
    log.detach(b)
    log.attach(a, lambda: None)
    assert events == ["adopted", "orphaned", "adopted"]


def test_a_viewer_one_step_behind_the_watermark_reads_that_steps_kind() -> None:
    """Reasoning released, the first answer step not yet: the last reasoning step is reasoning."""
    log = _log()
    log.watch(on_change=lambda: None)  # as the Redis publisher: viewers wait for release
    log.append("Let", REASONING)
    log.append(" me", REASONING)
    log.release(2, end=False)
    log.append("Hi", ANSWER)
    assert log.read(1, 1000) == (" me", 2, REASONING)
