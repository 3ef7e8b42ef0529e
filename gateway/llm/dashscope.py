"""DashScope's native SSE, text and multimodal endpoints: request shape and a pure parser.

Two endpoints (sources in ``docs/upstreams.md``):

* ``text``: ``/api/v1/services/aigc/text-generation/generation``; a message's ``content``
  is a string.
* ``multimodal``: ``/api/v1/services/aigc/multimodal-generation/generation``; a message's
  ``content`` is a list of items, ``{"image": "data:..." | "https://..."}`` then
  ``{"text": "..."}``, and so is the streamed ``output.choices[0].message.content``.

The service refuses a model on the wrong endpoint with HTTP 400 ``InvalidParameter`` "url
error". :class:`DashScopeWire` picks the endpoint from the model's name
(:data:`MULTIMODAL_FAMILIES`), or from a request with images; on "url error" the client
asks :meth:`DashScopeWire.reroute` once for the other endpoint, which is then remembered for
that model in the wire's memo (per process, per upstream). A request that names its
endpoint is sent there and never switched.

Both result formats are read: ``output.text`` (``result_format=text``) and
``output.choices[0].message.content`` (``message``), the latter a string or a list of
``{"text"}`` items. Cumulative output (the service's default) is diffed by *length* into
steps: each event's text is the whole reply so far, and the step is what lies beyond the
length already emitted. No string comparison per event, so a long reply costs O(n) in total,
not O(n²). Incremental output passes through. ``finish_reason`` is the string ``"null"``
while generating. ``usage`` is a running total: the last event's object is kept as it came
and read once, at the finish (counts and ``output_tokens_details.reasoning_tokens``), so
a step costs no usage work. Reasoning (``message.reasoning_content``)
becomes :class:`Reasoning` events, apart from the answer, diffed the same way. An
``event:error`` (with its ``:HTTP_STATUS/…``) raises the mapped
:class:`~gateway.errors.UpstreamError`.

Thinking: ``"on"``/``"off"`` send ``parameters.enable_thinking`` (and ``thinking_budget``
when set); ``"on"`` also asks for incremental output, the only mode Alibaba documents for
thinking, and the ``message`` format. ``"auto"`` sends neither. A continuation prefix goes as
a last assistant message with ``"partial": true``, and with ``enable_thinking: false``
(partial mode is documented for non-thinking mode only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import UpstreamError, upstream_error_for
from .events import ChatMessage, ChatRequest, Endpoint, Finish, Reasoning, Step, UpstreamEvent
from .sse import SSEEvent
from .wire import finish_reason, load_json

TEXT_PATH = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
PATH = TEXT_PATH  # version 1's one endpoint
PATHS: dict[Endpoint, str] = {"text": TEXT_PATH, "multimodal": MULTIMODAL_PATH}

# Model-name prefixes that DashScope serves only at the multimodal endpoint (lower case).
# Sources: Alibaba Model Studio "Visual reasoning" and "Deep thinking" pages (Qwen3.5, 3.6,
# 3.7, Qwen3-VL, QVQ, Kimi K2.5/K2.6), the VL API reference, the SDK's own omni special case;
# see docs/upstreams.md. A name not listed goes to the text endpoint first.
MULTIMODAL_FAMILIES = (
    "qwen-vl",
    "qwen2-vl",
    "qwen2.5-vl",
    "qwen3-vl",
    "qvq",
    "qwen-omni",
    "qwen2.5-omni",
    "qwen3-omni",
    "qwen-audio",
    "qwen2-audio",
    "qwen3.5-",
    "qwen3.6-",
    "qwen3.7-",
    "kimi-k2.5",
    "kimi-k2.6",
)


def endpoint_for_model(model: str) -> Endpoint:
    """The endpoint a model's name says it is served at (see :data:`MULTIMODAL_FAMILIES`)."""
    name = model.lower()
    return "multimodal" if name.startswith(MULTIMODAL_FAMILIES) else "text"


def is_url_error(error: UpstreamError) -> bool:
    """The service's answer to a model posted to the wrong endpoint: HTTP 400
    ``InvalidParameter`` "url error, please check url" (a full-width "!" follows)."""
    return (
        error.status == 400
        and error.upstream_code == "InvalidParameter"
        and "url error" in error.message.lower()
    )


class ImagesOnTextEndpoint(UpstreamError):
    """A request with images for the text endpoint that the assistant names: a configuration
    mistake, refused before anything is sent and not retried (``upstream_error``)."""

    retryable = False
    default_message = "images need DashScope's multimodal endpoint; the assistant names 'text'"


@dataclass(frozen=True, slots=True)
class DashScopeWire:
    """DashScope native, both endpoints. ``memo`` remembers, per model, the endpoint a "url
    error" switched to; it lives as long as the wire (one per upstream per process)."""

    incremental: bool = False
    result_format: str = "message"
    memo: dict[str, Endpoint] = field(default_factory=dict, compare=False)

    def route(self, request: ChatRequest) -> ChatRequest:
        if request.endpoint is not None:
            return request
        endpoint: Endpoint
        if request.has_images:
            endpoint = "multimodal"  # the only one that takes them
        else:
            endpoint = self.memo.get(request.model) or endpoint_for_model(request.model)
        return dataclasses.replace(request, endpoint=endpoint)

    def reroute(self, request: ChatRequest, error: UpstreamError) -> ChatRequest | None:
        if not is_url_error(error):
            return None
        other: Endpoint = "text" if request.endpoint == "multimodal" else "multimodal"
        if other == "text" and request.has_images:
            return None  # the text endpoint cannot carry them: the refusal stands
        self.memo[request.model] = other
        return dataclasses.replace(request, endpoint=other)

    def path(self, request: ChatRequest) -> str:
        return PATHS[request.endpoint or "text"]

    def incremental_for(self, request: ChatRequest) -> bool:
        return self.incremental or thinking(request) is True

    def request(self, request: ChatRequest, api_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        on = thinking(request)
        parameters: dict[str, Any] = {
            # Reasoning has no place in the text format's output.text.
            "result_format": "message" if on else self.result_format,
            "incremental_output": self.incremental_for(request),
        }
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(request, name)
            if value is not None:
                parameters[name] = value
        if on is not None:
            parameters["enable_thinking"] = on
            if on and request.thinking_budget is not None:
                parameters["thinking_budget"] = request.thinking_budget
        multimodal = request.endpoint == "multimodal"
        if not multimodal and request.has_images:
            raise ImagesOnTextEndpoint
        messages = [_message(m, multimodal) for m in request.messages]
        if request.prefix:
            prefix: dict[str, Any] = _message(ChatMessage("assistant", request.prefix), multimodal)
            prefix["partial"] = True
            messages.append(prefix)
        body = {"model": request.model, "input": {"messages": messages}, "parameters": parameters}
        headers = {"X-DashScope-SSE": "enable", "Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return body, headers

    def parser(self, request: ChatRequest | None = None) -> DashScopeParser:
        incremental = self.incremental if request is None else self.incremental_for(request)
        return DashScopeParser(incremental)


def thinking(request: ChatRequest) -> bool | None:
    """``enable_thinking`` as DashScope takes it (native and compatible mode), or ``None``
    to send nothing. A continuation is always without thinking: partial mode works only in
    non-thinking mode, and a reply with answer text has done its thinking."""
    if request.prefix:
        return False
    return None if request.thinking == "auto" else request.thinking == "on"


def _message(message: ChatMessage, multimodal: bool) -> dict[str, Any]:
    if not multimodal:
        return {"role": message.role, "content": message.content}
    # The Image itself: gateway.llm.body.JsonBody writes it as a data: URL while sending.
    items: list[dict[str, Any]] = [{"image": image} for image in message.images]
    if message.content or not items:
        items.append({"text": message.content})
    return {"role": message.role, "content": items}


def _text(content: Any) -> str | None:
    """A message's content: a string, or (multimodal) the ``text`` of its list's items."""
    if isinstance(content, str) or content is None:
        return content
    if isinstance(content, list):
        return "".join(
            item["text"]
            for item in content
            if isinstance(item, dict) and isinstance(item.get("text"), str)
        )
    return None


def usage_counts(usage: Any) -> tuple[int | None, int | None, int | None]:
    """``input_tokens``, ``output_tokens`` and ``output_tokens_details.reasoning_tokens``
    of a ``usage`` object (None where absent or not a number)."""
    if not isinstance(usage, dict):
        return None, None, None
    i, o = usage.get("input_tokens"), usage.get("output_tokens")
    details = usage.get("output_tokens_details")
    r = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return (
        i if isinstance(i, int) else None,
        o if isinstance(o, int) else None,
        r if isinstance(r, int) else None,
    )


class DashScopeParser:
    """Turns one DashScope reply's SSE events into Steps, Reasoning and one Finish;
    cumulative or incremental, text or content lists, as the dashscope SDK reads them."""

    def __init__(self, incremental: bool) -> None:
        self._incremental = incremental
        self._text_len = 0
        self._reasoning_len = 0
        self._finish: Finish | None = None
        self._usage: Any = None  # the last event's ``usage``, read once the reply finishes
        self._request_id: str | None = None

    def feed(self, event: SSEEvent) -> list[UpstreamEvent]:
        if self._finish is not None:
            return []
        obj = load_json(event.data)
        request_id = obj.get("request_id")
        if isinstance(request_id, str):
            self._request_id = request_id
        if (
            event.event == "error"
            or (event.status is not None and event.status >= 400)
            or ("code" in obj and "output" not in obj)
        ):
            code, message = obj.get("code"), obj.get("message")
            raise upstream_error_for(
                event.status,
                code if isinstance(code, str) else None,
                message if isinstance(message, str) else None,
                self._request_id,
            )
        usage = obj.get("usage")
        if usage is not None:
            self._usage = usage
        output = obj.get("output")
        if not isinstance(output, dict):
            raise UpstreamError("malformed data from the model service: no output")
        choices = output.get("choices")
        reasoning: Any = None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            message = choice.get("message") or {}
            content = _text(message.get("content"))
            reasoning = message.get("reasoning_content")
            finish = choice.get("finish_reason")
        else:
            content, finish = output.get("text"), output.get("finish_reason")
        events: list[UpstreamEvent] = []
        if isinstance(reasoning, str) and reasoning:
            piece = self._diff(reasoning, "_reasoning_len")
            if piece:
                events.append(Reasoning(piece))
        if isinstance(content, str) and content:
            piece = self._diff(content, "_text_len")
            if piece:
                events.append(Step(piece))
        if isinstance(finish, str) and finish not in ("", "null"):
            input_tokens, output_tokens, reasoning_tokens = usage_counts(self._usage)
            self._finish = Finish(
                finish_reason(finish, self._request_id),
                input_tokens,
                output_tokens,
                self._request_id,
                reasoning_tokens,
            )
            events.append(self._finish)
        return events

    def _diff(self, text: str, attr: str) -> str:
        if self._incremental:
            return text
        seen: int = getattr(self, attr)
        if len(text) <= seen:
            return ""
        setattr(self, attr, len(text))
        return text[seen:]

    def end(self) -> list[UpstreamEvent]:
        if self._finish is None:
            raise UpstreamError(
                "the model service's stream ended before the reply finished",
                request_id=self._request_id,
            )
        return []
