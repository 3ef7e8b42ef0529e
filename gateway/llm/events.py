"""What goes to an upstream model and what comes back, independent of the wire format.

An upstream client turns one :class:`ChatRequest` into an async stream of events:
zero or more :class:`Step` (answer text, never empty) and :class:`Reasoning`
(a reasoning model's thinking, kept apart from the answer), then exactly one
:class:`Finish`. A failure raises an :class:`gateway.errors.UpstreamError`.

A request may carry images (per message), a thinking setting, the endpoint to use (DashScope
only) and a continuation prefix: the start of the assistant's reply, which the model is asked
to go on from (DashScope's partial mode, vLLM's ``continue_final_message``). All default to
what a plain text request needs.
Closing the stream (``aclose()``, or cancelling the task that iterates it) closes
the upstream HTTP response at once, which ends the upstream's billing.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]
Thinking = Literal["auto", "on", "off"]
Endpoint = Literal["text", "multimodal"]


@dataclass(frozen=True, slots=True)
class Image:
    """One image for the model: its bytes and media type, or a URL passed upstream as is.

    Exactly one of ``data`` and ``url`` is set. ``url`` is an ``https://`` URL or an already
    encoded ``data:`` URL; checking type, size and scheme is the caller's job, before the
    request is built."""

    media_type: str = ""
    data: bytes | bytearray | None = None  # (a bytearray: an image decoded in place)
    url: str | None = None

    def reference(self) -> str:
        """What goes upstream: the URL, or a ``data:<type>;base64,...`` URL of the bytes."""
        if self.url is not None:
            return self.url
        encoded = base64.b64encode(self.data or b"").decode("ascii")
        return f"data:{self.media_type};base64,{encoded}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One turn for the model.

    ``thinking``: ``"auto"`` sends nothing (the model's own default), ``"on"``/``"off"`` ask
    for reasoning or not; ``thinking_budget`` caps reasoning tokens. ``endpoint`` fixes
    DashScope's endpoint (``None``: chosen from the model's name, see
    :mod:`gateway.llm.dashscope`). ``prefix``, when not empty, is the start of the reply
    already shown: the model continues it and the stream carries only what follows."""

    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    thinking: Thinking = "auto"
    thinking_budget: int | None = None
    endpoint: Endpoint | None = None
    prefix: str = ""

    @property
    def has_images(self) -> bool:
        return any(m.images for m in self.messages)


@dataclass(frozen=True, slots=True)
class Step:
    """Answer text that the upstream added in one event."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Reasoning text (``reasoning_content`` or ``reasoning``) added in one event; not part
    of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The reply ended. ``finish_reason`` is ``stop`` or ``length`` (any other upstream word
    has been mapped, see :func:`gateway.llm.wire.finish_reason`); the token counts are the
    upstream's last report (``output_tokens`` includes ``reasoning_tokens``), or ``None``."""

    finish_reason: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    request_id: str | None = None
    reasoning_tokens: int | None = None


UpstreamEvent = Step | Reasoning | Finish
# The consumer's backpressure: None when it can take more, else what to await.
Backpressure = Callable[[], Awaitable[None] | None]


class Upstream(Protocol):
    """An upstream model service."""

    def stream(
        self, request: ChatRequest, backpressure: Backpressure | None = None
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Stream one reply; see the module docstring. ``backpressure`` is asked before each read
        from the upstream once the events of the previous one are out, and what it returns
        awaited: the consumer's backpressure, applied where waiting holds no decoded event."""
        ...
