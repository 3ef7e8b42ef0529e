"""The reply log: one assistant reply's numbered steps, its state, and the viewers it wakes.

One producer (the task reading the upstream) appends steps; any number of viewers read
them through their own cursor (a ``seq``). Nothing is copied per viewer: a viewer asks
for the text between its cursor and the head (:meth:`ReplyLog.read`) and gets every
pending step merged into one piece, so a slow viewer gets fewer, larger frames.

Backpressure: the producer calls :meth:`ReplyLog.wait_for_room` after each step; it
returns at once unless every attached viewer is more than ``bound`` bytes behind the
head, in which case the upstream read pauses until one of them catches up.

States::

    RUNNING ──► COMPLETED   (finish_reason stop | length)
        ├─────► CANCELLED   (cancelled | interrupted | orphaned)
        └─────► FAILED      (an error after start; ``error`` holds it)
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import GatewayError


class ReplyState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


def _byte_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@dataclass(eq=False, slots=True)
class ReplyLog:
    message_id: str
    conversation_id: str
    owner: str
    reply_to: str
    model: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    state: ReplyState = ReplyState.RUNNING
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: GatewayError | None = None
    upstream_request_id: str | None = None
    orphaned: bool = False  # stopped because no viewer came back within the grace
    first_step_at: float | None = None
    frames_sent: int = 0  # delta frames, over all viewers
    frames_merged: int = 0  # steps that rode in an earlier step's frame
    remote: bool = False  # a mirror of a reply another instance produces (stores/redis_replies)
    instance: str = ""  # the instance that produces it
    # steps[i] is step seq=i+1; ends[i] is the UTF-8 byte offset after it.
    _steps: list[str] = field(default_factory=list)
    _ends: list[int] = field(default_factory=list)
    _chars: int = 0
    _viewers: dict[object, Callable[[], None]] = field(default_factory=dict)
    _cursors: dict[object, int] = field(default_factory=dict)
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)
    on_orphaned: Callable[[ReplyLog], None] | None = None
    on_adopted: Callable[[ReplyLog], None] | None = None
    on_change: Callable[[], None] | None = None  # a step or the end (the Redis publisher)

    # ---------------------------------------------------------------- reading

    @property
    def head(self) -> int:
        """The seq of the last step (0: no text yet)."""
        return len(self._steps)

    @property
    def ended(self) -> bool:
        return self.state is not ReplyState.RUNNING

    @property
    def content_length(self) -> int:
        """The reply's length in Unicode code points."""
        return self._chars

    @property
    def text(self) -> str:
        return "".join(self._steps)

    def bytes_behind(self, seq: int) -> int:
        if seq >= len(self._ends):
            return 0
        return self._ends[-1] - (self._ends[seq - 1] if seq > 0 else 0)

    def read(self, after: int, max_chars: int) -> tuple[str, int]:
        """Text of the steps after ``after``, whole steps up to about ``max_chars``; new seq."""
        head = len(self._steps)
        if after >= head:
            return "", after
        if after + 1 == head:  # the common case for a reader that keeps up
            return self._steps[after], head
        end, size = after, 0
        while end < head and (size < max_chars or end == after):
            size += len(self._steps[end])
            end += 1
        return "".join(self._steps[after:end]), end

    def steps(self, after: int, upto: int) -> list[str]:
        """The steps after ``after`` up to and including ``upto``, one string each."""
        return self._steps[after:upto]

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # ---------------------------------------------------------------- viewers

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def attach(self, viewer: object, wake: Callable[[], None], seq: int = 0) -> None:
        adopted = not self._viewers
        self._viewers[viewer] = wake
        self._cursors[viewer] = seq
        if adopted and self.on_adopted is not None:
            self.on_adopted(self)
        wake()

    def detach(self, viewer: object) -> None:
        if self._viewers.pop(viewer, None) is None:
            return
        self._cursors.pop(viewer, None)
        self._room.set()
        if not self._viewers and not self.ended and self.on_orphaned is not None:
            self.on_orphaned(self)

    def advance(self, viewer: object, seq: int) -> None:
        """A viewer has sent everything up to ``seq``; maybe unblock the producer."""
        if viewer in self._cursors:
            self._cursors[viewer] = seq
            self._room.set()

    # ---------------------------------------------------------------- producing

    def append(self, text: str) -> int:
        """Add one step (non-empty text); return its seq and wake the viewers."""
        self._steps.append(text)
        self._ends.append((self._ends[-1] if self._ends else 0) + _byte_len(text))
        self._chars += len(text)
        for wake in self._viewers.values():
            wake()
        if self.on_change is not None:
            self.on_change()
        return len(self._steps)

    async def wait_for_room(self, bound: int) -> None:
        """Pause while every viewer is more than ``bound`` bytes behind (none: no pause)."""
        while self._viewers and all(
            self.bytes_behind(seq) > bound for seq in self._cursors.values()
        ):
            self._room.clear()
            await self._room.wait()

    def finish(
        self,
        state: ReplyState,
        finish_reason: str,
        *,
        error: GatewayError | None = None,
    ) -> None:
        if self.ended:
            return
        self.state = state
        self.finish_reason = finish_reason
        self.error = error
        self.finished_at = time.time()
        self._ended.set()
        self._room.set()
        for wake in self._viewers.values():
            wake()
        if self.on_change is not None:
            self.on_change()


class ReplyStore:
    """Reply logs by message id, kept for ``resume_window_s`` after they end (in memory)."""

    def __init__(self, resume_window_s: float) -> None:
        self._logs: dict[str, ReplyLog] = {}
        self._window = resume_window_s
        self._expiry: dict[str, asyncio.TimerHandle] = {}

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
        return [log for log in self._logs.values() if not log.ended]

    def ended(self, log: ReplyLog) -> None:
        """Schedule the log's removal once the resume window has passed (once per log)."""
        if log.message_id in self._expiry:
            return
        loop = asyncio.get_running_loop()
        self._expiry[log.message_id] = loop.call_later(self._window, self._drop, log.message_id)

    def _drop(self, message_id: str) -> None:
        self._expiry.pop(message_id, None)
        self._logs.pop(message_id, None)

    async def aclose(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
