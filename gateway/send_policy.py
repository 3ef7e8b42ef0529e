"""The send policy: every bound on what the gateway holds for, and waits on, one viewer.

The limits config names the operator's knobs (``outbox_max_bytes``,
``slow_consumer_timeout_s``, ``max_delta_chars``); this module derives, in one place, what
the chat socket, the connection, the send watchdog and the producer use. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .config import LimitsConfig

# aiohttp's writer limit is never set below this, however small the outbox.
MIN_WRITER_LIMIT = 16 * 1024

# How long a closing socket may take to flush its close frame before the close gives up.
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """What a viewer may cost: built once per limits config (:meth:`from_limits`), asked by
    the socket handler (writer limit, transport high-water mark), the connection (merge
    size, close timeout and grace), the send watchdog (deadline) and the producer (the
    upstream's backpressure bound). Immutable; derives nothing at send time."""

    outbox_max_bytes: int
    # aiohttp's writer pauses once this much is queued: a sixteenth of the outbox (the
    # transport's high-water mark is held to it too), plus the frame being written (at most
    # ``max_merge_chars``): a stalled reader's socket holds well under the outbox bound,
    # which also has to cover its reply's paused upstream read.
    writer_limit: int
    transport_high_water: int
    # A send still waiting after this long means the peer stopped reading: close with 1013.
    send_timeout_s: float
    # ``ws.close`` may wait this long for its flush; the transport is aborted after
    # ``close_grace_s`` (at least the send deadline: a slow reader gets that long to read
    # its 1013 close).
    close_timeout_s: float
    close_grace_s: float
    # The most text one delta frame merges for a viewer that fell behind.
    max_merge_chars: int
    # The producer pauses the upstream read once every viewer is this many bytes behind.
    producer_bound: int

    _built: ClassVar[dict[LimitsConfig, SendPolicy]] = {}

    @classmethod
    def from_limits(cls, limits: LimitsConfig) -> SendPolicy:
        """The policy of ``limits`` (the same object for equal limits: built once)."""
        policy = cls._built.get(limits)
        if policy is None:
            outbox = limits.outbox_max_bytes
            writer_limit = max(outbox // 16, MIN_WRITER_LIMIT)
            policy = cls(
                outbox_max_bytes=outbox,
                writer_limit=writer_limit,
                transport_high_water=writer_limit,
                send_timeout_s=limits.slow_consumer_timeout_s,
                close_timeout_s=CLOSE_TIMEOUT_S,
                close_grace_s=max(CLOSE_TIMEOUT_S, limits.slow_consumer_timeout_s),
                max_merge_chars=min(limits.max_delta_chars, outbox // 4),
                producer_bound=outbox,
            )
            cls._built[limits] = policy
        return policy

    @property
    def watchdog_interval_s(self) -> float:
        """How often the send watchdog looks: a quarter of the deadline, 0.05 s to 1 s."""
        return min(1.0, max(0.05, self.send_timeout_s / 4))
