"""The OpenAI-compatible chat-completions stream: request shape and a pure stream parser.

``choices[0].delta.content`` is a step, ``delta.reasoning_content`` reasoning; the
``finish_reason`` arrives on the last content chunk, usage on a chunk with empty
``choices`` (``stream_options.include_usage``), and ``data: [DONE]`` ends the stream.
An ``{"error": {...}}`` chunk raises the mapped error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UpstreamError, upstream_error_for
from .events import ChatRequest, Finish, Reasoning, Step, UpstreamEvent
from .sse import SSEEvent
from .wire import load_json


@dataclass(frozen=True, slots=True)
class OpenAIWire:
    path: str = "/chat/completions"

    def request(self, request: ChatRequest, api_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return body, headers

    def parser(self) -> OpenAIParser:
        return OpenAIParser()


class OpenAIParser:
    def __init__(self) -> None:
        self._finish_reason: str | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._request_id: str | None = None
        self._done = False

    def feed(self, event: SSEEvent) -> list[UpstreamEvent]:
        if self._done:
            return []
        if event.data.strip() == "[DONE]":
            return self._end()
        obj = load_json(event.data)
        error = obj.get("error")
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            message = error.get("message")
            raise upstream_error_for(
                None,
                code if isinstance(code, str) else None,
                message if isinstance(message, str) else None,
            )
        if isinstance(obj.get("id"), str):
            self._request_id = obj["id"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self._input_tokens = p if isinstance(p, int) else self._input_tokens
            self._output_tokens = c if isinstance(c, int) else self._output_tokens
        events: list[UpstreamEvent] = []
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta") or {}
            reasoning, content = delta.get("reasoning_content"), delta.get("content")
            if isinstance(reasoning, str) and reasoning:
                events.append(Reasoning(reasoning))
            if isinstance(content, str) and content:
                events.append(Step(content))
            if isinstance(choice.get("finish_reason"), str):
                self._finish_reason = choice["finish_reason"]
        return events

    def _end(self) -> list[UpstreamEvent]:
        self._done = True
        if self._finish_reason is None:
            raise UpstreamError("the model service's stream ended before the reply finished")
        return [
            Finish(self._finish_reason, self._input_tokens, self._output_tokens, self._request_id)
        ]

    def end(self) -> list[UpstreamEvent]:
        return [] if self._done else self._end()
