"""The reply log: one assistant reply's numbered steps, its state, and the viewers it wakes.

One producer (the task reading the upstream) appends steps; any number of viewers read
them through their own cursor (a ``seq``). Nothing is copied per viewer: a viewer asks
for the text between its cursor and the head (:meth:`ReplyLog.read`) and gets every
pending step merged into one piece, so a slow viewer gets fewer, larger frames.

Steps are answer text or a reasoning model's thinking (:class:`StepKind`), in one
numbering; ``text``/``content_length`` are the answer's and ``reasoning``/``reasoning_length``
the thinking's. The log keeps the steps' texts in a :class:`StepTexts` of its own (packed
UTF-8, kinds as the seqs where they change: :mod:`gateway.step_texts`) and holds the rest of
the reply's life: its state and end, its viewers, what they may be told, and backpressure.

Backpressure: the upstream client asks :meth:`ReplyLog.backpressure` before each read; it
says None unless every attached viewer is more than ``bound`` bytes behind the head, and
then gives what to await: the upstream read pauses until one of them catches up. A viewer's
position is its own :class:`Position` (``seq``): the log holds the viewers' positions and
reads them, so there is one number per viewer, kept by the viewer.

Only the log writes its fields: the producer calls :meth:`ReplyLog.append`,
:meth:`ReplyLog.mark_first_step` and :meth:`ReplyLog.finish`; the supervisor
:meth:`ReplyLog.watch`, :meth:`ReplyLog.mark_orphaned` and
:meth:`ReplyLog.mark_cut_at_shutdown`; viewers :meth:`ReplyLog.attach`,
:meth:`ReplyLog.record_frame` and :meth:`ReplyLog.detach`.

States::

    RUNNING ──► COMPLETED   (finish_reason stop | length)
        ├─────► CANCELLED   (cancelled | interrupted | orphaned | cut at shutdown)
        └─────► FAILED      (an error after start; ``error`` holds it)
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from .errors import GatewayError
from .step_texts import ANSWER as ANSWER
from .step_texts import PACK_BYTES as PACK_BYTES
from .step_texts import REASONING as REASONING
from .step_texts import StepKind as StepKind
from .step_texts import StepTexts
from .usage import TokenCounts


class ReplyState(enum.StrEnum):
    """Where a reply is: running, or how it ended (a log leaves RUNNING once, never back)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Position(Protocol):
    """A viewer's place in a log: the seq of the last step it has sent (0: none). The viewer
    moves it; the log reads it for backpressure."""

    seq: int


@dataclass(eq=False, slots=True)
class ReplyLog:
    """One reply's numbered steps (1, 2, ...), its state and its viewers.

    Contract: one producer appends non-empty steps (answer or reasoning, one numbering)
    while RUNNING, then finishes it once (a second finish is ignored); ``read`` returns
    steps of one kind only; ``read``/``text_between``/``text`` never copy per viewer. Viewers
    attach a :class:`Position` and a wake callback, are woken at every step and at the end,
    and report each frame sent (:meth:`record_frame`) after moving their position. The
    first viewer to attach calls ``on_adopted``; the last to detach from a running log calls
    ``on_orphaned``. Fields are read by anyone and written only by the log's methods.
    """

    message_id: str
    conversation_id: str
    owner: str
    reply_to: str
    model: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    state: ReplyState = ReplyState.RUNNING
    finish_reason: str | None = None
    usage: TokenCounts = field(default_factory=TokenCounts)  # done.usage (section 12)
    error: GatewayError | None = None
    upstream_request_id: str | None = None
    orphaned: bool = False  # stopped because no viewer came back within the grace
    cut_at_shutdown: bool = False  # stopped when the shutdown grace ran out
    continued: int = 0  # continuations after a mid-stream upstream failure (done.continued)
    first_step_at: float | None = None
    frames_sent: int = 0  # delta frames, over all viewers
    frames_merged: int = 0  # steps that rode in an earlier step's frame
    remote: bool = False  # a mirror of a reply another instance produces (stores/reply_mirrors)
    instance: str = ""  # the instance that produces it
    # What viewers may be told: steps up to ``watermark`` and, once ``end_visible``, the end.
    # At once (the head) in memory; in Redis once the publisher has them in the reply's
    # stream (:meth:`release`): durable before delivered.
    watermark: int = 0
    end_visible: bool = False
    # The end waits for the reply's settling (history stored, conversation freed) while held,
    # so a viewer told ``done`` may send the next message at once, on any instance.
    end_held: bool = False
    _texts: StepTexts = field(default_factory=StepTexts)  # the steps' texts and kinds
    _viewers: dict[Position, Callable[[], None]] = field(default_factory=dict)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)
    on_orphaned: Callable[[ReplyLog], None] | None = None
    on_adopted: Callable[[ReplyLog], None] | None = None
    on_change: Callable[[], None] | None = None  # a step or the end (the Redis publisher)
    # (set: viewers wait for :meth:`release` instead of being woken by the step or the end)

    # ---------------------------------------------------------------- reading

    @property
    def head(self) -> int:
        """The seq of the last step (0: no text yet)."""
        return self._texts.head

    @property
    def ended(self) -> bool:
        return self.state is not ReplyState.RUNNING

    @property
    def content_length(self) -> int:
        """The answer's length in Unicode code points."""
        return self._texts.answer_length

    @property
    def reasoning_length(self) -> int:
        """The reasoning's length in Unicode code points."""
        return self._texts.reasoning_length

    @property
    def text(self) -> str:
        """The answer."""
        return self._texts.answer

    @property
    def reasoning(self) -> str:
        """The reasoning (empty: none)."""
        return self._texts.reasoning

    def kind(self, seq: int) -> StepKind:
        """The kind of step ``seq`` (1 … head)."""
        return self._texts.kind(seq)

    @property
    def size(self) -> int:
        """About the bytes the log holds: its UTF-8 text and 16 bytes a step."""
        return self._texts.size

    def bytes_behind(self, seq: int) -> int:
        """The UTF-8 bytes of the steps after ``seq``."""
        return self._texts.bytes_behind(seq)

    def read(self, after: int, max_chars: int) -> tuple[str, int, StepKind]:
        """Text of the steps after ``after`` up to the watermark, whole steps of one kind up
        to about ``max_chars``; the new seq; their kind."""
        return self._texts.read(after, self.watermark, max_chars)

    def text_between(self, after: int, upto: int) -> str:
        """The text of the steps after ``after`` up to and including ``upto``, joined,
        whatever their kinds."""
        return self._texts.text_between(after, upto)

    def sizes(self, after: int, upto: int) -> list[int]:
        """The length in code points of each step after ``after`` up to ``upto``."""
        return self._texts.sizes(after, upto)

    @property
    def only_answers(self) -> bool:
        """No step so far is reasoning."""
        return self._texts.only_answers

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # ---------------------------------------------------------------- viewers

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def attach(self, viewer: Position, wake: Callable[[], None]) -> None:
        """Follow the log from ``viewer.seq``; ``wake`` is called at every step and the end."""
        adopted = not self._viewers
        self._viewers[viewer] = wake
        if adopted and self.on_adopted is not None:
            self.on_adopted(self)
        wake()

    def detach(self, viewer: Position) -> None:
        if self._viewers.pop(viewer, None) is None:
            return
        self._progress.set()
        if not self._viewers and not self.ended and self.on_orphaned is not None:
            self.on_orphaned(self)

    def record_frame(self, merged: int) -> None:
        """A viewer has sent one delta frame, holding ``merged`` steps beyond one, and moved
        its position past them: count it, and let a paused producer look again."""
        self.frames_sent += 1
        self.frames_merged += merged
        self._progress.set()

    def watch(
        self,
        *,
        on_orphaned: Callable[[ReplyLog], None] | None = None,
        on_adopted: Callable[[ReplyLog], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """Set the callbacks given: the last viewer left a running log (``on_orphaned``), a
        first viewer came (``on_adopted``), a step or the end (``on_change``)."""
        if on_orphaned is not None:
            self.on_orphaned = on_orphaned
        if on_adopted is not None:
            self.on_adopted = on_adopted
        if on_change is not None:
            self.on_change = on_change

    def mark_orphaned(self) -> None:
        """It is being stopped because no viewer came back within the grace."""
        self.orphaned = True

    def mark_cut_at_shutdown(self) -> None:
        """It is being stopped because the shutdown grace ran out."""
        self.cut_at_shutdown = True

    def mark_produced_by(self, instance: str) -> None:
        """The instance that produces it (the Redis store names it for the others)."""
        self.instance = instance

    def mark_first_step(self, now: float) -> None:
        """The upstream's first step arrived at ``now`` (epoch seconds)."""
        self.first_step_at = now

    # ---------------------------------------------------------------- producing

    def append(self, text: str, kind: StepKind = ANSWER) -> int:
        """Add one step (non-empty text of ``kind``); return its seq and wake the viewers."""
        seq = self._texts.append(text, kind)
        if self.on_change is None:
            self.watermark = seq
            for wake in self._viewers.values():
                wake()
        else:
            self.on_change()
        return seq

    def backpressure(self, bound: int) -> Awaitable[None] | None:
        """None while some viewer is within ``bound`` bytes of the head (or none watches);
        otherwise what to await until one is. The common answer costs no coroutine, and
        no look at the cursors while the whole reply is within the bound."""
        if self._texts.bytes_behind(0) <= bound or not self._all_behind(bound):
            return None
        return self.wait_for_backpressure(bound)

    async def wait_for_backpressure(self, bound: int) -> None:
        """Pause while every viewer is more than ``bound`` bytes behind (none: no pause)."""
        while self._all_behind(bound):
            self._progress.clear()
            await self._progress.wait()

    def _all_behind(self, bound: int) -> bool:
        behind = self._texts.bytes_behind
        return bool(self._viewers) and all(behind(viewer.seq) > bound for viewer in self._viewers)

    def mark_continued(self, times: int) -> None:
        """Continued ``times`` times on another upstream (section 13); before :meth:`finish`."""
        self.continued = times

    def finish(
        self,
        state: ReplyState,
        finish_reason: str,
        *,
        error: GatewayError | None = None,
        usage: TokenCounts | None = None,
        request_id: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """End it (once; later calls are ignored, but a ``request_id`` is kept) and wake
        every viewer and a paused producer. ``finished_at``: now unless given (a mirror
        takes its producer's)."""
        if request_id is not None:
            self.upstream_request_id = request_id
        if self.ended:
            return
        self.state = state
        self.finish_reason = finish_reason
        self.error = error
        if usage is not None:
            self.usage = usage
        self.finished_at = time.time() if finished_at is None else finished_at
        self._ended.set()
        self._progress.set()
        if self.on_change is not None:
            self.on_change()  # the publisher: steps now, the end once it is not held
        elif not self.end_held:
            self.end_visible = True
            for wake in self._viewers.values():
                wake()

    def hold_end(self) -> None:
        """Keep the end from viewers (and from Redis) until :meth:`release_end`."""
        self.end_held = True

    def release_end(self) -> None:
        """The reply is settled: its end may be shown (written to Redis first, if there)."""
        if not self.end_held:
            return
        self.end_held = False
        if not self.ended:
            return
        if self.on_change is not None:
            self.on_change()
        else:
            self.end_visible = True
            for wake in self._viewers.values():
                wake()

    def release(self, seq: int, end: bool) -> None:
        """Steps up to ``seq``, and the end if ``end``, are durable: viewers may read them."""
        self.watermark = max(self.watermark, seq)
        self.end_visible = self.end_visible or end
        for wake in self._viewers.values():
            wake()
