"""The texts of one reply's numbered steps, packed, with their kinds.

Steps are of two kinds, :class:`StepKind`: answer text and a reasoning model's thinking.
They share one numbering; a read never merges across kinds (it says which kind it
returns). Kinds are kept as the seqs where the kind changes (a reply thinks, then
answers: one number), so an answer-only reply stores nothing for them.

Storage: the newest steps are ``str``\\ s, as they came (a reader that keeps up is given the
step it was woken for, uncopied). Once they add up to :data:`PACK_BYTES` of UTF-8, all but
the newest are packed into one ``bytes`` chunk, and two arrays keep each step's end as a
UTF-8 byte offset and as a code-point offset. A long reply costs about its UTF-8 size plus
16 bytes a step, instead of a ``str`` object, its list slot and an ``int`` per step (a
step holding one emoji is stored four bytes a character by Python), and its memory is a few
large blocks, not one per step: a reply paused behind a stalled reader no longer leaves the
allocator a hole beside every step (docs/performance.md).

Pure: no I/O, no waking; :class:`gateway.replies.ReplyLog` owns one and says who may read
what and when.
"""

from __future__ import annotations

import enum
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator


class StepKind(enum.IntEnum):
    """What a step holds: answer text (false) or reasoning (true)."""

    ANSWER = 0
    REASONING = 1


# The members as module constants, for code that names one per step: an enum member
# looked up on its class is slow on Python 3.11 (docs/performance.md).
ANSWER, REASONING = StepKind.ANSWER, StepKind.REASONING
_KINDS = (ANSWER, REASONING)  # by value

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


class StepTexts:
    """The texts of steps 1, 2, ... of one reply, each an answer or reasoning.

    Contract: :meth:`append` takes non-empty text and returns the new step's seq; a step
    never changes once appended, and reads give back exactly what was appended (a lone
    surrogate held as U+FFFD), whatever was packed. Seqs are 1 … :attr:`head`; a range
    ``(after, upto)`` means steps ``after``\\ +1 … ``upto``. Lengths and sizes are in code
    points; :attr:`size` and :meth:`bytes_behind` in UTF-8 bytes. :meth:`read` returns
    steps of one kind only; nothing is copied for a reader that keeps up.
    """

    __slots__ = (
        "_char_ends",
        "_chunk_ends",
        "_chunks",
        "_ends",
        "_first_kind",
        "_flips",
        "_kind",
        "_packed",
        "_tail",
    )

    def __init__(self) -> None:
        # Step seq=i+1 ends at UTF-8 byte _ends[i] and code point _char_ends[i]. Steps up to
        # _packed are in _chunks (chunk k ends at byte _chunk_ends[k]); the rest, the tail,
        # are _tail[j] for seq=_packed+j+1.
        self._ends: array[int] = array("q")
        self._char_ends: array[int] = array("q")
        self._chunks: list[bytes] = []
        self._chunk_ends: list[int] = []
        self._packed = 0
        self._tail: list[str] = []
        # Step kinds: the first step's is _first_kind, and it flips at every seq in _flips
        # (sorted); _kind is the newest step's.
        self._first_kind = ANSWER
        self._kind = ANSWER
        self._flips: list[int] = []

    # ---------------------------------------------------------------- sizes

    @property
    def head(self) -> int:
        """The seq of the last step (0: none yet)."""
        return len(self._ends)

    @property
    def size(self) -> int:
        """About the bytes held: the UTF-8 text and 16 bytes a step."""
        return (self._ends[-1] if self._ends else 0) + 16 * len(self._ends)

    def bytes_behind(self, seq: int) -> int:
        """The UTF-8 bytes of the steps after ``seq``."""
        if seq >= len(self._ends):
            return 0
        return self._ends[-1] - (self._ends[seq - 1] if seq > 0 else 0)

    def sizes(self, after: int, upto: int) -> list[int]:
        """The length in code points of each step after ``after`` up to ``upto``."""
        char_ends = self._char_ends
        previous = char_ends[after - 1] if after > 0 else 0
        sizes = []
        for end in char_ends[after:upto]:
            sizes.append(end - previous)
            previous = end
        return sizes

    def footprint(self) -> int:
        """The bytes its containers take as ``sys.getsizeof`` counts them: chunks, tail
        strings, the lists holding them and the offset arrays (for measuring)."""
        lists = (self._chunks, self._tail, self._chunk_ends)
        return (
            sum(map(sys.getsizeof, lists))
            + sum(map(sys.getsizeof, self._chunks))
            + sum(map(sys.getsizeof, self._tail))
            + sum(map(sys.getsizeof, self._chunk_ends))
            + sys.getsizeof(self._ends)
            + sys.getsizeof(self._char_ends)
        )

    # ---------------------------------------------------------------- kinds

    def kind(self, seq: int) -> StepKind:
        """The kind of step ``seq`` (1 … head)."""
        return _KINDS[self._first_kind ^ (bisect_right(self._flips, seq) & 1)]

    @property
    def only_answers(self) -> bool:
        """No step so far is reasoning."""
        return not self._flips and self._first_kind is ANSWER

    def _runs(self, kind: StepKind) -> Iterator[tuple[int, int]]:
        """The runs of consecutive steps of ``kind``, as (seq before the first, last seq)."""
        head = len(self._ends)
        if not head:
            return
        starts = [1, *self._flips]
        for i, start in enumerate(starts):
            if self._first_kind ^ (i & 1) == kind:
                yield start - 1, starts[i + 1] - 1 if i + 1 < len(starts) else head

    # ---------------------------------------------------------------- texts

    @property
    def answer(self) -> str:
        """The answer steps' text, joined."""
        if self._flips or self._first_kind:
            return "".join(self._slice(a, e) for a, e in self._runs(ANSWER))
        return self._slice(0, len(self._ends))

    @property
    def reasoning(self) -> str:
        """The reasoning steps' text, joined (empty: none)."""
        return "".join(self._slice(a, e) for a, e in self._runs(REASONING))

    @property
    def answer_length(self) -> int:
        """The answer's length in code points."""
        total = self._char_ends[-1] if self._char_ends else 0
        if self._flips or self._first_kind:
            return total - self.reasoning_length
        return total

    @property
    def reasoning_length(self) -> int:
        """The reasoning's length in code points."""
        char_ends = self._char_ends
        return sum(
            char_ends[end - 1] - (char_ends[after - 1] if after > 0 else 0)
            for after, end in self._runs(REASONING)
        )

    def read(self, after: int, upto: int, max_chars: int) -> tuple[str, int, StepKind]:
        """Text of the steps after ``after`` up to ``upto``, whole steps of one kind up to
        about ``max_chars`` (at least one); the seq of the last one; their kind."""
        if after >= upto:
            return "", after, self._kind
        if after + 1 == upto and after >= self._packed:  # a reader that keeps up
            flips = self._flips  # (the kind changed after upto: not yet released)
            kind = self.kind(upto) if flips and flips[-1] > upto else self._kind
            return self._tail[after - self._packed], upto, kind
        # Whole steps while fewer than max_chars are taken: up to the first step whose end
        # reaches max_chars beyond the cursor (at least one step).
        base = self._char_ends[after - 1] if after > 0 else 0
        end = min(upto, bisect_left(self._char_ends, base + max_chars, after) + 1)
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

    # ---------------------------------------------------------------- appending

    def append(self, text: str, kind: StepKind = ANSWER) -> int:
        """Add one step (non-empty text of ``kind``); return its seq."""
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
        return len(ends)

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
