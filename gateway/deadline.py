"""A time limit for one awaited operation at a time, kept by one standing timer.

``asyncio.timeout`` arms a timer when its block starts and cancels it when the block ends:
right for an occasional call, but a loop that awaits a round trip a thousand times a second
(the reply publisher) pays for a timer each time. :class:`StandingDeadline` keeps one timer
for all of them: it fires at most once per limit while blocks run, checks the running
block's start, and sleeps again until that block's own deadline.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class StandingDeadline:
    """``async with deadline:`` limits its block to ``seconds`` (None: no limit).

    Contract: a block still running ``seconds`` after it began is cancelled, and the
    cancellation leaves the ``async with`` as :class:`TimeoutError`, as with
    ``asyncio.timeout``; a cancellation from elsewhere stays a cancellation. Blocks must not
    overlap (one task's loop runs them in turn); each gets its whole limit, whatever ran
    before it. :meth:`cancel` drops the timer (when the owner stops).
    """

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._due: float | None = None  # the running block's deadline (loop time)
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False

    async def __aenter__(self) -> None:
        if self._seconds is None:
            return
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self._seconds
        self._task = asyncio.current_task()
        if self._timer is None:
            self._timer = loop.call_at(self._due, self._check)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._due = None
        if not self._expired:
            return
        self._expired = False
        assert self._task is not None
        if self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _check(self) -> None:
        """The timer: cancel a block past its deadline, or wait for the running one's."""
        self._timer = None
        if self._due is None or self._task is None:
            return  # no block runs: the next one arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._due:
            self._expired = True
            self._task.cancel()
        else:
            self._timer = loop.call_at(self._due, self._check)

    def cancel(self) -> None:
        """Drop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
