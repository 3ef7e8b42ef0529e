"""A viewer: one WebSocket, its lanes, and its one writer task.

Once a connection is registered, nothing but its writer task sends data frames on the
socket (before that, the session alone has it: a ``pong`` while signing in, then
``connected``). Control frames, the heartbeat's pings and the pongs answering the client's,
go out whole beside them, as aiohttp's own heartbeat and autoping send theirs. The writer
sends what :class:`~gateway.lanes.Lanes` chooses (the urgent lane, then the ordered lane with
a :class:`~gateway.lanes.Cursor` per followed reply, merged deltas, the delta pace): this
module is the I/O around that choice, the task, the socket, its deadlines and its close.

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
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from .errors import GatewayError, SlowConsumer
from .lanes import Lanes
from .pace import DeltaPace
from .replies import ReplyLog
from .send_policy import SendPolicy
from .websocket import socket_transport

log = structlog.get_logger("gateway.connection")

_pings: set[asyncio.Task[None]] = set()  # pings on their way (a task needs a reference)


@dataclass(eq=False, slots=True, repr=False)
class Connection:
    """One authenticated chat socket and its writer.

    Contract: frames are queued (``send``, ``send_ordered``, ``follow``) from any task into
    its :class:`~gateway.lanes.Lanes` and sent by one writer task in the order they choose
    (with a ``pace``, a delta no sooner than it allows, urgent frames regardless); nothing
    is queued once it is closing. The writer runs only while something is queued. Each send
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
    lanes: Lanes = field(init=False)  # what is queued, and which frame goes next
    # The writer waits on a future made when it has nothing to send: an idle socket holds
    # no Event and its own waiter deque (docs/performance.md).
    _waiter: asyncio.Future[None] | None = None
    close_code: int | None = None
    slow: bool = False  # closed because it could not keep up
    sending_since: float = 0.0  # loop time a send started; 0.0: not sending
    writer: asyncio.Task[None] | None = None
    # The client's delta pace (``frame_interval_ms``); None: none, every step as it comes.
    pace: DeltaPace | None = None

    def __post_init__(self) -> None:
        self.lanes = Lanes(self.policy.max_merge_chars, self.pace)

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
        elif self.writer is None and not self.lanes.closed:
            # An idle socket has no writer task (docs/performance.md): the first frame
            # starts one, and it ends when both lanes are empty again.
            self.writer = asyncio.get_running_loop().create_task(
                self.run_writer(), name="ws writer"
            )

    def send(self, frame: str) -> None:
        """Queue a frame that needs no order relative to replies."""
        if self.lanes.push(frame):
            self.wake()

    def send_ordered(self, frame: str) -> None:
        if self.lanes.push_ordered(frame):
            self.wake()

    def follow(self, reply: ReplyLog, after: int = 0, *, resumed: bool = False) -> bool:
        """Stream ``reply`` from step ``after``; False if this socket already follows it."""
        return self.lanes.follow(reply, after, resumed, self.wake)

    def bytes_behind(self) -> int:
        return self.lanes.bytes_behind()

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
        lanes = self.lanes
        next_frame, wake = lanes.next_frame, self.wake
        while True:
            item = next_frame(wake)
            if item is None:
                if lanes.closed or (lanes.urgent is None and lanes.ordered is None):
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
        self.lanes.close()
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
