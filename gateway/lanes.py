"""A socket's two outbound lanes and its cursors: which frame goes next.

The connection (:mod:`gateway.connection`) queues frames here and its writer task asks
:meth:`Lanes.next_frame` for the next one to send; nothing here sends, and nothing here
starts a task. The lanes:

* ``urgent``: frames that need no order relative to a reply (``pong``, ``error`` about a
  client frame, ``broadcast``, ``token_expiring``); they go first;
* ``ordered``: frames and :class:`Cursor`\\ s in conversation order (``user_message``,
  ``history_cleared``, a reply). A cursor at the head of the lane yields ``start``, then,
  each time it is asked, *all* text between the cursor and the reply log's watermark (its
  head; with Redis, what is in Redis) as one ``delta`` of at most the merge size (so a slow
  socket gets fewer, larger frames; reasoning steps as ``reasoning`` frames, never merged
  with answer steps), then ``done`` or the reply's ``error`` once the end is visible.

Under a :class:`~gateway.pace.DeltaPace` a delta that may not go yet is held: ``next_frame``
says there is nothing now and arms one timer that calls the writer's ``wake`` when it may
go; the steps arriving meanwhile merge into it and do not wake the writer. Without a pace
(the default) nothing of this runs.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol
from .pace import DeltaPace
from .replies import ReplyLog

Wake = Callable[[], None]


@dataclass(eq=False, slots=True)
class Cursor:
    """A viewer's place in one reply it follows: the log, the seq sent up to (the log reads
    it for backpressure; only the writer moves it), whether ``start`` went out, and the
    reply's constant delta- and reasoning-frame heads."""

    log: ReplyLog
    seq: int = 0
    resumed: bool = False
    started: bool = False
    prefix: str = ""
    reasoning_prefix: str = ""  # made at the reply's first reasoning frame


@dataclass(eq=False, slots=True)
class Lanes:
    """The frames one socket has queued, and the choice of the next one.

    Contract: ``push``, ``push_ordered`` and ``follow`` queue (False once closed, or for a
    reply already followed); :meth:`next_frame` takes the next frame in lane order (the
    urgent lane first), or returns None when nothing may go now, and the caller then waits
    for a wake: a followed reply's step or end, the pace's timer, or a frame pushed.
    :meth:`close` lets go of every reply and drops both lanes; nothing is queued after it.
    Only one task (the socket's writer) calls ``next_frame``. ``urgent`` and ``ordered``
    are made at their first frame and dropped (None) once drained, so an idle socket holds
    no deque blocks (docs/performance.md); the writer reads them, only these methods write
    them. Nothing here holds the socket or its connection: the wake is handed in."""

    max_merge_chars: int  # the send policy's merge size, read once per delta
    pace: DeltaPace | None = None  # the client's delta pace; None: every step as it comes
    urgent: deque[str] | None = None
    ordered: deque[str | Cursor] | None = None
    closed: bool = False
    _pace_timer: asyncio.TimerHandle | None = None  # set while a paced delta waits

    def push(self, frame: str) -> bool:
        """Queue a frame that needs no order relative to replies; False once closed."""
        if self.closed:
            return False
        if self.urgent is None:
            self.urgent = deque()
        self.urgent.append(frame)
        return True

    def push_ordered(self, frame: str) -> bool:
        """Queue a frame in conversation order; False once closed."""
        if self.closed:
            return False
        self._ordered_lane().append(frame)
        return True

    def follow(self, reply: ReplyLog, after: int, resumed: bool, wake: Wake) -> bool:
        """Queue ``reply`` from step ``after``, ``wake`` called at its steps and end; False
        once closed or if it is followed already."""
        if self.closed or self.follows(reply.message_id):
            return False
        cursor = Cursor(reply, after, resumed, prefix=protocol.delta_prefix(reply.message_id))
        self._ordered_lane().append(cursor)
        if self.pace is None:
            reply.attach(cursor, wake)
        else:
            reply.attach(cursor, functools.partial(self._paced_step, reply, wake))
        return True

    def _ordered_lane(self) -> deque[str | Cursor]:
        if self.ordered is None:
            self.ordered = deque()
        return self.ordered

    def follows(self, message_id: str) -> bool:
        return any(
            isinstance(item, Cursor) and item.log.message_id == message_id
            for item in self.ordered or ()
        )

    def bytes_behind(self) -> int:
        return sum(
            item.log.bytes_behind(item.seq)
            for item in self.ordered or ()
            if isinstance(item, Cursor)
        )

    def close(self) -> None:
        """Let go of every reply followed and drop both lanes; nothing is queued after."""
        self.closed = True
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None
        for item in self.ordered or ():
            if isinstance(item, Cursor):
                item.log.detach(item)
        self.ordered = None
        self.urgent = None

    # ---------------------------------------------------------------- the choice

    def next_frame(self, wake: Wake) -> tuple[str, int] | None:
        """The next frame to send and how many steps it merged beyond one; None: nothing
        yet (under a pace, a held delta's timer will call ``wake``)."""
        urgent = self.urgent
        if urgent:
            frame = urgent.popleft()
            if not urgent:
                self.urgent = None
            return frame, 0
        ordered = self.ordered
        while ordered:
            item = ordered[0]
            if isinstance(item, str):
                ordered.popleft()
                if not ordered:
                    self.ordered = None
                return item, 0
            reply = item.log
            if not item.started:
                item.started = True
                return protocol.start_frame(reply, resumed=item.resumed), 0
            pace = self.pace
            if (
                pace is not None
                and item.seq < reply.watermark
                and self._paced_wait(pace, reply, wake)
            ):
                return None
            text, seq, reasoning = reply.read(item.seq, self.max_merge_chars)
            if text:
                merged = seq - item.seq - 1
                item.seq = seq
                reply.record_frame(merged)
                if pace is not None:
                    self._paced_sent(pace, reply, seq)
                if reasoning:
                    return self._reasoning_frame(item, seq, text), merged
                return protocol.delta_frame(item.prefix, seq, text), merged
            if not reply.end_visible:
                return None
            ordered.popleft()
            if not ordered:
                self.ordered = None
            reply.detach(item)
            return protocol.end_frame(reply), 0
        return None

    @staticmethod
    def _reasoning_frame(cursor: Cursor, seq: int, text: str) -> str:
        if not cursor.reasoning_prefix:
            cursor.reasoning_prefix = protocol.reasoning_prefix(cursor.log.message_id)
        return protocol.reasoning_frame(cursor.reasoning_prefix, seq, text)

    # ---------------------------------------------------------------- the pace

    def _paced_step(self, reply: ReplyLog, wake: Wake) -> None:
        """A step (or the end) of ``reply`` under a pace: while a delta waits for its time,
        the step merges into it and the writer sleeps on; the end wakes it at once."""
        if self._pace_timer is None or reply.end_visible:
            wake()

    def _pace_over(self, wake: Wake) -> None:
        self._pace_timer = None
        wake()

    def _paced_wait(self, pace: DeltaPace, reply: ReplyLog, wake: Wake) -> bool:
        """True if the next delta of ``reply`` must wait for the pace (a timer then calls
        ``wake`` when it may go)."""
        wait = pace.wait(time.monotonic(), reply.end_visible)
        if not wait:
            return False
        if self._pace_timer is None:
            loop = asyncio.get_running_loop()
            self._pace_timer = loop.call_later(wait, self._pace_over, wake)
        return True

    def _paced_sent(self, pace: DeltaPace, reply: ReplyLog, seq: int) -> None:
        pace.sent(time.monotonic(), seq >= reply.watermark)
        if self._pace_timer is not None:  # the end let the delta go early
            self._pace_timer.cancel()
            self._pace_timer = None
