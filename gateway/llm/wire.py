"""What a wire format must provide to the HTTP shell (:mod:`gateway.llm.client`)."""

from __future__ import annotations

import json
from typing import Any, Protocol

import structlog

from ..errors import ContentFiltered, UpstreamError, upstream_error_for
from .events import ChatRequest, UpstreamEvent
from .sse import SSEEvent

log = structlog.get_logger("gateway.upstream")


class StreamParser(Protocol):
    """Turns one reply's SSE events into upstream events; pure."""

    def feed(self, event: SSEEvent) -> list[UpstreamEvent]: ...

    def end(self) -> list[UpstreamEvent]:
        """The body ended: the final events, or raise if the reply did not finish."""
        ...


class Wire(Protocol):
    """One upstream wire format (DashScope native or OpenAI-compatible): where a request
    goes, what body it sends, how its stream is parsed and how a refusal maps to an error."""

    def route(self, request: ChatRequest) -> ChatRequest:
        """The request as this wire will send it (DashScope: its endpoint decided)."""
        ...

    def reroute(self, request: ChatRequest, error: UpstreamError) -> ChatRequest | None:
        """The request to send instead after ``error`` refused ``request`` before any
        event, or ``None`` (DashScope: the other endpoint after "url error")."""
        ...

    def path(self, request: ChatRequest) -> str:
        """Where a routed request is posted, after the base URL."""
        ...

    def request(self, request: ChatRequest, api_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body and headers of one streaming request."""
        ...

    def parser(self, request: ChatRequest) -> StreamParser: ...


def error_from_body(status: int, body: bytes) -> UpstreamError:
    """Map a non-2xx answer (DashScope or OpenAI shaped, or not JSON at all)."""
    code = message = request_id = None
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):  # OpenAI: {"error": {"message", "type", "code"}}
            code, message = err.get("code") or err.get("type"), err.get("message")
        else:  # DashScope: {"code", "message", "request_id"}
            code, message, request_id = obj.get("code"), obj.get("message"), obj.get("request_id")
    text = message if isinstance(message, str) else f"HTTP {status}"
    error = upstream_error_for(
        status,
        code if isinstance(code, str) else None,
        text,
        request_id if isinstance(request_id, str) else None,
    )
    if obj is None:  # a proxy's page, say: its start is the only clue
        error.cause = "body: " + body[:200].decode("utf-8", "replace")
    return error


def load_json(data: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError:
        raise UpstreamError("malformed data from the model service: not JSON") from None
    if not isinstance(obj, dict):
        raise UpstreamError("malformed data from the model service: not an object")
    return obj


# Section 4's finish reasons that an upstream can give; anything else is mapped.
_FINISH_REASONS = frozenset({"stop", "length"})


def finish_reason(word: str, request_id: str | None = None) -> str:
    """The contract's finish reason for an upstream's word: ``stop`` and ``length`` as they
    are; ``content_filter`` raises :class:`~gateway.errors.ContentFiltered`; anything else
    (``tool_calls``, ``function_call``, a word we do not know) is ``stop``, logged with the
    upstream's word."""
    if word in _FINISH_REASONS:
        return word
    if word == "content_filter":
        raise ContentFiltered(
            "the model service's content filter stopped the reply", request_id=request_id
        )
    log.info(
        "upstream finish reason mapped", upstream_finish_reason=word[:64], finish_reason="stop"
    )
    return "stop"
