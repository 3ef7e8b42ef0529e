"""The standing deadline: a block past its limit fails as a timeout, one timer for all."""

from __future__ import annotations

import asyncio

import pytest

from gateway.deadline import StandingDeadline


async def test_a_block_past_its_limit_leaves_as_a_timeout() -> None:
    """A block still waiting when its limit passes is cancelled and raises TimeoutError."""
    deadline = StandingDeadline(0.05)
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with deadline:
            await never.wait()
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_blocks_that_end_in_time_are_left_alone() -> None:
    """Many blocks that end in time run to their end, and the task is never cancelled."""
    deadline = StandingDeadline(0.05)
    ended = 0
    for _ in range(200):
        async with deadline:
            await asyncio.sleep(0)
            ended += 1
    assert ended == 200
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]
    deadline.cancel()


async def test_each_block_gets_its_whole_limit() -> None:
    """A block that starts when the timer armed by an earlier one fires is not cut short."""
    loop = asyncio.get_running_loop()
    deadline = StandingDeadline(0.2)
    async with deadline:  # arms the timer for 0.2 s from now
        pass
    fired_early = asyncio.Event()
    loop.call_later(0.15, fired_early.set)
    await fired_early.wait()
    done = asyncio.Event()
    loop.call_later(0.1, done.set)  # ends 0.25 s after the first block, 0.1 s into this one
    async with deadline:
        await done.wait()
    deadline.cancel()


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    """Cancelling the task inside a block raises CancelledError, not TimeoutError."""
    deadline = StandingDeadline(5.0)
    entered = asyncio.Event()

    async def block() -> None:
        async with deadline:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(block())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline.cancel()


async def test_no_limit_never_times_out() -> None:
    """With no limit (None) the block runs as long as it needs."""
    deadline = StandingDeadline(None)
    async with deadline:
        await asyncio.sleep(0.01)
