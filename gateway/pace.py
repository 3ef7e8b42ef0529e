"""The delta pace: when a socket's next delta frame may go, for a client that asked for at
most one delta frame per interval (``frame_interval_ms`` on the chat socket's URL).

A page redraws at its own cadence; every WebSocket message costs its main thread a receive,
a JSON parse and a handler, so deltas arriving faster than it redraws are work for nothing.
The writer (:mod:`gateway.connection`) asks :class:`DeltaPace` before sending a delta and
tells it each one sent; everything that arrives while a delta waits is merged into it, as
for a slow reader (the contract allows it: ``seq`` may jump). Pure: times are plain
monotonic seconds passed in, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FRAME_INTERVAL_MS = 1000
FRAME_INTERVAL_RULE = f"an integer from 0 to {MAX_FRAME_INTERVAL_MS}"


def frame_interval_ms(value: str | None) -> int:
    """The socket URL's ``frame_interval_ms`` (absent or empty: 0, no pace); ValueError
    naming the rule for anything but a decimal integer from 0 to 1000."""
    if not value:
        return 0
    if not (len(value) <= 4 and value.isascii() and value.isdigit()):
        raise ValueError(f"frame_interval_ms must be {FRAME_INTERVAL_RULE}")
    ms = int(value)
    if ms > MAX_FRAME_INTERVAL_MS:
        raise ValueError(f"frame_interval_ms must be {FRAME_INTERVAL_RULE}")
    return ms


@dataclass(eq=False, slots=True)
class DeltaPace:
    """At most one delta (or reasoning) frame per ``interval`` seconds for one socket.

    Contract: :meth:`wait` says how long the next delta must wait from ``now`` (0.0: send
    it now); :meth:`sent` records one that went out. A delta waits only while all of these
    hold: less than ``interval`` has passed since the previous delta frame; that frame took
    all the text there was (a reader whose frame stopped at the merge limit, or at a change
    of kind, gets the rest at once: the pace never makes a reader slower than its socket);
    and the reply's end is not yet visible (nothing more will come to merge, so waiting
    would only hold back the last delta and ``done``). The first delta of a socket never
    waits. Only the writer calls it."""

    interval: float
    due: float = 0.0  # monotonic time before which no delta goes (0.0: none held)

    @classmethod
    def every_ms(cls, ms: int) -> DeltaPace | None:
        """The pace of ``frame_interval_ms`` = ``ms``; None for 0 (no pace, no cost)."""
        return cls(ms / 1000) if ms > 0 else None

    def wait(self, now: float, end_visible: bool) -> float:
        """Seconds the next delta must wait from ``now``; 0.0: it may go now."""
        if end_visible or now >= self.due:
            return 0.0
        return self.due - now

    def sent(self, now: float, caught_up: bool) -> None:
        """A delta frame went out at ``now``; ``caught_up``: it took all the text there was."""
        self.due = now + self.interval if caught_up else 0.0
