"""The upstream concurrency cap on one instance: places, a fair line, positions, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import UpstreamThrottled
from gateway.upstream_queue import MemoryUpstreamQueue


class Positions:
    """Collects the positions a waiter is told, and lets a test await the next one."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.changed = asyncio.Event()

    def __call__(self, position: int) -> None:
        self.seen.append(position)
        self.changed.set()


async def queued(queue: MemoryUpstreamQueue, positions: Positions | None = None):
    """Start an acquire in a task and return it once it is in the line."""
    positions = positions or Positions()
    task = asyncio.create_task(queue.acquire(positions))
    await positions.changed.wait()
    return task, positions


async def test_no_cap_never_waits() -> None:
    """max_concurrent 0: every acquire is immediate and counts nothing."""
    queue = MemoryUpstreamQueue(0, 1)
    slots = [await queue.acquire() for _ in range(100)]
    assert queue.running == 0
    for slot in slots:
        await slot.release()


async def test_under_the_cap_a_place_is_immediate_and_released_once() -> None:
    """Places are counted; a second release is a no-op; async with releases."""
    queue = MemoryUpstreamQueue(2, 1)
    a = await queue.acquire()
    async with await queue.acquire():
        assert queue.running == 2
    assert queue.running == 1
    await a.release()
    await a.release()
    assert queue.running == 0


async def test_waiters_are_served_in_order_and_told_their_places() -> None:
    """Beyond the cap, turns wait first in, first out; each hears its place as it moves."""
    queue = MemoryUpstreamQueue(1, 10)
    holder = await queue.acquire()
    tasks = [await queued(queue) for _ in range(3)]
    assert [p.seen for _, p in tasks] == [[1], [2], [3]]
    await holder.release()
    first = await tasks[0][0]
    assert [p.seen for _, p in tasks[1:]] == [[2, 1], [3, 2]]
    assert not tasks[1][0].done()
    await first.release()
    second = await tasks[1][0]
    await second.release()
    third = await tasks[2][0]
    assert queue.running == 1 and queue.waiting == 0
    await third.release()
    assert queue.running == 0


async def test_a_newcomer_never_overtakes_the_line() -> None:
    """A released place goes to the first waiter even if a new turn arrives at once."""
    queue = MemoryUpstreamQueue(1, 10)
    holder = await queue.acquire()
    waiter, _ = await queued(queue)
    await holder.release()
    newcomer, positions = await queued(queue)  # before the waiter's task has run
    assert positions.seen == [1]
    slot = await waiter
    assert not newcomer.done()
    await slot.release()
    await (await newcomer).release()


async def test_the_wait_runs_out_with_upstream_throttled() -> None:
    """After queue_timeout_s in line: upstream_throttled, the line moves up behind it."""
    queue = MemoryUpstreamQueue(1, 0.2)
    holder = await queue.acquire()
    first, _ = await queued(queue)
    await asyncio.sleep(0.1)  # the second joins later, so it times out later
    second, positions = await queued(queue)
    positions.changed.clear()
    with pytest.raises(UpstreamThrottled) as caught:
        await first
    assert caught.value.code == "upstream_throttled" and caught.value.retryable
    await positions.changed.wait()
    assert positions.seen == [2, 1]
    await holder.release()
    await (await second).release()
    assert queue.running == 0


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    """A turn cancelled while waiting (cancel, disconnect) frees its place in line."""
    queue = MemoryUpstreamQueue(1, 10)
    holder = await queue.acquire()
    first, _ = await queued(queue)
    second, positions = await queued(queue)
    positions.changed.clear()
    first.cancel()
    await positions.changed.wait()
    assert positions.seen == [2, 1] and queue.waiting == 1
    await holder.release()
    await (await second).release()
    assert queue.running == 0


async def test_a_place_handed_to_a_cancelled_waiter_passes_on() -> None:
    """Granted and cancelled in the same moment: the place goes to the next, none is lost."""
    queue = MemoryUpstreamQueue(1, 10)
    holder = await queue.acquire()
    first, _ = await queued(queue)
    second, _ = await queued(queue)
    await holder.release()  # hands the place to first...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    slot = await second
    assert queue.running == 1
    await slot.release()
    assert queue.running == 0


async def test_a_failing_position_callback_does_not_break_the_queue() -> None:
    """on_position raising is logged; the waiter still gets its place."""
    queue = MemoryUpstreamQueue(1, 10)
    holder = await queue.acquire()

    called = asyncio.Event()

    def broken(position: int) -> None:
        called.set()
        raise RuntimeError("socket gone")

    task = asyncio.create_task(queue.acquire(broken))
    await called.wait()
    await holder.release()
    await (await task).release()
    assert queue.running == 0


async def test_many_turns_never_exceed_the_cap_and_all_get_through() -> None:
    """Fifty turns through three places: never more than three at once, none lost."""
    queue = MemoryUpstreamQueue(3, 10)
    running = peak = done = 0

    async def turn() -> None:
        nonlocal running, peak, done
        async with await queue.acquire():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            running -= 1
        done += 1

    await asyncio.gather(*(turn() for _ in range(50)))
    assert (peak, done, queue.running, queue.waiting) == (3, 50, 0, 0)
