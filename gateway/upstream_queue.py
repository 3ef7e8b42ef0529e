"""The upstream concurrency cap and its fair queue (contract section 12).

``upstream.max_concurrent`` replies may stream upstream at once (0: no cap). A turn beyond it
waits in a first-in, first-out queue for at most ``upstream.queue_timeout_s``; while it waits,
``on_position`` is told its place each time the place changes (1: next), which the turn sends
as ``{"type":"queued","reply_to":...,"position":n}``. When the wait runs out, ``acquire``
raises :class:`~gateway.errors.UpstreamThrottled` (the ``error`` frame of the contract).

:class:`MemoryUpstreamQueue` caps this instance; ``gateway.stores.upstream_queue_redis`` caps
every instance together. A place is released by :meth:`Slot.release` (or by leaving the
``async with`` block); a freed place goes straight to the first waiter, so a newcomer never
overtakes the queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

import structlog

from .errors import UpstreamThrottled

log = structlog.get_logger("gateway.queue")

PositionCallback = Callable[[int], None]


class Slot(Protocol):
    """A place among the replies streaming upstream; release it once (again is a no-op)."""

    async def release(self) -> None: ...

    async def __aenter__(self) -> Slot: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UpstreamQueue(Protocol):
    async def acquire(self, on_position: PositionCallback | None = None) -> Slot:
        """A place, at once or after waiting in line; :class:`UpstreamThrottled` when the
        wait runs out. ``on_position`` (which must not block or raise) hears each new
        place in the line; it is not called when no wait is needed."""
        ...


def waited_too_long(timeout_s: float) -> UpstreamThrottled:
    return UpstreamThrottled(f"the model service is at capacity; no place within {timeout_s:g} s")


def tell(on_position: PositionCallback | None, position: int) -> None:
    """Call ``on_position``; a failing callback is logged, never the queue's problem."""
    if on_position is None:
        return
    try:
        on_position(position)
    except Exception:
        log.exception("queue position callback failed")


class _Waiter:
    __slots__ = ("future", "on_position", "position")

    def __init__(self, future: asyncio.Future[None], on_position: PositionCallback | None):
        self.future = future
        self.on_position = on_position
        self.position = 0


class MemorySlot:
    """A place in a :class:`MemoryUpstreamQueue`."""

    __slots__ = ("_queue",)

    def __init__(self, queue: MemoryUpstreamQueue | None) -> None:
        self._queue = queue

    async def release(self) -> None:
        self.release_now()

    def release_now(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            queue._hand_over()

    async def __aenter__(self) -> MemorySlot:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release_now()


class MemoryUpstreamQueue:
    """:class:`UpstreamQueue` for one instance: a count of running replies and a deque of
    waiters. A released place is handed to the first waiter still waiting (its count never
    drops in between), so the order of service is the order of arrival."""

    def __init__(self, max_concurrent: int, queue_timeout_s: float) -> None:
        self._max = max_concurrent
        self._timeout = queue_timeout_s
        self._running = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, on_position: PositionCallback | None = None) -> MemorySlot:
        if self._max <= 0:
            return MemorySlot(None)
        if self._running < self._max and not self._waiters:
            self._running += 1
            return MemorySlot(self)
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_position)
        self._waiters.append(waiter)
        self._announce()
        try:
            async with asyncio.timeout(self._timeout):
                await waiter.future
        except TimeoutError:
            if self._granted(waiter):
                return MemorySlot(self)  # the place came as the time ran out: take it
            self._leave(waiter)
            raise waited_too_long(self._timeout) from None
        except BaseException:
            if self._granted(waiter):
                self._hand_over()  # handed a place while being cancelled: pass it on
            else:
                self._leave(waiter)
            raise
        return MemorySlot(self)

    @staticmethod
    def _granted(waiter: _Waiter) -> bool:
        return waiter.future.done() and not waiter.future.cancelled()

    def _leave(self, waiter: _Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return
        self._announce()

    def _hand_over(self) -> None:
        """A place is free: the first waiter still waiting takes it, else the count drops."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                self._announce()
                return
        self._running -= 1

    def _announce(self) -> None:
        for index, waiter in enumerate(self._waiters, 1):
            if waiter.position != index and not waiter.future.done():
                waiter.position = index
                tell(waiter.on_position, index)
