"""The reply log: one assistant reply's numbered steps, its state, and the viewers it wakes.

One producer (the task reading the upstream) appends steps; any number of viewers read
them through their own cursor (a ``seq``). Nothing is copied per viewer: a viewer asks
for the text between its cursor and the head (:meth:`ReplyLog.read`) and gets every
pending step merged into one piece, so a slow viewer gets fewer, larger frames.

Steps are of two kinds, :class:`StepKind`: answer text and a reasoning model's thinking.
They share one numbering; a read never merges across kinds (it says which kind it
returns), ``text``/``content_length`` are the answer's and ``reasoning``/``reasoning_length``
the thinking's. Kinds are kept as the seqs where the kind changes (a reply thinks, then
answers: one number), so an answer-only reply stores nothing for them.

Storage: the newest steps are ``str``\\ s, as they came (a viewer that keeps up is sent the
step it was woken for, uncopied). Once they add up to :data:`PACK_BYTES` of UTF-8, all but
the newest are packed into one ``bytes`` chunk, and two arrays keep each step's end as a
UTF-8 byte offset and as a code-point offset. A long reply costs about its UTF-8 size plus
16 bytes a step, instead of a ``str`` object, its list slot and an ``int`` per step (a
step holding one emoji is stored four bytes a character by Python), and its memory is a few
large blocks, not one per step: a reply paused behind a stalled reader no longer leaves the
allocator a hole beside every step (docs/performance.md).

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
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .errors import GatewayError
from .usage import TokenCounts


class ReplyState(enum.StrEnum):
    """Where a reply is: running, or how it ended (a log leaves RUNNING once, never back)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepKind(enum.IntEnum):
    """What a step holds: answer text (false) or reasoning (true)."""

    ANSWER = 0
    REASONING = 1


# The members as module constants, for code that names one per step: an enum member
# looked up on its class is slow on Python 3.11 (docs/performance.md).
ANSWER, REASONING = StepKind.ANSWER, StepKind.REASONING
_KINDS = (ANSWER, REASONING)  # by value


class Position(Protocol):
    """A viewer's place in a log: the seq of the last step it has sent (0: none). The viewer
    moves it; the log reads it for backpressure."""

    seq: int


# The tail of newest steps is packed into one UTF-8 chunk once it holds this many bytes.
PACK_BYTES = 32 * 1024


def _valid(text: str) -> tuple[str, int]:
    """Non-ASCII text, lone surrogates (UTF-8 cannot carry them) replaced by U+FFFD, and
    its UTF-8 length.

    JSON can hold one (a ``\\ud83d`` escape without its pair); left in, it would fail the
    frame's encoding in every viewer's writer.
    """
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return text, len(text.encode("utf-8"))


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
    # Step seq=i+1 ends at UTF-8 byte _ends[i] and code point _char_ends[i]. Steps up to
    # _packed are in _chunks (chunk k ends at byte _chunk_ends[k]); the rest, the tail, are
    # _tail[j] for seq=_packed+j+1.
    _ends: array[int] = field(default_factory=lambda: array("q"))
    _char_ends: array[int] = field(default_factory=lambda: array("q"))
    _chunks: list[bytes] = field(default_factory=list)
    _chunk_ends: list[int] = field(default_factory=list)
    _packed: int = 0
    _tail: list[str] = field(default_factory=list)
    # Step kinds: the first step's is _first_kind, and it flips at every seq in _flips
    # (sorted); _kind is the newest step's.
    _first_kind: StepKind = StepKind.ANSWER
    _kind: StepKind = StepKind.ANSWER
    _flips: list[int] = field(default_factory=list)
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
        return len(self._ends)

    @property
    def ended(self) -> bool:
        return self.state is not ReplyState.RUNNING

    @property
    def content_length(self) -> int:
        """The answer's length in Unicode code points."""
        total = self._char_ends[-1] if self._char_ends else 0
        if self._flips or self._first_kind:
            return total - self.reasoning_length
        return total

    @property
    def reasoning_length(self) -> int:
        """The reasoning's length in Unicode code points."""
        char_ends = self._char_ends
        return sum(
            char_ends[end - 1] - (char_ends[after - 1] if after > 0 else 0)
            for after, end in self._runs(StepKind.REASONING)
        )

    @property
    def text(self) -> str:
        """The answer."""
        if self._flips or self._first_kind:
            return "".join(self._slice(a, e) for a, e in self._runs(StepKind.ANSWER))
        return self._slice(0, self.head)

    @property
    def reasoning(self) -> str:
        """The reasoning (empty: none)."""
        return "".join(self._slice(a, e) for a, e in self._runs(StepKind.REASONING))

    def kind(self, seq: int) -> StepKind:
        """The kind of step ``seq`` (1 … head)."""
        return _KINDS[self._first_kind ^ (bisect_right(self._flips, seq) & 1)]

    def _runs(self, kind: StepKind) -> Iterator[tuple[int, int]]:
        """The runs of consecutive steps of ``kind``, as (seq before the first, last seq)."""
        head = len(self._ends)
        if not head:
            return
        starts = [1, *self._flips]
        for i, start in enumerate(starts):
            if self._first_kind ^ (i & 1) == kind:
                yield start - 1, starts[i + 1] - 1 if i + 1 < len(starts) else head

    @property
    def size(self) -> int:
        """About the bytes the log holds: its UTF-8 text and 16 bytes a step."""
        return (self._ends[-1] if self._ends else 0) + 16 * len(self._ends)

    def bytes_behind(self, seq: int) -> int:
        if seq >= len(self._ends):
            return 0
        return self._ends[-1] - (self._ends[seq - 1] if seq > 0 else 0)

    def read(self, after: int, max_chars: int) -> tuple[str, int, StepKind]:
        """Text of the steps after ``after`` up to the watermark, whole steps of one kind up
        to about ``max_chars``; the new seq; their kind."""
        head = self.watermark
        if after >= head:
            return "", after, self._kind
        if after + 1 == head and after >= self._packed:  # a reader that keeps up
            return self._tail[after - self._packed], head, self._kind
        # Whole steps while fewer than max_chars are taken: up to the first step whose end
        # reaches max_chars beyond the cursor (at least one step).
        base = self._char_ends[after - 1] if after > 0 else 0
        end = min(head, bisect_left(self._char_ends, base + max_chars, after) + 1)
        flips = self._flips
        if not flips:
            return self._slice(after, end), end, self._kind
        # ... and no further than the last step of the first one's kind.
        run = bisect_right(flips, after + 1)
        if run < len(flips):
            end = min(end, flips[run] - 1)
        return self._slice(after, end), end, _KINDS[self._first_kind ^ (run & 1)]

    def text_between(self, after: int, upto: int) -> str:
        """The text of the steps after ``after`` up to and including ``upto``, joined,
        whatever their kinds."""
        return self._slice(after, upto)

    def sizes(self, after: int, upto: int) -> list[int]:
        """The length in code points of each step after ``after`` up to ``upto``."""
        char_ends = self._char_ends
        previous = char_ends[after - 1] if after > 0 else 0
        sizes = []
        for end in char_ends[after:upto]:
            sizes.append(end - previous)
            previous = end
        return sizes

    @property
    def only_answers(self) -> bool:
        """No step so far is reasoning."""
        return not self._flips and self._first_kind is StepKind.ANSWER

    def _slice(self, after: int, end: int) -> str:
        """The text of steps ``after``+1 … ``end`` as one string."""
        packed = self._packed
        if after >= packed:
            return "".join(self._tail[after - packed : end - packed])
        start = self._ends[after - 1] if after > 0 else 0
        stop = self._ends[min(end, packed) - 1]
        pieces: list[bytes] = []
        k = bisect_right(self._chunk_ends, start)
        while start < stop:
            chunk, chunk_end = self._chunks[k], self._chunk_ends[k]
            chunk_start = chunk_end - len(chunk)
            pieces.append(chunk[start - chunk_start : min(stop, chunk_end) - chunk_start])
            start, k = chunk_end, k + 1
        text = b"".join(pieces).decode("utf-8")
        if end <= packed:
            return text
        return text + "".join(self._tail[: end - packed])

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

    def append(self, text: str, kind: StepKind = StepKind.ANSWER) -> int:
        """Add one step (non-empty text of ``kind``); return its seq and wake the viewers."""
        if kind is not self._kind:
            self._switch(kind)
        if text.isascii():
            size = len(text)
        else:
            text, size = _valid(text)
        ends, char_ends = self._ends, self._char_ends
        end = (ends[-1] if ends else 0) + size
        ends.append(end)
        char_ends.append((char_ends[-1] if char_ends else 0) + len(text))
        self._tail.append(text)
        if end - (self._chunk_ends[-1] if self._chunk_ends else 0) >= PACK_BYTES:
            self._pack()  # the tail's UTF-8 reached PACK_BYTES
        seq = len(ends)
        if self.on_change is None:
            self.watermark = seq
            for wake in self._viewers.values():
                wake()
        else:
            self.on_change()
        return seq

    def _switch(self, kind: StepKind) -> None:
        """The next step is of ``kind``, unlike the newest one."""
        if self._ends:
            self._flips.append(len(self._ends) + 1)
        else:
            self._first_kind = kind
        self._kind = kind

    def _pack(self) -> None:
        """Pack every tail step but the newest into one UTF-8 chunk."""
        tail = self._tail
        if len(tail) < 2:
            return
        self._chunks.append("".join(tail[:-1]).encode("utf-8"))
        self._packed += len(tail) - 1
        self._chunk_ends.append(self._ends[self._packed - 1])
        self._tail = [tail[-1]]

    def backpressure(self, bound: int) -> Awaitable[None] | None:
        """None while some viewer is within ``bound`` bytes of the head (or none watches);
        otherwise what to await until one is. The common answer costs no coroutine, and
        no look at the cursors while the whole reply is within the bound."""
        ends = self._ends
        if not ends or ends[-1] <= bound or not self._all_behind(bound):
            return None
        return self.wait_for_backpressure(bound)

    async def wait_for_backpressure(self, bound: int) -> None:
        """Pause while every viewer is more than ``bound`` bytes behind (none: no pause)."""
        while self._all_behind(bound):
            self._progress.clear()
            await self._progress.wait()

    def _all_behind(self, bound: int) -> bool:
        return bool(self._viewers) and all(
            self.bytes_behind(viewer.seq) > bound for viewer in self._viewers
        )

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
