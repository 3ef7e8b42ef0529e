"""Waiting turns: a claimed turn's wait for its place under ``upstream.max_concurrent``.

The line itself, its order and its timeout are :mod:`gateway.upstream_queue`'s; this is
the turn's side of it: the wait runs in a task of the supervisor (never in the caller, whose
socket keeps reading frames), the sender hears ``queued`` frames, and ``cancel``, an
interrupt or a reset takes the turn out of the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import protocol
from .config import Config
from .connection import Connection
from .conversations import Conversation
from .errors import GatewayError
from .supervisor import ReplySupervisor
from .upstream_queue import Slot, UpstreamQueue


@dataclass(frozen=True, slots=True)
class _ClaimedTurn:
    """A turn whose claim is taken and whose reply has not started: its sender, its
    conversation, the reply's id, the client id its frames answer, and how it starts."""

    conn: Connection
    conv: Conversation
    message_id: str
    reply_to: str
    start: Callable[..., Awaitable[None]]


@dataclass(eq=False, slots=True)
class WaitingTurns:
    """The claimed turns of this instance that wait for their place upstream.

    Contract: :meth:`start_or_wait` starts a claimed turn at once when there is no cap, or
    else spawns its wait and returns; a waiting turn either starts with its place (the
    reply task then holds the place and the claim) or ends without a reply, its place and
    its claim freed, nothing stored, the sender told any
    :class:`~gateway.errors.GatewayError` (``upstream_throttled`` past
    ``upstream.queue_timeout_s``). :meth:`leave` takes a turn out of the line.
    """

    config: Config
    upstream_queue: UpstreamQueue
    supervisor: ReplySupervisor
    _waiting: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)

    async def start_or_wait(
        self,
        conn: Connection,
        conv: Conversation,
        message_id: str,
        reply_to: str,
        start: Callable[..., Awaitable[None]],
    ) -> None:
        """Start a claimed turn now (``start(slot=None)``), or, with
        ``upstream.max_concurrent``, in a task once it has a place: the same line for
        ``message``, ``regenerate`` and ``edit``."""
        if self.config.upstream.max_concurrent > 0:
            turn = _ClaimedTurn(conn, conv, message_id, reply_to, start)
            self._waiting[message_id] = self.supervisor.spawn(
                self._wait_then_start(turn), "waiting upstream"
            )
            return
        await start(slot=None)

    def leave(self, message_id: str) -> bool:
        """Take the reply ``message_id`` out of the line if it waits there (its wait is
        cancelled and frees its claim); False: it does not wait here."""
        waiting = self._waiting.pop(message_id, None)
        if waiting is None:
            return False
        waiting.cancel()
        return True

    async def _wait_then_start(self, turn: _ClaimedTurn) -> None:
        """Wait for a place under ``upstream.max_concurrent`` (the sender hears ``queued``
        frames for ``reply_to``), then ``start(slot=...)`` the turn; past
        ``upstream.queue_timeout_s``, ``error`` ``upstream_throttled``. Cancelled
        (``cancel``, an interrupt, a reset): it leaves the line. The claim is freed whenever
        no reply starts; nothing is stored before the turn starts."""

        def tell(position: int) -> None:
            turn.conn.send(protocol.queued_frame(turn.reply_to, position))

        slot: Slot | None = None
        try:
            slot = await self.upstream_queue.acquire(tell)
            self._waiting.pop(turn.message_id, None)
            await turn.start(slot=slot)
        except BaseException as exc:
            self._waiting.pop(turn.message_id, None)
            if not self.supervisor.runs(turn.message_id):
                if slot is not None:
                    await slot.release()
                self.supervisor.release_later(turn.conv, turn.message_id)
            if isinstance(exc, GatewayError):
                turn.conn.send(protocol.error_frame(exc, reply_to=turn.reply_to))
            elif not isinstance(exc, asyncio.CancelledError):
                raise
