"""One instance: reply logs in memory, for their resume window and within a byte budget."""

from __future__ import annotations

import asyncio

from ..eviction import to_evict
from ..replies import ReplyLog


class MemoryReplyStore:
    """Reply logs by message id, kept for ``resume_window_s`` after they end (in memory).

    Ended logs also share a budget of ``max_ended_bytes`` (0: none): past it, the oldest
    ended logs that no viewer is reading are forgotten before their window is over (a
    resume then gets ``resume_unavailable``). A running log is never forgotten. A log
    forgotten here is referenced by nothing else: its memory goes with it.
    """

    def __init__(self, resume_window_s: float, max_ended_bytes: int = 0) -> None:
        self._logs: dict[str, ReplyLog] = {}
        self._window = resume_window_s
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._max_ended_bytes = max_ended_bytes
        self._ended: dict[str, int] = {}  # ended logs held, oldest first: their sizes
        self._ended_bytes = 0

    async def add(self, log: ReplyLog) -> None:
        """A reply this instance produces."""
        self._logs[log.message_id] = log

    def get(self, message_id: str) -> ReplyLog | None:
        """A log held here: produced here, or mirrored from another instance."""
        return self._logs.get(message_id)

    async def find(self, message_id: str) -> ReplyLog | None:
        """The log wherever it is produced (in memory: only here)."""
        return self._logs.get(message_id)

    async def watched_elsewhere(self, message_id: str) -> bool:
        """Whether a viewer on another instance follows this reply (in memory: never)."""
        return False

    async def reap_stale(self, message_id: str) -> None:
        """End, as failed, a reply whose producing instance died (in memory: none can)."""

    def running(self) -> list[ReplyLog]:
        """The logs held here that have not ended."""
        return [log for log in self._logs.values() if not log.ended]

    @property
    def ended_bytes(self) -> int:
        """The bytes of the ended logs held (what ``max_ended_bytes`` bounds)."""
        return self._ended_bytes

    def expire_later(self, log: ReplyLog) -> None:
        """Schedule the log's removal once the resume window has passed (once per log);
        forget the oldest idle ended logs if the budget is passed."""
        if log.message_id in self._expiry or self._logs.get(log.message_id) is not log:
            return  # scheduled already, or forgotten already
        loop = asyncio.get_running_loop()
        self._expiry[log.message_id] = loop.call_later(self._window, self._drop, log.message_id)
        size = log.size
        self._ended[log.message_id] = size
        self._ended_bytes += size
        if self._max_ended_bytes and self._ended_bytes > self._max_ended_bytes:
            self._evict()

    def _evict(self) -> None:
        def busy(message_id: str) -> bool:
            log = self._logs.get(message_id)
            return log is not None and log.viewer_count > 0

        for message_id in to_evict(
            self._ended.items(),
            busy,
            count=len(self._ended),
            size=self._ended_bytes,
            max_bytes=self._max_ended_bytes,
        ):
            self._drop(message_id)

    def _drop(self, message_id: str) -> None:
        handle = self._expiry.pop(message_id, None)
        if handle is not None:
            handle.cancel()
        self._logs.pop(message_id, None)
        self._ended_bytes -= self._ended.pop(message_id, 0)

    async def forget(self, message_id: str) -> None:
        self._drop(message_id)

    async def run(self) -> None:
        pass  # (removals are timers, scheduled by expire_later)

    async def aclose(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
