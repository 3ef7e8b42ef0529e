"""A viewer: one WebSocket, its two outbound lanes, its cursors, and its one writer task.

Once a connection is registered, nothing but its writer task sends data frames on the
socket (before that, the session alone has it: a ``pong`` while signing in, then
``connected``). Control frames, the heartbeat's pings and the pongs answering the client's,
go out whole beside them, as aiohttp's own heartbeat and autoping send theirs. The writer is
fed by two lanes:

* ``urgent``: frames that need no order relative to a reply (``pong``, ``error`` about a
  client frame, ``broadcast``, ``token_expiring``); sent as soon as the socket can take them;
* ``ordered``: frames and :class:`Cursor`\\ s in conversation order (``user_message``,
  ``history_cleared``, a reply). A cursor at the head of the lane produces ``start``, then,
  each time the socket can take more, *all* text between the cursor and the reply log's
  watermark (its head; with Redis, what is in Redis) as one ``delta`` (so a slow socket gets
  fewer, larger frames; reasoning steps as ``reasoning`` frames, never merged with answer
  steps), then ``done`` or the reply's ``error`` once the end is visible.

A client may ask for at most one delta frame per ``frame_interval_ms`` (the chat socket's
URL; the page does, at its redraw cadence): the connection then has a
:class:`~gateway.pace.DeltaPace`, and a delta that may not go yet waits on a timer while the
steps arriving meanwhile are merged into it. The writer is not woken by those steps, and
frames of the urgent lane still go at once. Without it (the default) nothing of this runs.

Backpressure: every send has a deadline, ``limits.slow_consumer_timeout_s``. aiohttp's
writer blocks in ``drain`` once the transport's buffer is full, so a send that misses its
deadline means the peer stopped reading with a full buffer: the connection is closed with
1013 ``slow consumer`` (the client resumes). The deadline costs the send two attribute
writes: one watchdog per app (:func:`gateway.heartbeat.watch_sends`) sweeps the
sockets and cancels a writer stuck past it, instead of a timeout context per frame.
The bytes held for a viewer are that buffer, bounded by the send policy's ``writer_limit``
(:mod:`gateway.send_policy`), and its cursor, a number: reply text is never copied per viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from . import protocol
from .errors import GatewayError, SlowConsumer
from .pace import DeltaPace
from .replies import ReplyLog
from .send_policy import SendPolicy
from .websocket import socket_transport

log = structlog.get_logger("gateway.connection")

_pings: set[asyncio.Task[None]] = set()  # pings on their way (a task needs a reference)


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


@dataclass(eq=False, slots=True, repr=False)
class Connection:
    """One authenticated chat socket and its writer.

    Contract: frames are queued (``send``, ``send_ordered``, ``follow``) from any task and
    sent by one writer task, in lane order (with a ``pace``, a delta no sooner than it
    allows, urgent frames regardless); nothing is queued once it is closing. Each send
    has the send policy's deadline: the watchdog calls :meth:`missed_send_deadline` and the
    writer closes with 1013. Only its own methods write its fields, except ``user``,
    ``public_user`` and ``admin`` on a re-authentication (the session and the registry)."""

    ws: web.WebSocketResponse
    connection_id: str
    user: str
    assistant: str
    session_type: str
    conversation_id: str
    instance: str
    policy: SendPolicy
    max_merge_chars: int = field(init=False)  # the policy's, read once per frame
    admin: bool = False
    public_user: str = ""  # what others see of ``user`` (Identity.shown); empty: ``user``
    address: str | None = None  # an anonymous caller's client address; None: not anonymous
    created_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    # The heartbeat (gateway.heartbeat.keep_alive), in time.monotonic(): when a frame (a pong too)
    # last came in, and when the ping now unanswered went out (0.0: none).
    heard_at: float = field(default_factory=time.monotonic)
    pinged_at: float = 0.0
    frames_sent: int = 0
    frames_merged: int = 0
    # The lanes are created at the first frame and dropped once drained, and the writer
    # waits on a future made when it has nothing to send: an idle socket holds neither
    # deque blocks nor an Event and its own waiter deque (docs/performance.md).
    _urgent: deque[str] | None = None
    _ordered: deque[str | Cursor] | None = None
    _waiter: asyncio.Future[None] | None = None
    _closing: bool = False
    close_code: int | None = None
    slow: bool = False  # closed because it could not keep up
    sending_since: float = 0.0  # loop time a send started; 0.0: not sending
    writer: asyncio.Task[None] | None = None
    # The client's delta pace (``frame_interval_ms``); None: none, every step as it comes.
    pace: DeltaPace | None = None
    _pace_timer: asyncio.TimerHandle | None = None  # set while a paced delta waits

    def __post_init__(self) -> None:
        self.max_merge_chars = self.policy.max_merge_chars

    def __repr__(self) -> str:
        # What a log or a traceback may show: never ``user`` (an anonymous caller's private
        # id) nor ``address``.
        return f"<Connection {self.connection_id} {self.session_type} {self.conversation_id}>"

    # ---------------------------------------------------------------- feeding

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self.writer is None and not self._closing:
            # An idle socket has no writer task (docs/performance.md): the first frame
            # starts one, and it ends when both lanes are empty again.
            self.writer = asyncio.get_running_loop().create_task(
                self.run_writer(), name="ws writer"
            )

    def send(self, frame: str) -> None:
        """Queue a frame that needs no order relative to replies."""
        if not self._closing:
            if self._urgent is None:
                self._urgent = deque()
            self._urgent.append(frame)
            self.wake()

    def send_ordered(self, frame: str) -> None:
        if not self._closing:
            if self._ordered is None:
                self._ordered = deque()
            self._ordered.append(frame)
            self.wake()

    def follow(self, reply: ReplyLog, after: int = 0, *, resumed: bool = False) -> bool:
        """Stream ``reply`` from step ``after``; False if this socket already follows it."""
        if self._closing or self.follows(reply.message_id):
            return False
        cursor = Cursor(reply, after, resumed, prefix=protocol.delta_prefix(reply.message_id))
        if self._ordered is None:
            self._ordered = deque()
        self._ordered.append(cursor)
        if self.pace is None:
            reply.attach(cursor, self.wake)
        else:
            reply.attach(cursor, functools.partial(self._paced_step, reply))
        return True

    def _paced_step(self, reply: ReplyLog) -> None:
        """A step (or the end) of ``reply`` under a pace: while a delta waits for its time,
        the step merges into it and the writer sleeps on; the end wakes it at once."""
        if self._pace_timer is None or reply.end_visible:
            self.wake()

    def _pace_over(self) -> None:
        self._pace_timer = None
        self.wake()

    def _paced_wait(self, pace: DeltaPace, reply: ReplyLog) -> bool:
        """True if the next delta of ``reply`` must wait for the pace (a timer then wakes
        the writer when it may go)."""
        wait = pace.wait(time.monotonic(), reply.end_visible)
        if not wait:
            return False
        if self._pace_timer is None:
            loop = asyncio.get_running_loop()
            self._pace_timer = loop.call_later(wait, self._pace_over)
        return True

    def _paced_sent(self, pace: DeltaPace, reply: ReplyLog, seq: int) -> None:
        pace.sent(time.monotonic(), seq >= reply.watermark)
        if self._pace_timer is not None:  # the end let the delta go early
            self._pace_timer.cancel()
            self._pace_timer = None

    def follows(self, message_id: str) -> bool:
        return any(
            isinstance(item, Cursor) and item.log.message_id == message_id
            for item in self._ordered or ()
        )

    def bytes_behind(self) -> int:
        return sum(
            item.log.bytes_behind(item.seq)
            for item in self._ordered or ()
            if isinstance(item, Cursor)
        )

    def info(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "user": self.public_user or self.user,
            "assistant": self.assistant,
            "session_type": self.session_type,
            "conversation_id": self.conversation_id,
            "created_at": self.created_at,
            "last_active": self.last_active,
            "instance": self.instance,
            "bytes_behind": self.bytes_behind(),
            "frames_sent": self.frames_sent,
            "frames_merged": self.frames_merged,
        }

    # ---------------------------------------------------------------- the writer

    def _next_frame(self) -> tuple[str, int] | None:
        """The next frame to send and how many steps it merged beyond one; None: nothing yet."""
        urgent = self._urgent
        if urgent:
            frame = urgent.popleft()
            if not urgent:
                self._urgent = None
            return frame, 0
        ordered = self._ordered
        while ordered:
            item = ordered[0]
            if isinstance(item, str):
                ordered.popleft()
                if not ordered:
                    self._ordered = None
                return item, 0
            reply = item.log
            if not item.started:
                item.started = True
                return protocol.start_frame(reply, resumed=item.resumed), 0
            pace = self.pace
            if pace is not None and item.seq < reply.watermark and self._paced_wait(pace, reply):
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
                self._ordered = None
            reply.detach(item)
            return protocol.end_frame(reply), 0
        return None

    @staticmethod
    def _reasoning_frame(cursor: Cursor, seq: int, text: str) -> str:
        if not cursor.reasoning_prefix:
            cursor.reasoning_prefix = protocol.reasoning_prefix(cursor.log.message_id)
        return protocol.reasoning_frame(cursor.reasoning_prefix, seq, text)

    async def run_writer(self) -> None:
        """Send until both lanes are empty (a reply being followed keeps it waiting) or the
        socket closes; close with 1013 when the watchdog says a send missed its deadline."""
        try:
            await self._write()
        finally:
            if self.writer is asyncio.current_task():
                self.writer = None

    async def _write(self) -> None:
        ws = self.ws
        loop = asyncio.get_running_loop()
        while True:
            item = self._next_frame()
            if item is None:
                if self._closing or (self._urgent is None and self._ordered is None):
                    return  # nothing queued: the next frame's ``wake`` starts a writer again
                # A cursor waits for its reply's next step. Nothing runs between the look
                # above and this wait: a step from now on resolves the future (``wake``).
                self._waiter = loop.create_future()
                await self._waiter
                continue
            # Only the UTF-8 payload is held while the send waits for the peer: the frame's
            # str (up to 4 bytes a character) and the merged text are let go first.
            try:
                payload, merged = item[0].encode("utf-8"), item[1]
            except UnicodeEncodeError:  # a lone surrogate got past the input checks: a bug
                log.error("a frame held a lone surrogate; sent with '?' in its place")
                payload, merged = item[0].encode("utf-8", "replace"), item[1]
            item = None
            self.sending_since = loop.time()
            try:
                await ws.send_frame(payload, WSMsgType.TEXT)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self.slow or task is None:
                    raise
                task.uncancel()  # the watchdog's cancel, not a shutdown
                await self.close_with(SlowConsumer())
                return
            except (ConnectionError, RuntimeError):
                return  # the socket is gone; the handler's receive loop sees it too
            finally:
                self.sending_since = 0.0
                payload = b""  # not held while the writer waits for the next step
            self.frames_sent += 1
            self.frames_merged += merged

    def ping(self, now: float) -> None:
        """Send a WebSocket ping. A control frame goes out whole, beside the writer's
        frames (as aiohttp's own heartbeat sends it), from a task of its own: a socket
        that is not being read must not hold up the sweep."""
        self.pinged_at = now
        task = asyncio.get_running_loop().create_task(self._ping(), name="ws ping")
        _pings.add(task)
        task.add_done_callback(_pings.discard)

    async def _ping(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.ping()

    def heard(self) -> None:
        """A frame came in (a pong too): the peer is active and alive."""
        self.last_active = time.time()
        self.heard_at = time.monotonic()

    def count_frame_sent(self) -> None:
        """A frame went out before the writer existed (the session's ``connected``)."""
        self.frames_sent += 1

    def answered(self) -> None:
        """The peer was heard since the last ping: that ping needs no answer any more."""
        self.pinged_at = 0.0

    def missed_send_deadline(self) -> None:
        """A send has waited past the policy's deadline (the send watchdog saw it): cancel
        the writer, which closes the socket with 1013 ``slow consumer``."""
        if not self.slow:
            self.slow = True
            if self.writer is not None:
                self.writer.cancel()

    def drop(self) -> None:
        """Drop a peer that answered no ping: its transport is closed with no close frame
        (it is not reading), as aiohttp's heartbeat does; the receive loop then ends."""
        self.close_code = WSCloseCode.ABNORMAL_CLOSURE
        self.detach_all()
        transport = self._transport()
        if transport is not None:
            transport.close()

    def _transport(self) -> asyncio.Transport | None:
        return socket_transport(self.ws)

    def detach_all(self) -> None:
        """Let go of every reply this socket follows (the socket is going away)."""
        self._closing = True
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None
        for item in self._ordered or ():
            if isinstance(item, Cursor):
                item.log.detach(item)
        self._ordered = None
        self._urgent = None
        self.wake()

    async def close_with(
        self, error: GatewayError | None = None, *, code: int = 1000, reason: str = ""
    ) -> None:
        """Close with ``error``'s close code and reason (or the given ones), never hanging."""
        if error is not None and error.close_code is not None:
            code, reason = error.close_code, error.reason
        self.close_code = code
        self.detach_all()
        transport = self._transport()
        try:
            async with asyncio.timeout(self.policy.close_timeout_s):
                await self.ws.close(code=code, message=reason.encode())
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task is really being cancelled
            # aiohttp's drain waiter was cancelled by the send that missed its deadline, so
            # the close fails at once: the close frame is queued behind the unread data.
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        if transport is not None:
            # The close frame is queued behind whatever the peer has not read. A peer that
            # reads again within the grace (or its send deadline, if longer) gets it; one
            # that never does is dropped.
            grace = self.policy.close_grace_s
            asyncio.get_running_loop().call_later(grace, transport.abort)
