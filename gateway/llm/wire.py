"""What a wire format must provide to the HTTP shell (:mod:`gateway.llm.client`)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..errors import UpstreamError, upstream_error_for
from .events import ChatRequest, UpstreamEvent
from .sse import SSEEvent


class StreamParser(Protocol):
    """Turns one reply's SSE events into upstream events; pure."""

    def feed(self, event: SSEEvent) -> list[UpstreamEvent]: ...

    def end(self) -> list[UpstreamEvent]:
        """The body ended: the final events, or raise if the reply did not finish."""
        ...


class Wire(Protocol):
    @property
    def path(self) -> str: ...

    def request(self, request: ChatRequest, api_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body and headers of one streaming request."""
        ...

    def parser(self) -> StreamParser: ...


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
