"""The OpenAI-compatible chat-completions stream: request shape and a pure stream parser.

``choices[0].delta.content`` is a step; reasoning is read from ``delta.reasoning_content``
(DashScope compatible mode, DeepSeek, older vLLM) or ``delta.reasoning`` (current vLLM,
Ollama, OpenRouter), the first that holds text. The ``finish_reason`` arrives on the last
content chunk, usage (with ``completion_tokens_details.reasoning_tokens``) on a chunk with
empty ``choices`` (``stream_options.include_usage``, always asked for), and ``data: [DONE]``
ends the stream. An ``{"error": {...}}`` chunk raises the mapped error.

Request: a message with images has ``content`` as parts, ``{"type": "text"}`` then one
``{"type": "image_url", "image_url": {"url": ...}}`` per image. Thinking ``"on"``/``"off"``
goes as DashScope compatible mode's top-level ``enable_thinking`` (and ``thinking_budget``),
or, with ``thinking_style = "vllm"``, as ``chat_template_kwargs.enable_thinking``. A
continuation prefix goes as a last assistant message: with ``continuation = "vllm"``, with
``continue_final_message: true, add_generation_prompt: false``; otherwise with DashScope's
``"partial": true`` (and ``enable_thinking: false``, as natively).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UpstreamError, upstream_error_for
from .dashscope import thinking as dashscope_thinking
from .events import ChatMessage, ChatRequest, Finish, Reasoning, Step, UpstreamEvent
from .sse import SSEEvent
from .wire import finish_reason, load_json

PATH = "/chat/completions"


@dataclass(frozen=True, slots=True)
class OpenAIWire:
    """An OpenAI-compatible upstream. ``thinking_style``: ``"dashscope"`` (top-level
    ``enable_thinking``) or ``"vllm"`` (``chat_template_kwargs``); ``continuation``:
    ``"vllm"`` (``continue_final_message``) or anything else (``"partial": true``)."""

    thinking_style: str = "dashscope"
    continuation: str = ""

    def route(self, request: ChatRequest) -> ChatRequest:
        return request

    def reroute(self, request: ChatRequest, error: UpstreamError) -> ChatRequest | None:
        return None

    def path(self, request: ChatRequest) -> str:
        return PATH

    def request(self, request: ChatRequest, api_key: str) -> tuple[dict[str, Any], dict[str, str]]:
        messages = [_message(m) for m in request.messages]
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if self.thinking_style == "vllm":
            if request.thinking != "auto":
                body["chat_template_kwargs"] = {"enable_thinking": request.thinking == "on"}
        elif (on := dashscope_thinking(request)) is not None:
            body["enable_thinking"] = on
            if on and request.thinking_budget is not None:
                body["thinking_budget"] = request.thinking_budget
        if request.prefix:
            prefix: dict[str, Any] = {"role": "assistant", "content": request.prefix}
            if self.continuation == "vllm":
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            else:
                prefix["partial"] = True
            messages.append(prefix)
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return body, headers

    def parser(self, request: ChatRequest | None = None) -> OpenAIParser:
        return OpenAIParser()


def _message(message: ChatMessage) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    parts.extend(
        # The Image itself: gateway.llm.body.JsonBody writes it as a data: URL while sending.
        {"type": "image_url", "image_url": {"url": image}}
        for image in message.images
    )
    return {"role": message.role, "content": parts}


def _int(obj: Any, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) else None


class OpenAIParser:
    """Turns one OpenAI-compatible chat-completions stream into Steps, Reasoning (from
    ``reasoning_content`` or ``reasoning``) and one Finish with the usage chunk's counts."""

    def __init__(self) -> None:
        self._finish_reason: str | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._reasoning_tokens: int | None = None
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
            prompt, completion = _int(usage, "prompt_tokens"), _int(usage, "completion_tokens")
            reasoning_tokens = _int(usage.get("completion_tokens_details"), "reasoning_tokens")
            if prompt is not None:
                self._input_tokens = prompt
            if completion is not None:
                self._output_tokens = completion
            if reasoning_tokens is not None:
                self._reasoning_tokens = reasoning_tokens
        events: list[UpstreamEvent] = []
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if not (isinstance(reasoning, str) and reasoning):
                reasoning = delta.get("reasoning")
            content = delta.get("content")
            if isinstance(reasoning, str) and reasoning:
                events.append(Reasoning(reasoning))
            if isinstance(content, str) and content:
                events.append(Step(content))
            if isinstance(choice.get("finish_reason"), str):
                self._finish_reason = finish_reason(choice["finish_reason"], self._request_id)
        return events

    def _end(self) -> list[UpstreamEvent]:
        self._done = True
        if self._finish_reason is None:
            raise UpstreamError("the model service's stream ended before the reply finished")
        return [
            Finish(
                self._finish_reason,
                self._input_tokens,
                self._output_tokens,
                self._request_id,
                self._reasoning_tokens,
            )
        ]

    def end(self) -> list[UpstreamEvent]:
        return [] if self._done else self._end()
