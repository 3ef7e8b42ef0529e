"""DashScope's native text-generation SSE: request shape and a pure stream parser.

Both result formats are read: ``output.text`` (``result_format=text``) and
``output.choices[0].message.content`` (``message``). Cumulative output (the service's
default) is diffed by *length* into steps: each event's text is the whole reply so far, and
the step is what lies beyond the length already emitted. No string comparison per event,
so a long reply costs O(n) in total, not O(n²). Incremental output passes through.
``finish_reason`` is the string ``"null"`` while generating. ``usage`` is a running total:
the last event's counts are kept. Reasoning (``message.reasoning_content``) becomes
:class:`Reasoning` events, apart from the answer. An ``event:error`` (with its
``:HTTP_STATUS/…``) raises the mapped :class:`~gateway.errors.UpstreamError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UpstreamError, upstream_error_for
from .events import ChatRequest, Finish, Reasoning, Step, UpstreamEvent
from .sse import SSEEvent
from .wire import load_json

PATH = "/api/v1/services/aigc/text-generation/generation"


@dataclass(frozen=True, slots=True)
class DashScopeWire:
    incremental: bool = False
    result_format: str = "message"
    path: str = PATH

    def request(self, request: ChatRequest, api_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        parameters: dict[str, Any] = {
            "result_format": self.result_format,
            "incremental_output": self.incremental,
        }
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(request, name)
            if value is not None:
                parameters[name] = value
        body = {
            "model": request.model,
            "input": {
                "messages": [{"role": m.role, "content": m.content} for m in request.messages]
            },
            "parameters": parameters,
        }
        headers = {"X-DashScope-SSE": "enable", "Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return body, headers

    def parser(self) -> DashScopeParser:
        return DashScopeParser(self.incremental)


class DashScopeParser:
    def __init__(self, incremental: bool) -> None:
        self._incremental = incremental
        self._text_len = 0
        self._reasoning_len = 0
        self._finish: Finish | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
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
        self._usage(obj.get("usage"))
        output = obj.get("output")
        if not isinstance(output, dict):
            raise UpstreamError("malformed data from the model service: no output")
        choices = output.get("choices")
        reasoning: Any = None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            message = choice.get("message") or {}
            content, reasoning = message.get("content"), message.get("reasoning_content")
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
            self._finish = Finish(finish, self._input_tokens, self._output_tokens, self._request_id)
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

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            i, o = usage.get("input_tokens"), usage.get("output_tokens")
            self._input_tokens = i if isinstance(i, int) else self._input_tokens
            self._output_tokens = o if isinstance(o, int) else self._output_tokens

    def end(self) -> list[UpstreamEvent]:
        if self._finish is None:
            raise UpstreamError(
                "the model service's stream ended before the reply finished",
                request_id=self._request_id,
            )
        return []
