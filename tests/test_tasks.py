"""The task owner: spawned tasks are held and logged, loops retry with backoff, close stops all."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from structlog.testing import capture_logs

from gateway.tasks import Backoff, TaskOwner, cancel_and_wait, retry_forever


class Outage(Exception):
    pass


def test_backoff_waits_double_up_to_the_cap_and_reset_starts_over() -> None:
    """Waits go first_s, 2x, 4x... capped at max_s; only the first failure starts an outage."""
    backoff = Backoff(first_s=0.1, max_s=0.5)
    assert [backoff.failed() for _ in range(5)] == [
        (0.1, True),
        (0.2, False),
        (0.4, False),
        (0.5, False),
        (0.5, False),
    ]
    backoff.reset()
    assert backoff.failed() == (0.1, True)


async def test_a_task_that_fails_is_logged_once_with_its_name_and_let_go() -> None:
    """An exception ending a spawned task is logged (error, the task's name); the owner drops it."""
    owner = TaskOwner()

    async def fail() -> None:
        raise ValueError("boom")

    with capture_logs() as logs:
        async with asyncio.timeout(5):
            task = owner.spawn(fail(), "doomed")
            await asyncio.wait({task})
            await asyncio.sleep(0)  # the done callback runs after the waiters'
    failures = [e for e in logs if e["event"] == "background task failed"]
    assert len(failures) == 1 and failures[0]["task"] == "doomed"
    assert failures[0]["log_level"] == "error" and isinstance(failures[0]["exc_info"], ValueError)
    assert len(owner) == 0


async def test_aclose_cancels_every_task_and_waits_for_them_without_raising() -> None:
    """aclose cancels running tasks, lets their cleanup run to the end, and logs no failure."""
    owner = TaskOwner()
    cleaned: list[str] = []
    started = asyncio.Event()

    async def hold(name: str) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself awaits
            cleaned.append(name)

    with capture_logs() as logs:
        async with asyncio.timeout(5):
            tasks = [owner.spawn(hold(n), n) for n in ("a", "b")]
            await started.wait()
            await owner.aclose()
    assert sorted(cleaned) == ["a", "b"] and all(t.cancelled() for t in tasks)
    assert len(owner) == 0 and not logs


async def test_aclose_with_a_grace_lets_tasks_finish_and_cancels_the_late_ones() -> None:
    """Within grace_s a task finishes on its own; one still running after it is cancelled."""
    owner = TaskOwner()
    release = asyncio.Event()

    async def quick() -> None:
        await release.wait()

    async def slow() -> None:
        await asyncio.Event().wait()

    async with asyncio.timeout(5):
        quick_task = owner.spawn(quick(), "quick")
        slow_task = owner.spawn(slow(), "slow")
        asyncio.get_running_loop().call_soon(release.set)
        await owner.aclose(grace_s=0.2)
    assert quick_task.done() and not quick_task.cancelled()
    assert slow_task.cancelled()


async def test_aclose_cancels_again_a_task_that_lost_its_cancellation() -> None:
    """A loop that drops a cancel (as Python 3.11's wait_for can, around every redis-py
    command) is cancelled again and stopped; the second cancel is logged with its name."""
    owner = TaskOwner()
    beats = asyncio.Event()

    async def heartbeat_that_drops_one_cancel() -> None:
        dropped = False
        while True:
            try:
                beats.set()
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if dropped:
                    raise
                dropped = True  # carries on as if never cancelled

    with capture_logs() as logs:
        async with asyncio.timeout(5):
            task = owner.spawn(heartbeat_that_drops_one_cancel(), "heartbeat")
            await beats.wait()
            await owner.aclose()
    assert task.cancelled() and len(owner) == 0
    assert [e["tasks"] for e in logs if e["log_level"] == "warning"] == [["heartbeat"]]


async def test_cancel_and_wait_gives_way_to_a_cancellation_of_its_caller() -> None:
    """Cancelling whoever waits in cancel_and_wait ends that wait at once (the tasks stay
    cancelled); it does not wait out the re-cancel interval."""
    stopping = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopping.set()
            await asyncio.sleep(30)  # a cleanup that takes long

    async with asyncio.timeout(5):
        task = asyncio.create_task(slow_cleanup())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(cancel_and_wait([task], recancel_s=60))
        await stopping.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_task_spawned_while_closing_is_stopped_too() -> None:
    """A task that spawns another as it is cancelled leaves nothing running after aclose."""
    owner = TaskOwner()
    late: list[asyncio.Task[None]] = []

    async def forever() -> None:
        await asyncio.Event().wait()

    async def spawner() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            late.append(owner.spawn(forever(), "late"))

    async with asyncio.timeout(5):
        owner.spawn(spawner(), "spawner")
        await asyncio.sleep(0)
        await owner.aclose()
    assert late and late[0].cancelled() and len(owner) == 0


async def test_retry_forever_backs_off_warns_once_per_outage_and_resets_on_success() -> None:
    """Failures of the given types are retried with doubling waits and one warning per
    outage; a successful attempt ends the outage, so the next failure warns again."""
    outcomes = iter([Outage, Outage, Outage, None, Outage, None])
    calls: list[float] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def attempt() -> None:
        calls.append(loop.time())
        outcome = next(outcomes, "stop")
        if outcome == "stop":
            done.set()
            await asyncio.Event().wait()
        elif outcome is Outage:
            raise Outage()

    with capture_logs() as logs:
        async with asyncio.timeout(5):
            task = asyncio.create_task(
                retry_forever(attempt, "loop", retry_on=(Outage,), backoff=Backoff(0.02, 0.05))
            )
            await done.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    warnings = [e for e in logs if e["event"] == "retrying after a failure"]
    assert len(warnings) == 2 and all(e["task"] == "loop" for e in warnings)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.05  # 0.02, 0.04, capped 0.05


async def test_an_unexpected_exception_ends_a_forever_loop_and_its_owner_logs_it() -> None:
    """An exception outside retry_on is not retried: the task ends and is logged as failed."""
    owner = TaskOwner()
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("not an outage")

    with capture_logs() as logs:
        async with asyncio.timeout(5):
            task = owner.forever(attempt, "loop", retry_on=(Outage,))
            await asyncio.wait({task})
            await asyncio.sleep(0)
    assert calls == 1
    assert [e["task"] for e in logs if e["event"] == "background task failed"] == ["loop"]
