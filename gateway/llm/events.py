"""What goes to an upstream model and what comes back, independent of the wire format.

An upstream client turns one :class:`ChatRequest` into an async stream of events:
zero or more :class:`Step` (answer text, never empty) and :class:`Reasoning`
(a reasoning model's thinking, kept apart from the answer), then exactly one
:class:`Finish`. A failure raises an :class:`gateway.errors.UpstreamError`.
Closing the stream (``aclose()``, or cancelling the task that iterates it) closes
the upstream HTTP response at once, which ends the upstream's billing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    # The start of the reply already shown, for the model to continue (section 13); the
    # stream then carries only what follows. (Same field as on the q-qwen branch.)
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """Answer text that the upstream added in one event."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Reasoning text (``reasoning_content``) added in one event; not part of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    finish_reason: str  # stop | length | tool_calls | ...
    input_tokens: int | None = None
    output_tokens: int | None = None
    request_id: str | None = None


UpstreamEvent = Step | Reasoning | Finish
# The consumer's backpressure: None when there is room for more, else what to await.
Room = Callable[[], Awaitable[None] | None]


class Upstream(Protocol):
    """An upstream model service."""

    def stream(
        self, request: ChatRequest, room: Room | None = None
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Stream one reply; see the module docstring. ``room`` is asked before each read
        from the upstream once the events of the previous one are out, and what it returns
        awaited: the consumer's backpressure, applied where waiting holds no decoded event."""
        ...
