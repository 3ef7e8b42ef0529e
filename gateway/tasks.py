"""Background tasks with one owner: spawned, retried with backoff, cancelled and awaited.

asyncio keeps only a weak reference to a task, and an exception in a task nobody awaits is
reported late or never: whoever starts a background task holds it in a :class:`TaskOwner`,
which keeps the reference, logs what fails, and stops every task it holds in one
:meth:`~TaskOwner.aclose`. A loop that must survive an outage (Redis restarting) is
:func:`retry_forever`: it waits longer after each failure and logs once per outage.

A task is stopped with :func:`cancel_and_wait`, never with one ``cancel()`` and an unbounded
wait: on Python 3.11, ``asyncio.wait_for`` (which redis-py calls around every command it
sends) drops a cancellation that arrives while the awaited thing completes, and a loop that
lost its cancel (a heartbeat) runs on forever; a stopping instance then never exits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any, NoReturn

import structlog

log = structlog.get_logger("gateway.tasks")

RECANCEL_S = 1.0  # a task still running this long after its cancel is cancelled again


class Backoff:
    """The waits between a loop's attempts: ``first_s``, doubling up to ``max_s``.

    :meth:`failed` says how long to wait after a failure and whether it starts an outage
    (the first failure since the last :meth:`reset`); :meth:`reset`, called once an
    attempt has made progress, ends the outage and brings the wait back to ``first_s``.
    """

    def __init__(self, first_s: float = 0.05, max_s: float = 2.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._next_s = first_s
        self.failing = False

    def failed(self) -> tuple[float, bool]:
        """The wait before the next attempt, and whether this failure starts an outage."""
        wait_s, started = self._next_s, not self.failing
        self._next_s = min(self._next_s * 2, self.max_s)
        self.failing = True
        return wait_s, started

    def reset(self) -> None:
        self._next_s = self.first_s
        self.failing = False


async def retry_forever(
    attempt: Callable[[], Awaitable[None]],
    name: str,
    *,
    retry_on: tuple[type[Exception], ...],
    backoff: Backoff | None = None,
) -> NoReturn:
    """Await ``attempt()`` again and again until cancelled.

    An attempt that returns has made progress (the backoff resets); one that raises one of
    ``retry_on`` is retried after the backoff's wait, with a warning at the first failure
    of an outage only. An attempt may also call ``backoff.reset()`` itself once it has made
    progress (a subscription that then listens for a long time). Any other exception ends
    the loop (its owner logs it).
    """
    backoff = backoff if backoff is not None else Backoff()
    while True:
        try:
            await attempt()
        except retry_on as exc:
            wait_s, started = backoff.failed()
            if started:
                log.warning("retrying after a failure", task=name, error=type(exc).__name__)
            await asyncio.sleep(wait_s)
        else:
            backoff.reset()


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], *, recancel_s: float = RECANCEL_S
) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again, every
    ``recancel_s``, those still running: a task that lost its cancellation (see the module's
    docstring) gets another, and one that is still cleaning up after it that long is cut.
    A cancellation of the caller is not delayed (it propagates, leaving the tasks cancelled)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_s)
        if pending:
            log.warning(
                "tasks still running after a cancel: cancelling them again",
                tasks=sorted(task.get_name() for task in pending),
            )


class TaskOwner:
    """The background tasks of one component: it keeps them, logs them, and stops them.

    Contract: :meth:`spawn` starts a task and holds a reference until it is done; a task
    that ends with an exception (not a cancellation) is logged with its name, once.
    :meth:`forever` spawns :func:`retry_forever`. :meth:`aclose` first lets the tasks run
    for up to ``grace_s`` (0: not at all), then cancels the rest (:func:`cancel_and_wait`:
    again every :data:`RECANCEL_S` while one still runs) and returns once every task held,
    including any spawned meanwhile, is done; it never raises their exceptions. After
    :meth:`aclose` the owner may be used again.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def forever(
        self,
        attempt: Callable[[], Awaitable[None]],
        name: str,
        *,
        retry_on: tuple[type[Exception], ...],
        backoff: Backoff | None = None,
    ) -> asyncio.Task[Any]:
        """Spawn :func:`retry_forever` of ``attempt``, named ``name``."""
        return self.spawn(retry_forever(attempt, name, retry_on=retry_on, backoff=backoff), name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task failed", task=task.get_name(), exc_info=exc)

    async def aclose(self, grace_s: float = 0.0) -> None:
        if grace_s > 0 and self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        while self._tasks:
            pending = set(self._tasks)
            await cancel_and_wait(pending)
            self._tasks -= pending
